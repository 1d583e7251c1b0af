//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
)

// withFree makes the filesystem report free bytes, for the test.
func withFree(t *testing.T, free int64) {
	old := freeSpace
	freeSpace = func(string) (int64, bool) { return free, true }
	t.Cleanup(func() { freeSpace = old })
}

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

// failWriter fails every write, as stdout on a full disk does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, syscall.ENOSPC }

// TestStdoutFailures: a report that cannot be written is an error (gen >/dev/full), and
// bench --json on a missing file still prints its one JSON line.
func TestStdoutFailures(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.db")
	var errb bytes.Buffer
	if code := run([]string{"gen", path, "--size", "64KiB"}, failWriter{}, &errb); code != exitError || !strings.Contains(errb.String(), "cannot write the report") {
		t.Fatalf("gen into a full stdout: exit %d, %q", code, errb.String())
	}
	for _, args := range [][]string{{"verify", path}, {"verify", path, "--json"}, {"dump", path}, {"bench", path, "--runs", "1"}, {"--version"}, {"--help"}} {
		errb.Reset()
		if code := run(args, failWriter{}, &errb); code != exitError {
			t.Fatalf("%v into a full stdout: exit %d, %q", args, code, errb.String())
		}
	}
	r := walrec(t, "bench", filepath.Join(dir, "missing.wal"), "--json").mustExit(t, 3, "bench --json of a missing file")
	if j := decodeJSON(t, r.stdout); j.str(t, "outcome") != "io_error" || j.str(t, "detail") != "no such file or directory" {
		t.Fatalf("%v", j)
	}
}

// TestFailureSaidOnce: a failure reaches the person once. On a terminal the report says it;
// redirected, the one-line error goes to stderr too; --json writes only JSON; --quiet only
// the line.
func TestFailureSaidOnce(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "corrupt"})
	redirected := walrec(t, "verify", path).mustExit(t, 2, "verify")
	if len(lines(redirected.stderr)) != 1 {
		t.Fatalf("redirected stdout: stderr %q", redirected.stderr)
	}
	if r := walrec(t, "verify", path, "--json").mustExit(t, 2, "verify --json"); r.stderr != "" {
		t.Fatalf("--json: stderr %q", r.stderr)
	}
	r := walrec(t, "verify", path, "--quiet").mustExit(t, 2, "verify --quiet")
	if r.stdout != "" || r.stderr != redirected.stderr {
		t.Fatalf("--quiet: %+v", r)
	}
	if r := walrec(t, "verify", filepath.Join(dir, "missing.db"), "--quiet").mustExit(t, 3, "verify --quiet"); r.stdout != "" || len(lines(r.stderr)) != 1 {
		t.Fatalf("--quiet, missing: %+v", r)
	}

	var out bytes.Buffer
	old := isTerminal
	isTerminal = func(w io.Writer) bool { return w == io.Writer(&out) }
	t.Cleanup(func() { isTerminal = old })
	var errb bytes.Buffer
	if code := run([]string{"verify", path}, &out, &errb); code != 2 || errb.Len() != 0 || out.String() != redirected.stdout {
		t.Fatalf("terminal: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
	// Clean: --quiet says nothing at all.
	clean, _, _ := gen(t, dir, genCase{layout: "v1", damage: "none"})
	if r := walrec(t, "verify", clean, "--quiet").mustExit(t, 0, "verify --quiet"); r.stdout != "" || r.stderr != "" {
		t.Fatalf("%+v", r)
	}
	if r := walrec(t, "gen", filepath.Join(dir, "q.db"), "--size", "64KiB", "--quiet").mustExit(t, 0, "gen --quiet"); r.stdout != "" || r.stderr != "" {
		t.Fatalf("%+v", r)
	}
}

// TestNoProgress: --no-progress draws no bar even on a terminal.
func TestNoProgress(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.db")
	oldTerm, oldDelay := isTerminal, progressDelay
	isTerminal, progressDelay = func(io.Writer) bool { return true }, 0
	t.Cleanup(func() { isTerminal, progressDelay = oldTerm, oldDelay })
	if r := walrec(t, "gen", path, "--size", "4MiB", "--record-size", "512", "--no-progress").mustExit(t, 0, "gen"); r.stderr != "" {
		t.Fatalf("gen --no-progress drew %q", r.stderr)
	}
	if r := walrec(t, "verify", path, "--no-progress", "--parallelism", "1").mustExit(t, 0, "verify"); r.stderr != "" {
		t.Fatalf("verify --no-progress drew %q", r.stderr)
	}
	if r := walrec(t, "verify", path, "--parallelism", "1").mustExit(t, 0, "verify"); !strings.Contains(r.stderr, "verify") {
		t.Fatalf("without --no-progress, no bar: %q", r.stderr)
	}
}

// TestVersion: walrec --version names the module and the Go release.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version", "-version"} {
		r := walrec(t, arg).mustExit(t, 0, arg)
		if !strings.HasPrefix(r.stdout, "walrec ") || !strings.Contains(r.stdout, "built with go") || len(lines(r.stdout)) != 1 {
			t.Fatalf("%s: %q", arg, r.stdout)
		}
	}
	walrec(t, "--version", "extra").mustExit(t, 3, "--version extra")

	// A test binary, like "go run", records no commit: the version names the source tree's,
	// read with git and said to be so, or says it is unknown; never nothing.
	r := walrec(t, "--version")
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
		if !strings.Contains(r.stdout, ", commit "+strings.TrimSpace(string(head))) || !strings.Contains(r.stdout, "read from its source tree's git at run time") {
			t.Fatalf("--version without a recorded commit: %q, want commit %s", r.stdout, head)
		}
	} else if !strings.Contains(r.stdout, ", commit unknown (") {
		t.Fatalf("--version without git: %q", r.stdout)
	}
}

