//go:build unix

package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestGenRefusesNonRegular: a directory, a FIFO, a socket, a device and a link to one are
// refused, with and without --force, and left as they were.
func TestGenRefusesNonRegular(t *testing.T) {
	dir := t.TempDir()
	nodes := map[string]string{"dir": "a directory"}
	if err := os.Mkdir(filepath.Join(dir, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err == nil {
		nodes["fifo"] = "a FIFO"
		if err := os.Symlink("fifo", filepath.Join(dir, "link-to-fifo")); err != nil {
			t.Fatal(err)
		}
		nodes["link-to-fifo"] = "a FIFO"
	}
	if l, err := net.Listen("unix", filepath.Join(dir, "sock")); err == nil {
		defer l.Close()
		nodes["sock"] = "a socket"
	}
	if os.Geteuid() == 0 { // mknod needs root: the device is /dev/null's (1, 3), made here
		if err := syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
			nodes["null"] = "a character device"
		}
	}
	for name, kind := range nodes {
		path := filepath.Join(dir, name)
		before, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, force := range []bool{false, true} {
			args := []string{"gen", path, "--size", "64KiB"}
			if force {
				args = append(args, "--force")
			}
			r := walrec(t, args...).mustExit(t, 3, strings.Join(args, " "))
			if !strings.Contains(r.stderr, "is "+kind+", not a regular file") {
				t.Fatalf("%s: stderr %q", name, r.stderr)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) || after.Mode() != before.Mode() {
				t.Fatalf("%s was changed: %v %v", name, after, err)
			}
		}
	}
	if len(nodes) < 4 {
		t.Logf("only %d kinds of node could be made here", len(nodes))
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(nodes) {
		t.Fatalf("gen left files behind: %v", ents)
	}
}

// TestGenStopsMidRecord: gen looks at its context every MiB, so it stops inside a large
// record (16 MiB here), and removes the file it created.
func TestGenStopsMidRecord(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.db")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var paused int64
	testPause, testPaused = "gen", func(context.Context, string) {
		fi, _ := os.Stat(path)
		paused = fi.Size()
		cancel()
	}
	t.Cleanup(func() { testPause, testPaused = "", nil })
	var out, errb bytes.Buffer
	code := runContext(ctx, []string{"gen", path, "--size", "256MiB", "--record-size", "16MiB"}, &out, &errb)
	if code != exitError || !strings.Contains(errb.String(), "stopped before the end (the partial file was removed)") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	if paused <= 0 || paused > 2<<20 {
		t.Fatalf("stopped with %d bytes written; want inside the first 16 MiB record", paused)
	}
	assertEmptyDir(t, dir)
}

// TestGenFreeSpace: gen refuses a file larger than the free space, before writing anything.
func TestGenFreeSpace(t *testing.T) {
	dir := t.TempDir()
	withFree(t, 1<<20)
	r := walrec(t, "gen", filepath.Join(dir, "x.db"), "--size", "1TiB", "--record-size", "1GiB").mustExit(t, 3, "gen of 1 TiB")
	if !strings.Contains(r.stderr, "the file needs 1,098,437,885,960 bytes (1023.0 GiB) but only 1,048,576 bytes (1.0 MiB) is free in") ||
		!strings.Contains(r.stderr, "nothing was written") {
		t.Fatalf("stderr %q", r.stderr)
	}
	assertEmptyDir(t, dir)
	walrec(t, "gen", filepath.Join(dir, "x.db"), "--size", "512KiB").mustExit(t, 0, "gen that fits")
}

// TestGenBoundedMemory: a 16 MiB record is streamed: gen allocates a few MiB, not the record
// three times over, and recovery reads back exactly the records gen says it wrote.
func TestGenBoundedMemory(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "huge.db")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.TotalAlloc
	r := walrec(t, "gen", path, "--size", "33MiB", "--record-size", "16MiB", "--ops", "2").mustExit(t, 0, "gen")
	runtime.ReadMemStats(&ms)
	if alloc := ms.TotalAlloc - before; alloc > 6<<20 {
		t.Fatalf("gen allocated %d bytes for 16 MiB records", alloc)
	}
	if !strings.Contains(r.stdout, "2 records, 4 ops, 33554440 bytes") {
		t.Fatalf("%s", r.stdout)
	}
	j := decodeJSON(t, walrec(t, "verify", path, "--json").mustExit(t, 0, "verify").stdout)
	if j.num(t, "records") != 2 || j.num(t, "largest_record") != 16<<20-12 {
		t.Fatalf("%v", j)
	}
}
