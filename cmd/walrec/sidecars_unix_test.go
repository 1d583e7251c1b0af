//go:build unix

package main

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSidecarsOddPaths: sidecars of a FIFO is refused at once (exit 3, it does not block),
// and a sidecar whose name is not UTF-8 has its exact bytes in path_hex, so a script can
// find it.
func TestSidecarsOddPaths(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err == nil {
		r := walrec(t, "sidecars", fifo, "--json").mustExit(t, exitError, "sidecars of a FIFO")
		if j := lastReport(t, "sidecars", r.stdout); !strings.Contains(j.str(t, "detail"), "is a FIFO, not a database file") {
			t.Fatalf("%v", j)
		}
	}
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	odd := filepath.Join(dir, "odd\xff.db")
	if err := os.Rename(path, odd); err != nil {
		t.Skip("the filesystem refuses the name:", err)
	}
	walrec(t, "recover", odd, "--quiet").mustExit(t, exitOK, "recover")
	r := walrec(t, "sidecars", odd, "--json").mustExit(t, exitOK, "sidecars")
	ls := jsonLines(t, "sidecars", r.stdout)
	sc := ofType(t, ls, "sidecar")
	if len(sc) != 1 {
		t.Fatalf("%s", r.stdout)
	}
	name, err := hex.DecodeString(sc[0].str(t, "path_hex"))
	if err != nil {
		t.Fatal(err)
	}
	assertFile(t, string(name), data[at:])
	if fh, _ := hex.DecodeString(ls[len(ls)-1].str(t, "file_hex")); string(fh) != odd {
		t.Fatalf("file_hex %v", ls[len(ls)-1])
	}
}
