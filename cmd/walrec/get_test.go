package main

import (
	"path/filepath"
	"testing"

	"github.com/streamwal/recovery/db"
)

// get and scan read the live state without the writer's lock, beside a writer that has the
// database open: get finds a key (exit 0) or says it is missing (exit 1), scan lists a prefix
// or a range in key order, and bytes that are not UTF-8 come out as hex in JSON.
func TestGetAndScanBesideAWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Update(func(tx *db.Tx) error {
		for _, kv := range [][2]string{{"user/1", "ada"}, {"user/2", "grace"}, {"user/3", "x\xffy"}, {"zone", "z"}, {"a\tb", "tab"}} {
			if err := tx.Set([]byte(kv[0]), []byte(kv[1])); err != nil {
				return err
			}
		}
		return tx.Delete([]byte("zone"))
	}); err != nil {
		t.Fatal(err)
	}
	if r := walrec(t, "get", path, "user/2").mustExit(t, exitOK, "get"); r.stdout != "grace\n" {
		t.Fatalf("get: %q", r.stdout)
	}
	walrec(t, "get", path, "zone").mustExit(t, exitTail, "get of a deleted key")
	walrec(t, "get", path, "75736572", "--hex", "--quiet").mustExit(t, exitTail, "get of a missing key given in hex")
	r := walrec(t, "get", path, "user/3", "--json").mustExit(t, exitOK, "get --json")
	o := jsonLines(t, "get", r.stdout)[0]
	if o["value"] != nil || o["value_hex"] != "78ff79" || o["found"] != true || o.str(t, "type") != "report" {
		t.Fatalf("get --json: %s", r.stdout)
	}
	r = walrec(t, "scan", path, "--prefix", "user/").mustExit(t, exitOK, "scan --prefix")
	if want := "user/1\tada\nuser/2\tgrace\nuser/3\t\"x\\xffy\"\n"; r.stdout != want {
		t.Fatalf("scan --prefix:\n%q\nwant\n%q", r.stdout, want)
	}
	r = walrec(t, "scan", path, "--from", "user/2", "--to", "user/3").mustExit(t, exitOK, "scan --from --to")
	if r.stdout != "user/2\tgrace\n" {
		t.Fatalf("scan --from --to: %q", r.stdout)
	}
	r = walrec(t, "scan", path, "--json", "--limit", "2").mustExit(t, exitOK, "scan --json --limit")
	ls := jsonLines(t, "scan", r.stdout)
	if len(ls) != 3 || ls[0].str(t, "key") != "a\tb" || ls[2].num(t, "pairs") != 2 {
		t.Fatalf("scan --json --limit 2: %q", r.stdout)
	}
	walrec(t, "scan", path, "--prefix", "a", "--from", "b").mustExit(t, exitError, "scan with --prefix and --from")
	walrec(t, "get", filepath.Join(t.TempDir(), "missing.db"), "k").mustExit(t, exitError, "get of a missing file")
}
