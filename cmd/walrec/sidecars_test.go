package main

import (
	"bytes"
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
	ls := jsonLines(t, "sidecars", out.String())
	list := ofType(t, ls, "sidecar")
	if len(list) != 1 || list[0].num(t, "size") != 3 || list[0].num(t, "offset") != int64(len(good)) || list[0]["partial"] != false ||
		ls[1].str(t, "type") != "report" || ls[1].num(t, "sidecars") != 1 || ls[1]["database_missing"] != false {
		t.Fatalf("sidecars --json: %s", out.String())
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
	if code := run([]string{"sidecars", path, "--clear"}, &out, &errb); code != exitOK || !strings.Contains(out.String(), "removed "+list[0].str(t, "path")) {
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

func TestCompactCommand(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("k"), bytes.Repeat([]byte{byte(i)}, 1000)) }); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"compact", path, "--json"}, &out, &errb); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	r := jsonLines(t, "compact", out.String())[0]
	if r.num(t, "pairs") != 1 || r.num(t, "records") != 1 || r.num(t, "after_bytes") >= r.num(t, "before_bytes")/10 || r["compacted"] != true {
		t.Fatalf("compact --json: %s", out.String())
	}
	if fi, _ := os.Stat(path); fi.Size() != r.num(t, "after_bytes") {
		t.Fatalf("file %d bytes, report %d", fi.Size(), r.num(t, "after_bytes"))
	}
	if code := run([]string{"compact", filepath.Join(t.TempDir(), "missing.db")}, &out, &errb); code != exitError {
		t.Fatalf("a missing file: exit %d", code)
	}
}

// Every command agrees on where a database's files are: recover through a symbolic link in
// another directory keeps the cut bytes beside the file the link names, and sidecars through
// the link lists them there (before, it looked beside the link and said 0).
func TestSidecarsThroughALink(t *testing.T) {
	realDir, linkDir := t.TempDir(), t.TempDir()
	real := filepath.Join(realDir, "real.db")
	link := filepath.Join(linkDir, "link.db")
	walrec(t, "gen", real, "--size", "64KiB", "--damage", "torn_tail", "--quiet").mustExit(t, exitOK, "gen")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	walrec(t, "recover", link, "--quiet").mustExit(t, exitOK, "recover through the link")
	r := walrec(t, "sidecars", link, "--json").mustExit(t, exitOK, "sidecars through the link")
	list := ofType(t, jsonLines(t, "sidecars", r.stdout), "sidecar")
	if len(list) != 1 || filepath.Dir(list[0].str(t, "path")) != realDir {
		t.Fatalf("sidecars through the link: %s", r.stdout)
	}
	walrec(t, "sidecars", link, "--clear", "--quiet").mustExit(t, exitOK, "sidecars --clear through the link")
	if ents, _ := os.ReadDir(realDir); len(ents) != 1 {
		t.Fatalf("%d entries beside the real file after --clear", len(ents))
	}
}
