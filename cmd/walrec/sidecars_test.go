package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamwal/recovery/db"
)

func TestSidecarsCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	d.Close()
	good, _ := os.ReadFile(path)
	os.WriteFile(path, append(good, 1, 2, 3), 0o644) // a torn tail
	if d, err = db.Open(path); err != nil {
		t.Fatal(err)
	}
	d.Close()

	var out, errb bytes.Buffer
	if code := run([]string{"sidecars", path, "--json"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var list []sidecarJSON
	if err := json.Unmarshal(out.Bytes(), &list); err != nil || len(list) != 1 || list[0].Size != 3 || list[0].Offset != int64(len(good)) || list[0].Partial {
		t.Fatalf("sidecars --json: %s %v", out.String(), err)
	}

	// --clear refuses while a writer holds the database.
	w, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	if code := run([]string{"sidecars", "--clear", path}, &out, &errb); code != exitError || !strings.Contains(errb.String(), "LOCKED") {
		t.Fatalf("--clear beside a writer: exit %d: %s", code, errb.String())
	}
	w.Close()
	out.Reset()
	if code := run([]string{"sidecars", path, "--clear"}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "removed "+list[0].Path) {
		t.Fatalf("--clear: exit %d: %s %s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"sidecars", path}, &out, &errb); code != exitOK || out.String() != "0 sidecars, 0 bytes\n" {
		t.Fatalf("after --clear: %q", out.String())
	}
	if code := run([]string{"sidecars"}, &out, &errb); code != exitError {
		t.Fatalf("no FILE: exit %d", code)
	}
}
