//go:build unix

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/streamwal/recovery/db"
)

// TestRecoverFailureKeepsFacts: a sidecar that cannot be created (its name is too long for
// the filesystem) fails the repair with IO_ERROR and cuts nothing, and the report still
// carries what recovery measured and decided.
func TestRecoverFailureKeepsFacts(t *testing.T) {
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("x", 250)+".db") // 253 bytes: the sidecar's name is longer than 255
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	if err := os.Rename(path, long); err != nil {
		t.Fatal(err)
	}
	r := walrec(t, "recover", long, "--json").mustExit(t, 3, "recover")
	j := decodeJSON(t, r.stdout)
	if j.str(t, "code") != "IO_ERROR" || j.num(t, "size") != int64(len(data)) || j.str(t, "layout") != "v1" ||
		j.num(t, "offset") != at || j.num(t, "truncate_bytes") != int64(len(data))-at || j["truncated"] != false ||
		j.num(t, "records") == 0 || !strings.Contains(j.str(t, "detail"), "file name too long") {
		t.Fatalf("%v", j)
	}
	assertFile(t, long, data)
	assertNoSidecar(t, dir)
	r = walrec(t, "recover", long).mustExit(t, 3, "recover")
	if want := fmt.Sprintf("io_error at offset %d (IO_ERROR): recovery had decided to cut the last %d bytes; nothing was cut, the file is untouched", at, int64(len(data))-at); !strings.Contains(r.stdout, want) {
		t.Fatalf("want %q in:\n%s", want, r.stdout)
	}
	if !strings.Contains(r.stdout, "--sidecar-dir DIR") || strings.Contains(r.stdout, "db.ReadOnly") || strings.Contains(r.stdout, "With") {
		t.Fatalf("the hint names walrec's flags, not library options:\n%s", r.stdout)
	}
	// --sidecar-dir puts the sidecar elsewhere.
	path, data, at = gen(t, dir, genCase{layout: "legacy", damage: "torn_tail"})
	other := t.TempDir()
	j = decodeJSON(t, walrec(t, "recover", path, "--json", "--sidecar-dir", other).mustExit(t, 0, "recover --sidecar-dir").stdout)
	want := filepath.Join(other, fmt.Sprintf("%s.cut-%d", filepath.Base(path), at))
	if j.str(t, "sidecar") != want {
		t.Fatalf("%v, want sidecar %s", j, want)
	}
	assertFile(t, want, data[at:])
	assertFile(t, path, data[:at])
}

// TestRecoverNoRoom: when the cut bytes would not fit in the free space, recover refuses
// and cuts nothing; a tail of zeros fits anyway: it is kept as a hole.
func TestRecoverNoRoom(t *testing.T) {
	dir := t.TempDir()
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"}, "--record-size", "4MiB", "--size", "9MiB")
	withFree(t, 1<<20)
	r := walrec(t, "recover", path, "--json").mustExit(t, 3, "recover without room")
	j := decodeJSON(t, r.stdout)
	if j.str(t, "code") != "IO_ERROR" || !strings.Contains(j.str(t, "detail"), "cut bytes do not fit in the 1,048,576 bytes (1.0 MiB) free") ||
		j.num(t, "truncate_bytes") != int64(len(data))-at {
		t.Fatalf("%v", j)
	}
	assertFile(t, path, data)
	assertNoSidecar(t, dir)
}

