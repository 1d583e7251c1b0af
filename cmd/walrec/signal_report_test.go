//go:build unix

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sigName is the report's name of a signal.
func sigName(s syscall.Signal) string { return signalName(int(s)) }

// lastReport is the last line of a JSON Lines output, which must be the command's report.
func lastReport(t *testing.T, cmd, stdout string) jsonReport {
	t.Helper()
	ls := jsonLines(t, cmd, stdout)
	if len(ls) == 0 {
		t.Fatalf("%s printed no JSON", cmd)
	}
	r := ls[len(ls)-1]
	if r.str(t, "type") != "report" {
		t.Fatalf("%s: the last line is not the report: %v", cmd, r)
	}
	return r
}

// TestSignalStopsReadOnlyCommands: verify, dump and bench stopped by a real SIGINT or SIGTERM
// after recovery's first chunk exit 128+N, and their report says the same: exit 128+N,
// signal named, outcome canceled, nothing written (text: "stopped by SIGINT ... nothing was
// written", "exit      130"). Before, the process exited 130 and the report said 3.
func TestSignalStopsReadOnlyCommands(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.db")
	walrec(t, "gen", path, "--size", "16MiB", "--record-size", "64KiB", "--quiet").mustExit(t, exitOK, "gen")
	data := readAll(t, path)
	for _, cmd := range []string{"verify", "dump", "bench"} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(cmd+"/"+sigName(sig), func(t *testing.T) {
				code := 128 + int(sig)
				args := []string{cmd, path, "--json"}
				switch cmd {
				case "bench":
					args = append(args, "--runs", "1", "--parallelism", "1")
				case "verify":
					args = append(args, "--parallelism", "1")
				}
				var out bytes.Buffer
				c := startWalrec(t, cmd, nil, &out, args...)
				c.signal(t, sig)
				if c.code != code {
					t.Fatalf("exit %d, want %d; stderr %q", c.code, code, c.errbuf.String())
				}
				r := lastReport(t, cmd, out.String())
				if r.num(t, "exit") != int64(code) || r.str(t, "signal") != sigName(sig) || r.str(t, "outcome") != "canceled" || r.str(t, "code") != "CANCELED" {
					t.Fatalf("report %v, want exit %d and %s", r, code, sigName(sig))
				}
				if c.errbuf.Len() != 0 {
					t.Fatalf("--json: stderr %q, want nothing", c.errbuf.String())
				}
				assertFile(t, path, data)
			})
		}
	}
	// Text: the report says it too, and the one line on stderr.
	var out bytes.Buffer
	c := startWalrec(t, "verify", nil, &out, "verify", path, "--parallelism", "1")
	c.signal(t, syscall.SIGINT)
	if c.code != 130 || !strings.Contains(out.String(), "outcome   stopped by SIGINT at offset ") || !strings.Contains(out.String(), ": nothing was written\n") ||
		!strings.HasSuffix(out.String(), "  exit      130\n") {
		t.Fatalf("exit %d, stdout:\n%s", c.code, out.String())
	}
	if want := "walrec verify " + path + ": stopped by SIGINT (exit 130) at offset "; !strings.HasPrefix(c.errbuf.String(), want) {
		t.Fatalf("stderr %q, want %q...", c.errbuf.String(), want)
	}
}