// TestHelpFlagsSpelling: usage and the flag list spell flags the same way, --name.
func TestHelpFlagsSpelling(t *testing.T) {
	for cmd := range commands {
		r := walrec(t, cmd, "--help").mustExit(t, 0, cmd+" --help")
		_, flags, ok := strings.Cut(r.stdout, "\nFlags:\n")
		if !ok {
			t.Fatalf("%s --help has no flag list", cmd)
		}
		for _, l := range lines(flags) {
			if strings.HasPrefix(l, "  -") && !strings.HasPrefix(l, "  --") {
				t.Fatalf("%s --help lists %q with one dash", cmd, l)
			}
		}
		quick := map[string]bool{"sidecars": true, "backup": true, "restore": true} // no progress: their work is short
		if !quick[cmd] && (!strings.Contains(flags, "  --no-progress") || !strings.Contains(flags, "  --progress MODE")) {
			t.Fatalf("%s --help lacks --no-progress or --progress:\n%s", cmd, flags)
		}
		if quick[cmd] && strings.Contains(flags, "progress") {
			t.Fatalf("%s --help offers progress it never shows:\n%s", cmd, flags)
		}
	}
	if r := walrec(t, "bench", "--help"); !strings.Contains(r.stdout, "shown first but measured last") || !strings.Contains(r.stdout, "payload MB/s") {
		t.Fatalf("bench --help:\n%s", r.stdout)
	}
	for _, want := range []string{"130 Ctrl-C (SIGINT)", "143 SIGTERM", "walrec --version"} {
		if r := walrec(t, "--help"); !strings.Contains(r.stdout, want) {
			t.Fatalf("--help lacks %q", want)
		}
	}
}

// TestJSONFieldsAlwaysPresent: every field of the report is present, null when unset.
func TestJSONFieldsAlwaysPresent(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "none"})
	j := decodeJSON(t, walrec(t, "verify", path, "--json").stdout)
	for _, k := range []string{"detail", "hint", "code", "offset", "error", "file_hex"} {
		if v, ok := j[k]; !ok || v != nil {
			t.Fatalf("%s: %v (present %v), want null", k, v, ok)
		}
	}
	j = decodeJSON(t, walrec(t, "recover", path, "--json").stdout)
	for _, k := range []string{"sidecar", "sidecar_hex", "output", "output_hex", "detail", "hint"} {
		if v, ok := j[k]; !ok || v != nil {
			t.Fatalf("recover %s: %v (present %v), want null", k, v, ok)
		}
	}
}