// TestRecoverZeroTail: a preallocated or sparse tail of zeros ("truncate -s +16M") is cut and
// kept in a sidecar that reads back byte for byte but takes (almost) no disk space.
func TestRecoverZeroTail(t *testing.T) {
	dir := t.TempDir()
	path, data, _ := gen(t, dir, genCase{layout: "v1", damage: "none"})
	const zeros = 16 << 20
	if err := os.Truncate(path, int64(len(data))+zeros); err != nil {
		t.Fatal(err)
	}
	withFree(t, 1<<20) // the zeros need no room
	r := walrec(t, "recover", path, "--json").mustExit(t, 0, "recover")
	j := decodeJSON(t, r.stdout)
	sc := j.str(t, "sidecar")
	if j.str(t, "outcome") != "damaged_tail" || j.num(t, "truncate_bytes") != zeros || j.num(t, "sidecar_hole_bytes") != zeros || j["truncated"] != true {
		t.Fatalf("%v", j)
	}
	assertFile(t, path, data)
	fi, err := os.Stat(sc)
	if err != nil || fi.Size() != zeros {
		t.Fatalf("sidecar %v %v", fi, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Blocks*512 > 1<<20 {
		t.Fatalf("the sidecar of 16 MiB of zeros takes %d bytes of disk", st.Blocks*512)
	}
	f, err := os.Open(sc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		if !bytes.Equal(buf[:n], make([]byte, n)) {
			t.Fatal("the sidecar holds a byte that is not zero")
		}
		if err != nil {
			break
		}
	}
	r = walrec(t, "recover", path).mustExit(t, 0, "recover again")
	if !strings.Contains(r.stdout, "clean") {
		t.Fatalf("%s", r.stdout)
	}
}

// TestRecoverThroughSymlink: the sidecar goes beside the database, not beside the link.
func TestRecoverThroughSymlink(t *testing.T) {
	root := t.TempDir()
	real, links := filepath.Join(root, "real"), filepath.Join(root, "links")
	for _, d := range []string{real, links} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path, data, at := gen(t, real, genCase{layout: "v1", damage: "torn_tail"})
	link := filepath.Join(links, "db.wal")
	if err := os.Symlink(filepath.Join("..", "real", filepath.Base(path)), link); err != nil {
		t.Fatal(err)
	}
	j := decodeJSON(t, walrec(t, "recover", link, "--json").mustExit(t, 0, "recover via a link").stdout)
	want := fmt.Sprintf("%s.cut-%d", path, at)
	if j.str(t, "sidecar") != want {
		t.Fatalf("sidecar %s, want %s", j.str(t, "sidecar"), want)
	}
	assertFile(t, want, data[at:])
	assertFile(t, path, data[:at])
	assertNoSidecar(t, links)
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", fi, err)
	}
}

// TestRecoverOutput: --output writes the repaired log to a new file and leaves the original
// byte for byte (no sidecar: the cut bytes stay in it); a refused file gets no copy; an
// existing COPY is never replaced.
func TestRecoverOutput(t *testing.T) {
	dir := t.TempDir()
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	out := filepath.Join(dir, "copy.db")
	j := decodeJSON(t, walrec(t, "recover", path, "--output", out, "--json").mustExit(t, 0, "recover --output").stdout)
	if j.str(t, "output") != out || j.num(t, "output_bytes") != at || j["truncated"] != true || j["sidecar"] != nil || j.str(t, "outcome") != "torn_tail" {
		t.Fatalf("%v", j)
	}
	assertFile(t, path, data)
	assertFile(t, out, data[:at])
	assertNoSidecar(t, dir)
	walrec(t, "verify", out).mustExit(t, 0, "verify the copy")
	r := walrec(t, "recover", path, "--output", out).mustExit(t, 3, "recover --output over an existing file")
	if !strings.Contains(r.stderr, "already exists; recover never replaces a file") {
		t.Fatalf("%q", r.stderr)
	}
	assertFile(t, out, data[:at])
	r = walrec(t, "recover", path, "--output", filepath.Join(dir, "copy2.db"))
	if !strings.Contains(r.stdout, "the copy leaves out the last") || !strings.Contains(r.stdout, "holds the repaired log and opens cleanly") {
		t.Fatalf("%s", r.stdout)
	}

	bad, badData, _ := gen(t, dir, genCase{layout: "legacy", damage: "corrupt"})
	out3 := filepath.Join(dir, "copy3.db")
	walrec(t, "recover", bad, "--output", out3).mustExit(t, 2, "recover --output of a corrupt file")
	if _, err := os.Stat(out3); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused file got a copy: %v", err)
	}
	assertFile(t, bad, badData)
	// point-in-time: the copy keeps the records before the corruption.
	j = decodeJSON(t, walrec(t, "recover", bad, "--output", out3, "--mode", "point-in-time", "--json").mustExit(t, 0, "pit --output").stdout)
	assertFile(t, out3, badData[:j.num(t, "offset")])
	assertFile(t, bad, badData)
	// A locked database: LOCKED, no copy.
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	walrec(t, "recover", path, "--output", filepath.Join(dir, "copy4.db")).mustExit(t, 3, "recover --output of a locked database")
	if _, err := os.Stat(filepath.Join(dir, "copy4.db")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a locked database got a copy: %v", err)
	}
}