// TestSignalRecover: recover stopped while it reads cuts nothing (exit 130, truncated false,
// no sidecar, the file as it was); stopped once its sidecar is complete, the cut follows at
// once and the report, exit 143, says the bytes were cut and where they are kept.
func TestSignalRecover(t *testing.T) {
	dir := t.TempDir()
	big, bigData, _ := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"}, "--size", "16MiB", "--record-size", "64KiB")
	var out bytes.Buffer
	c := startWalrec(t, "recover", nil, &out, "recover", big, "--json", "--parallelism", "1")
	c.signal(t, syscall.SIGINT)
	r := lastReport(t, "recover", out.String())
	if c.code != 130 || r.num(t, "exit") != 130 || r.str(t, "signal") != "SIGINT" || r["truncated"] != false || r["sidecar"] != nil || r.str(t, "outcome") != "canceled" {
		t.Fatalf("exit %d, report %v", c.code, r)
	}
	assertFile(t, big, bigData)
	assertNoSidecar(t, dir)

	path, data, at := gen(t, dir, genCase{layout: "legacy", damage: "torn_tail"})
	out.Reset()
	c = startWalrec(t, "recover-sidecar", nil, &out, "recover", path, "--json")
	c.signal(t, syscall.SIGTERM)
	r = lastReport(t, "recover", out.String())
	sidecar := fmt.Sprintf("%s.cut-%d", path, at)
	if c.code != 143 || r.num(t, "exit") != 143 || r.str(t, "signal") != "SIGTERM" || r["truncated"] != true || r.str(t, "sidecar") != sidecar || r.str(t, "code") != "null" {
		t.Fatalf("exit %d, report %v", c.code, r)
	}
	assertFile(t, path, data[:at])
	assertFile(t, sidecar, data[at:])

	// In text: the report is whole, and says the signal came after it.
	path, data, at = gen(t, t.TempDir(), genCase{layout: "v1", damage: "torn_tail"})
	out.Reset()
	c = startWalrec(t, "recover-sidecar", nil, &out, "recover", path)
	c.signal(t, syscall.SIGHUP)
	for _, want := range []string{fmt.Sprintf("cut the last %d bytes", int64(len(data))-at), "holds the cut bytes", "the file opens cleanly", "  signal    SIGHUP came once the work above was done: it is whole\n", "  exit      129\n"} {
		if c.code != 129 || !strings.Contains(out.String(), want) {
			t.Fatalf("exit %d: %q not in\n%s", c.code, want, out.String())
		}
	}
}

// closedPipe is a pipe whose reader is gone, as in "walrec ... | true": what is written to
// it fails with EPIPE.
func closedPipe(t *testing.T) *os.File {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	pr.Close()
	t.Cleanup(func() { pw.Close() })
	return pw
}

// TestClosedPipeSaysWhatWasDone: "walrec recover F | true", "walrec gen F | true", "walrec
// compact F | true" and "walrec sidecars F --clear | true" exit 141 and, their report being
// unwritable, say on stderr what they did: the cut and its sidecar, the complete generated
// file (kept, as gen's help says), the compaction, the sidecars removed.
func TestClosedPipeSaysWhatWasDone(t *testing.T) {
	dir := t.TempDir()
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	run := func(args ...string) *child {
		c := startWalrec(t, "", nil, closedPipe(t), args...)
		c.waitExit(t, time.Now())
		return c
	}
	c := run("recover", path)
	sidecar := fmt.Sprintf("%s.cut-%d", path, at)
	if want := fmt.Sprintf("done: cut the last %d bytes at offset %d, kept in %s\n", int64(len(data))-at, at, sidecar); c.code != 141 || !strings.Contains(c.errbuf.String(), want) {
		t.Fatalf("recover | true: exit %d, stderr %q, want %q", c.code, c.errbuf.String(), want)
	}
	assertFile(t, path, data[:at])
	assertFile(t, sidecar, data[at:])

	c = run("sidecars", path, "--clear")
	if c.code != 141 || !strings.Contains(c.errbuf.String(), fmt.Sprintf("done: removed 1 sidecar (%d bytes)", int64(len(data))-at)) {
		t.Fatalf("sidecars --clear | true: exit %d, stderr %q", c.code, c.errbuf.String())
	}
	assertNoSidecar(t, dir)

	c = run("compact", path)
	if c.code != 141 || !strings.Contains(c.errbuf.String(), "done: the log was compacted (") {
		t.Fatalf("compact | true: exit %d, stderr %q", c.code, c.errbuf.String())
	}

	g := filepath.Join(dir, "g.db")
	c = run("gen", g, "--size", "64KiB")
	if c.code != 141 || !strings.Contains(c.errbuf.String(), "done: wrote "+g+", complete (") {
		t.Fatalf("gen | true: exit %d, stderr %q", c.code, c.errbuf.String())
	}
	walrec(t, "verify", g).mustExit(t, exitOK, "verify the file gen kept")
	if r := walrec(t, "gen", "--help"); !strings.Contains(r.stdout, "Once the file is complete (synced, under its name) it stays") {
		t.Fatal("gen --help does not say a complete file stays")
	}

	// Read-only commands say nothing: there is nothing to tell.
	for _, args := range [][]string{{"verify", g}, {"dump", g}, {"scan", g}} {
		if c := run(args...); c.code != 141 || c.errbuf.Len() != 0 {
			t.Fatalf("%v | true: exit %d, stderr %q", args, c.code, c.errbuf.String())
		}
	}
}