// TestUsageLimits: flag values recovery would refuse are usage errors, not reports.
func TestUsageLimits(t *testing.T) {
	for _, args := range [][]string{
		{"verify", "x.db", "--parallelism", "100000"},
		{"recover", "x.db", "--parallelism", "1025"},
		{"bench", "x.db", "--parallelism", "1,100000"},
		{"recover", "x.db", "--sidecar-dir", "/nonexistent-dir"},
		{"recover", "x.db", "--output", "y.db", "--sidecar-dir", "."},
		{"dump", "x.db", "--limit", "-1"},
	} {
		r := walrec(t, args...).mustExit(t, 3, strings.Join(args, " "))
		if r.stdout != "" || !strings.Contains(r.stderr, "--help\" for usage") {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	// The limit is recovery's own.
	f := bytes.NewReader(nil)
	if _, err := recovery.Recover(t.Context(), f, nil, recovery.WithParallelism(maxParallelism+1)); recovery.CodeOf(err) != recovery.CodeInvalidArgument {
		t.Fatalf("recovery accepts parallelism %d: %v", maxParallelism+1, err)
	}
	if _, err := recovery.Recover(t.Context(), f, nil, recovery.WithParallelism(maxParallelism)); err != nil {
		t.Fatalf("recovery refuses parallelism %d: %v", maxParallelism, err)
	}
}

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

// TestNames: a name that is not UTF-8 or holds a newline is quoted in text and exact (in
// hex) in JSON, so a script finds the sidecar.
func TestNames(t *testing.T) {
	dir := t.TempDir()
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	odd := filepath.Join(dir, "bad\xff\xfe\nname.db")
	if err := os.Rename(path, odd); err != nil {
		t.Skip("the filesystem refuses the name:", err)
	}
	r := walrec(t, "verify", odd).mustExit(t, 1, "verify")
	if strings.Contains(r.stdout, "\xff") || !strings.Contains(r.stdout, `bad\xff\xfe\nname.db`) {
		t.Fatalf("%q", r.stdout)
	}
	j := decodeJSON(t, walrec(t, "recover", odd, "--json").mustExit(t, 0, "recover").stdout)
	fh, err := hex.DecodeString(j.str(t, "file_hex"))
	if err != nil || string(fh) != odd {
		t.Fatalf("file_hex %v", j)
	}
	sh, err := hex.DecodeString(j.str(t, "sidecar_hex"))
	if err != nil {
		t.Fatal(err)
	}
	assertFile(t, string(sh), data[at:])
	r = walrec(t, "verify", filepath.Join(dir, "missing\nfile.db")).mustExit(t, 3, "verify")
	if len(lines(r.stderr)) != 1 || len(lines(r.stdout)) != 3 {
		t.Fatalf("a newline in a name broke a line: %q %q", r.stdout, r.stderr)
	}
}

// TestDumpRange: --from, --start-offset and --limit choose the records printed; the report
// and the exit status stay those of verify.
func TestDumpRange(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	full := walrec(t, "verify", path, "--json").mustExit(t, 1, "verify")
	for _, tc := range []struct {
		args  []string
		first int64
		n     int
	}{
		{[]string{"--from", "5", "--limit", "3"}, 5, 3},
		{[]string{"--start-offset", "5009", "--limit", "2"}, 6, 2}, // records are 1000 bytes from offset 8
		{[]string{"--from", "203"}, 203, 1},
		{[]string{"--from", "500"}, 0, 0},
	} {
		r := walrec(t, append([]string{"dump", path, "--json"}, tc.args...)...).mustExit(t, 1, "dump")
		ls := lines(r.stdout)
		recs := map[int64]bool{}
		var first int64 = -1
		for _, l := range ls[:len(ls)-2] { // the ops; then the bad record and the report
			op := decodeJSON(t, l)
			n := op.num(t, "record")
			if first < 0 {
				first = n
			}
			recs[n] = true
		}
		if len(recs) != tc.n || tc.n > 0 && first != tc.first {
			t.Fatalf("%v: records %v, want %d from %d", tc.args, recs, tc.n, tc.first)
		}
		rep := decodeJSON(t, ls[len(ls)-1])
		want := decodeJSON(t, full.stdout)
		if rep.num(t, "records") != want.num(t, "records") || rep.str(t, "outcome") != want.str(t, "outcome") {
			t.Fatalf("%v: report %v", tc.args, rep)
		}
	}
	r := walrec(t, "dump", path, "--limit", "1").mustExit(t, 1, "dump --limit 1")
	if strings.Count(r.stdout, "\nrecord ")+strings.Count(r.stdout[:7], "record ") != 1 || !strings.Contains(r.stdout, "\nthe bad record: recovery stopped at offset") {
		t.Fatalf("%s", r.stdout)
	}
}

// TestReportFromResult: the report takes the refused cut of a strict refusal and the decided
// cut of a failed repair from Result.Truncation, without a second recovery.
func TestReportFromResult(t *testing.T) {
	tr := &recovery.Truncation{Offset: 100, Bytes: 18, Reason: recovery.ReasonTornTail, Detail: "record runs past the end of the file"}
	res := recovery.Result{Layout: recovery.LayoutV1, Size: 118, Records: 3, End: 100, Truncation: tr}
	strict := &recovery.Error{Code: recovery.CodeTailDamage, Offset: 100, Detail: "record runs past the end of the file (torn_tail)"}
	r := newReport("x.db", recovery.Strict, res, strict)
	if r.Outcome != "torn_tail" || r.Exit != exitRefused || r.TruncateBytes != 0 || *r.Code != "TAIL_DAMAGE" || !strings.Contains(r.Hint, "--mode strict") {
		t.Fatalf("strict: %+v", r)
	}
	hook := fmt.Errorf("recovery: before cutting: %w", &recovery.Error{Code: recovery.CodeIO, Offset: 100, Detail: "cannot create the sidecar", Err: syscall.EACCES})
	r = newReport("x.db", recovery.Tolerate, res, hook)
	if r.Outcome != outIO || r.Exit != exitError || r.TruncateBytes != 18 || *r.Offset != 100 || r.Size != 118 || *r.Layout != "v1" || r.Records != 3 ||
		!strings.Contains(r.Detail, "permission denied") {
		t.Fatalf("failed hook: %+v", r)
	}
	var b strings.Builder
	writeHuman(&b, &r, &recoverReport{report: r})
	if !strings.Contains(b.String(), "recovery had decided to cut the last 18 bytes; nothing was cut, the file is untouched") {
		t.Fatalf("%s", b.String())
	}
	// The cut was made but its sync failed: the report says the bytes were cut.
	res.Truncated = true
	syncErr := &recovery.Error{Code: recovery.CodeIO, Offset: 100, Detail: "the file was cut but the sync after it failed", Err: syscall.EIO}
	r = newReport("x.db", recovery.Tolerate, res, syncErr)
	b.Reset()
	writeHuman(&b, &r, &recoverReport{report: r, Truncated: true})
	if r.Exit != exitError || !strings.Contains(b.String(), "the last 18 bytes were cut, but the cut may not be durable; run walrec recover again") {
		t.Fatalf("%s", b.String())
	}
}

// TestHelpListsEveryCommand: the main help names every command there is, those that register
// themselves from their own file included.
func TestHelpListsEveryCommand(t *testing.T) {
	r := walrec(t, "--help").mustExit(t, 0, "--help")
	for cmd := range commands {
		if !strings.Contains(r.stdout, "walrec "+cmd+" ") {
			t.Errorf("walrec --help does not list %q", cmd)
		}
	}
}
