//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/streamwal/recovery/db"
)

// walrec backup beside a writer that holds the database: a full backup, then an incremental
// one with --since, which restore puts back together (with --expect) into the writer's log,
// byte for byte; after a compaction, --since is REWRITTEN (exit 2) and writes nothing.
func TestBackupBesideAWriterAndRestore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "live.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	set := func(k string) {
		if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte(k), bytes.Repeat([]byte(k), 100)) }); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"a", "b", "c"} {
		set(k)
	}
	full, fullInfo := filepath.Join(dir, "full.bak"), filepath.Join(dir, "full.json")
	walrec(t, "backup", path, full, "--info", fullInfo, "--quiet").mustExit(t, exitOK, "full backup")
	set("d")
	inc, incInfo := filepath.Join(dir, "inc.bak"), filepath.Join(dir, "inc.json")
	r := walrec(t, "backup", path, inc, "--since", fullInfo, "--info", incInfo, "--json").mustExit(t, exitOK, "incremental backup")
	var info db.BackupInfo
	if err := json.Unmarshal([]byte(r.stdout), &info); err != nil || info.Records != 1 || info.Start == 0 {
		t.Fatalf("incremental report %q: %+v %v", r.stdout, info, err)
	}
	both := filepath.Join(dir, "both.bak")
	os.WriteFile(both, append(readAll(t, full), readAll(t, inc)...), 0o644)
	restored := filepath.Join(dir, "restored.db")
	walrec(t, "restore", both, restored, "--expect", incInfo, "--quiet").mustExit(t, exitOK, "restore")
	if !bytes.Equal(readAll(t, restored), readAll(t, path)) {
		t.Fatal("the restored database is not the writer's log")
	}
	walrec(t, "backup", path, full, "--quiet").mustExit(t, exitError, "backup over an existing OUT")
	if _, err := d.Compact(); err != nil {
		t.Fatal(err)
	}
	again := filepath.Join(dir, "again.bak")
	r = walrec(t, "backup", path, again, "--since", incInfo).mustExit(t, exitRefused, "--since after a compaction")
	if !strings.Contains(r.stderr, "REWRITTEN") {
		t.Fatalf("stderr %q", r.stderr)
	}
	if _, err := os.Stat(again); err == nil {
		t.Fatal("a refused incremental backup left a file")
	}
	// restore never replaces a database a process has open.
	r = walrec(t, "restore", full, path).mustExit(t, exitError, "restore over an open database")
	if !strings.Contains(r.stderr, "LOCKED") {
		t.Fatalf("stderr %q", r.stderr)
	}
}

// SIGKILL in the middle of a backup leaves no file under OUT's name (a complete backup or
// none), and walrec restore - reads a backup from standard input.
func TestBackupKilledLeavesNoneAndRestoreFromStdin(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	walrec(t, "gen", path, "--size", "4MiB", "--quiet").mustExit(t, exitOK, "gen")
	out := filepath.Join(dir, "x.bak")
	c := startWalrec(t, "backup", nil, nil, "backup", path, out)
	c.signal(t, syscall.SIGKILL)
	if _, err := os.Stat(out); err == nil {
		t.Fatal("a killed backup left a file under OUT's name")
	}
	walrec(t, "backup", path, out, "--quiet").mustExit(t, exitOK, "backup after the kill")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(dir, "restored.db")
	cmd := exec.Command(exe, "restore", "-", restored, "--quiet")
	cmd.Env = append(os.Environ(), "WALREC_TEST_MAIN=1")
	cmd.Stdin = bytes.NewReader(readAll(t, out))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restore -: %v %s", err, b)
	}
	if !bytes.Equal(readAll(t, restored), readAll(t, path)) {
		t.Fatal("restore from stdin differs from the database")
	}
	cmd = exec.Command(exe, "restore", "-", filepath.Join(dir, "cut.db"))
	cmd.Env = append(os.Environ(), "WALREC_TEST_MAIN=1")
	cmd.Stdin = bytes.NewReader(readAll(t, out)[:1<<20+5])
	if b, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != exitRefused || !strings.Contains(string(b), "TAIL_DAMAGE") {
		t.Fatalf("a cut stream from stdin: exit %d: %s", cmd.ProcessState.ExitCode(), b)
	}
}