// TestDumpHead: "walrec dump F | head -3" exits 141 and prints nothing on stderr (before:
// "broken pipe").
func TestDumpHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.db")
	walrec(t, "gen", path, "--size", "4MiB", "--record-size", "512", "--quiet").mustExit(t, exitOK, "gen")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := startWalrec(t, "", nil, pw, "dump", path)
	pw.Close()
	r := bufio.NewReader(pr)
	for range 3 {
		if _, err := r.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	pr.Close()
	c.waitExit(t, time.Now())
	if c.code != 141 || c.errbuf.Len() != 0 {
		t.Fatalf("dump | head -3: exit %d, stderr %q", c.code, c.errbuf.String())
	}
}

// TestSignalCompact: compact stopped after its writer's open cut a torn tail exits 130 with a
// report that says the tail was cut and where it is kept, and that nothing was compacted
// (no FILE.compact left); stopped after the rename it exits 143 and says the log is
// compacted (before: "CANCELED ... recovery not started" about a compacted file).
func TestSignalCompact(t *testing.T) {
	dir := t.TempDir()
	path, data, at := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	var out bytes.Buffer
	c := startWalrec(t, "compact-opened", nil, &out, "compact", path, "--json")
	c.signal(t, syscall.SIGINT)
	r := lastReport(t, "compact", out.String())
	sidecar := fmt.Sprintf("%s.cut-%d", path, at)
	if c.code != 130 || r.num(t, "exit") != 130 || r.str(t, "signal") != "SIGINT" || r["compacted"] != false || r.num(t, "cut_offset") != at ||
		r.num(t, "cut_bytes") != int64(len(data))-at || r.str(t, "sidecar") != sidecar || r.num(t, "before_bytes") != int64(len(data)) ||
		!strings.Contains(r.str(t, "detail"), "before it: the writer's open cut a torn tail") {
		t.Fatalf("exit %d, report %v", c.code, r)
	}
	assertFile(t, path, data[:at])
	assertFile(t, sidecar, data[at:])
	if _, err := os.Stat(path + ".compact"); err == nil {
		t.Fatal("a stopped compaction left its new log")
	}

	out.Reset()
	c = startWalrec(t, "compact-renamed", nil, &out, "compact", path, "--json")
	c.signal(t, syscall.SIGTERM)
	r = lastReport(t, "compact", out.String())
	if c.code != 143 || r.num(t, "exit") != 143 || r.str(t, "signal") != "SIGTERM" || r["compacted"] != true || r.str(t, "outcome") != "compacted" ||
		r["open_after_seconds"] != nil || r.num(t, "after_bytes") != fileSize(t, path) {
		t.Fatalf("exit %d, report %v", c.code, r)
	}
	out.Reset()
	c = startWalrec(t, "compact-renamed", nil, &out, "compact", path)
	c.signal(t, syscall.SIGINT)
	if c.code != 130 || !strings.Contains(out.String(), "SIGINT came once the log was compacted: it stays compacted (exit 130)") || c.errbuf.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", c.code, out.String(), c.errbuf.String())
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestSignalStopsSalvage: salvage stopped by SIGTERM leaves nothing under COPY's name nor
// beside it, and its report says exit 143.
func TestSignalStopsSalvage(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "corrupt"})
	copyPath := filepath.Join(dir, "copy.db")
	var out bytes.Buffer
	c := startWalrec(t, "salvage", nil, &out, "salvage", path, "--output", copyPath, "--json")
	c.signal(t, syscall.SIGTERM)
	r := lastReport(t, "salvage", out.String())
	if c.code != 143 || r.num(t, "exit") != 143 || r.str(t, "outcome") != "canceled" {
		t.Fatalf("exit %d, report %v", c.code, r)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("salvage left %d entries", len(ents))
	}
}
