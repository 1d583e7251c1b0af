package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/streamwal/recovery/db"
)

// gen --force never replaces a database a process has open: run as a separate process beside
// this one, which holds the database, it exits 3 with LOCKED, the file is byte for byte as it
// was and nothing is left beside it; and the holder's next commit is in the file. Before,
// gen swapped the file and exited 0, and the holder's next commit went to the unlinked file.
func TestGenForceRefusesADatabaseInUse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "live.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	set := func(k string) {
		if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte(k), []byte("v")) }); err != nil {
			t.Fatal(err)
		}
	}
	set("before")
	before, _ := os.ReadFile(path)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "gen", path, "--force", "--size", "1MiB", "--no-progress")
	cmd.Env = append(os.Environ(), "WALREC_TEST_MAIN=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != exitError || !strings.Contains(stderr.String(), "LOCKED") {
		t.Fatalf("gen --force beside a holder: exit %d (%v): %s", code, err, stderr.String())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatal("gen --force changed a database in use")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries beside the database", len(ents))
	}
	set("after")
	r, err := db.Open(path, db.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.View(func(tx *db.Tx) error {
		if v, _ := tx.Get([]byte("after")); v == nil {
			t.Error("the holder's commit after gen --force is not in the file")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// gen --force through a symbolic link replaces the file the link names, in its directory,
// with its mode; the link stays a link.
func TestGenForceThroughALinkKeepsTheLinkAndMode(t *testing.T) {
	realDir, linkDir := t.TempDir(), t.TempDir()
	real := filepath.Join(realDir, "real.db")
	link := filepath.Join(linkDir, "link.db")
	if err := os.WriteFile(real, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(real, 0o600); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	walrec(t, "gen", link, "--force", "--size", "64KiB", "--quiet").mustExit(t, exitOK, "gen --force through a link")
	fi, err := os.Lstat(link)
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
	fi, err = os.Stat(real)
	if err != nil || fi.Mode() != 0o600 || fi.Size() < 32<<10 {
		t.Fatalf("the real file: %v %v", fi, err)
	}
	for _, d := range []string{realDir, linkDir} {
		if ents, _ := os.ReadDir(d); len(ents) != 1 {
			t.Fatalf("%s holds %d entries", d, len(ents))
		}
	}
	walrec(t, "verify", link).mustExit(t, exitOK, "verify the generated file")
}
