package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock makes the progress clock advance step on every reading, so that every progress
// report is "later than the interval": lines come from the work alone, whatever the machine's
// speed. Tests never wait on the real clock.
func fakeClock(t *testing.T, step time.Duration) {
	t.Helper()
	var mu sync.Mutex
	now := time.Unix(1e9, 0)
	old := progressNow
	progressNow = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(step)
		return now
	}
	t.Cleanup(func() { progressNow = old })
}

// TestProgressWithoutTerminal: where stderr is not a terminal, --progress json writes a JSON
// line of the convention (offset, size, elapsed) every 2 s, and the default writes a plain
// line every 10 s once a step has run 10 s; --quiet, --progress none and --no-progress write
// none; stdout is the same with progress or without.
func TestProgressWithoutTerminal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.db")
	walrec(t, "gen", path, "--size", "8MiB", "--record-size", "4KiB", "--quiet").mustExit(t, exitOK, "gen")
	size := int64(len(readAll(t, path)))
	plain := walrec(t, "verify", path, "--json", "--parallelism", "1", "--progress", "none")

	fakeClock(t, 3*time.Second) // past the 2 s of json at every reading, not the 10 s of plain
	r := walrec(t, "verify", path, "--json", "--parallelism", "1", "--progress", "json")
	if r.stdout != plain.stdout || r.code != plain.code {
		t.Fatalf("stdout changed with progress:\n%s\n%s", r.stdout, plain.stdout)
	}
	ls := jsonLines(t, "verify", r.stderr)
	if len(ls) == 0 {
		t.Fatal("--progress json wrote no line")
	}
	last := int64(-1)
	for _, l := range ls {
		if l.str(t, "type") != "progress" || l.str(t, "file") != path || l.num(t, "size") != size || l.num(t, "offset") < last || l.num(t, "offset") > size ||
			l.str(t, "step") != "verify" {
			t.Fatalf("progress line %v", l)
		}
		last = l.num(t, "offset")
	}

	fakeClock(t, 11*time.Second)
	r = walrec(t, "verify", path, "--parallelism", "1")
	re := regexp.MustCompile(`^walrec verify ` + regexp.QuoteMeta(path) + `: \d+\.\d MiB of 8\.0 MiB \(\d+%\) after (\d+h)?(\d+m)?\d+s$`)
	if ls := lines(r.stderr); len(ls) == 0 || r.code != exitOK {
		t.Fatalf("no plain progress without a terminal: %q", r.stderr)
	} else {
		for _, l := range ls {
			if !re.MatchString(l) {
				t.Fatalf("plain progress line %q", l)
			}
		}
	}
	for _, args := range [][]string{{"--quiet"}, {"--progress", "none"}, {"--no-progress"}} {
		if r := walrec(t, append([]string{"verify", path, "--parallelism", "1"}, args...)...); r.stderr != "" {
			t.Fatalf("%v: stderr %q", args, r.stderr)
		}
	}
	r = walrec(t, "gen", filepath.Join(dir, "g.db"), "--size", "4MiB", "--progress", "json", "--quiet")
	if ls := jsonLines(t, "gen", r.stderr); len(ls) == 0 || ls[0].str(t, "type") != "progress" {
		t.Fatalf("gen --progress json: %q", r.stderr)
	}
	// gen, dump, recover, bench, salvage, get, scan and compact take it too.
	cp := filepath.Join(dir, "cp.db")
	os.WriteFile(cp, readAll(t, path), 0o644)
	for _, cmd := range [][]string{{"dump", path}, {"recover", path}, {"bench", path, "--runs", "1", "--parallelism", "1"}, {"salvage", path, "--output", filepath.Join(dir, "s.db")},
		{"get", path, "key00000001"}, {"scan", path}, {"compact", cp}} {
		r = walrec(t, append(cmd, "--progress", "json", "--quiet")...)
		if ls := jsonLines(t, cmd[0], r.stderr); len(ls) == 0 || ls[0].str(t, "type") != "progress" {
			t.Fatalf("%s --progress json: %q", cmd[0], r.stderr)
		}
	}
	walrec(t, "verify", path, "--progress", "loud").mustExit(t, exitError, "--progress loud")

	// A step shorter than 10 s gets no line by default: a clock that does not move.
	fakeClock(t, 0)
	if r := walrec(t, "verify", path, "--parallelism", "1"); r.stderr != "" {
		t.Fatalf("a short step drew %q", r.stderr)
	}
}

// TestProgressHeartbeat: a step whose work reports nothing (recovery searching a long zero
// tail calls no progress callback) still gets its lines, from the clock: the offset stays,
// the time goes on.
func TestProgressHeartbeat(t *testing.T) {
	fakeClock(t, time.Hour)
	old := progressEvery["json"]
	progressEvery["json"] = time.Millisecond
	t.Cleanup(func() { progressEvery["json"] = old })
	var b syncBuffer
	p := newProgress(&b, progJSON, "verify", "verify", "x.db")
	p.set(100, 1000)    // one report, then silence
	for b.lines() < 3 { // the ticker writes on; this waits for it, whatever the machine's speed
		time.Sleep(time.Millisecond)
	}
	p.done()
	ls := jsonLines(t, "verify", b.String())
	for _, l := range ls[1:] {
		if l.num(t, "offset") != 100 || l.num(t, "size") != 1000 {
			t.Fatalf("heartbeat line %v", l)
		}
	}
	if ls[len(ls)-1].num(t, "elapsed_seconds") <= ls[0].num(t, "elapsed_seconds") {
		t.Fatalf("the heartbeat's time does not go on: %v", ls)
	}
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) lines() int { return strings.Count(s.String(), "\n") }

// TestSmallerItems: the smaller findings, one check each.
func TestSmallerItems(t *testing.T) {
	dir := t.TempDir()

	// gen --damage corrupt counts the corrupt record, which the file holds whole.
	c := filepath.Join(dir, "c.db")
	r := walrec(t, "gen", c, "--size", "4MiB", "--damage", "corrupt", "--json").mustExit(t, exitOK, "gen")
	j := jsonLines(t, "gen", r.stdout)[0]
	if want := (int64(4<<20) - 8) / 4096; j.num(t, "records") != want || j.num(t, "bytes") != 8+want*4096 {
		t.Fatalf("gen --damage corrupt: %v, want %d records", j, want)
	}

	// The full-disk sidecar error says its sentence once.
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"}, "--record-size", "4MiB", "--size", "9MiB")
	other, _, _ := gen(t, t.TempDir(), genCase{layout: "v1", damage: "torn_tail"}, "--record-size", "4MiB", "--size", "9MiB")
	withFree(t, 1<<20)
	r = walrec(t, "recover", path).mustExit(t, exitError, "recover without room")
	for _, s := range []string{"do not fit", "nothing was cut", "free some space"} {
		if n := strings.Count(r.stdout, s); n != 1 {
			t.Fatalf("%q %d times in\n%s", s, n, r.stdout)
		}
	}
	// A failed --output says no copy was made when none was (there is no room for it). (Another
	// file: recovery may still have reads of the first in flight, which hold its descriptor,
	// and so its lock, a moment after recover returned.)
	path = other
	r = walrec(t, "recover", path, "--output", filepath.Join(dir, "copy.db")).mustExit(t, exitError, "recover --output without room")
	if !strings.Contains(r.stdout, "no copy was made and "+path+" is untouched") || strings.Contains(r.stdout, "removed") {
		t.Fatalf("%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "copy.db")); err == nil {
		t.Fatal("a copy was made")
	}
	withFree(t, 1<<40)

	// bench of an empty file measures nothing and names no layout.
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o644)
	r = walrec(t, "bench", empty).mustExit(t, exitOK, "bench of an empty file")
	if r.stdout != empty+": empty file: nothing to measure\n" {
		t.Fatalf("%q", r.stdout)
	}

	// dump --json honours --max-bytes and says the whole lengths.
	r = walrec(t, "dump", c, "--json", "--limit", "1", "--max-bytes", "3", "--bad-bytes", "0")
	op := jsonLines(t, "dump", r.stdout)[0]
	if op.str(t, "key_hex") != "6b6579" || op.num(t, "key_bytes") != 11 || len(op.str(t, "value_hex")) != 6 || op.num(t, "value_bytes") <= 3 {
		t.Fatalf("dump --json --max-bytes 3: %v", op)
	}
	// --from past the end says so.
	r = walrec(t, "dump", c, "--from", "100000", "--bad-bytes", "0")
	if !strings.Contains(r.stdout, "(no record chosen: the log has 511 records (numbers 0 to 510, the last at offset 2088968))\n") { // replayed before the corruption
		t.Fatalf("dump --from past the end:\n%s", r.stdout)
	}
	rep := jsonLines(t, "dump", walrec(t, "dump", c, "--from", "100000", "--json").stdout)
	if last := rep[len(rep)-1]; last.num(t, "shown") != 0 || !strings.HasPrefix(last.str(t, "note"), "no record chosen") {
		t.Fatalf("%v", last)
	}

	// The help of every command ends with the one exit table (signals included) and says
	// nothing of a "locked" outcome for verify, which takes no lock.
	for cmd := range commands {
		r := walrec(t, cmd, "--help")
		if !strings.HasSuffix(r.stdout, exitCodesHelp) && !strings.Contains(r.stdout, exitCodesHelp+"\nFlags:\n") {
			t.Errorf("%s --help does not end with the exit table", cmd)
		}
	}
	if r := walrec(t, "verify", "--help"); strings.Contains(r.stdout, `"locked"`) {
		t.Error("verify --help lists a locked outcome")
	}
}

// TestSeveralFiles: verify and dump take several FILEs, one report each in order, and exit
// with the worst status; a signal ends the run (in-process: a canceled context).
func TestSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	clean, _, _ := gen(t, dir, genCase{layout: "v1", damage: "none"})
	torn, _, _ := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	bad, _, _ := gen(t, dir, genCase{layout: "legacy", damage: "corrupt"})
	for _, tc := range []struct {
		files []string
		exit  int
	}{
		{[]string{clean, clean}, 0},
		{[]string{clean, torn}, 1},
		{[]string{torn, bad, clean}, 2},
		{[]string{bad, filepath.Join(dir, "missing.db"), torn}, 3},
	} {
		for _, cmd := range []string{"verify", "dump"} {
			r := walrec(t, append(append([]string{cmd}, tc.files...), "--json")...).mustExit(t, tc.exit, fmt.Sprint(cmd, tc.files))
			reps := ofType(t, jsonLines(t, cmd, r.stdout), "report")
			if len(reps) != len(tc.files) {
				t.Fatalf("%s %v: %d reports", cmd, tc.files, len(reps))
			}
			for i, rep := range reps {
				if rep.str(t, "file") != tc.files[i] {
					t.Fatalf("%s: report %d is of %s, want %s", cmd, i, rep.str(t, "file"), tc.files[i])
				}
			}
		}
	}
	// Stopped: the run ends at the first file, whose report says canceled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := runContext(ctx, []string{"verify", clean, torn, "--json"}, &out, &errb); code != exitError || len(lines(out.String())) != 1 {
		t.Fatalf("canceled: exit %d, %q", code, out.String())
	}
}

// TestREADMEWalrec: the README's walrec section has the one exit table and the JSON
// convention, as the help does.
func TestREADMEWalrec(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skip("no README here:", err)
	}
	s := string(b)
	for _, want := range []string{
		"| 128+N | stopped by signal N: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP, 141 SIGPIPE",
		"0 < 1 < 2 < 3 < 128+N", `"version": 1`, "`report` per FILE", "never\n`locked`", "--progress MODE",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
	for _, want := range []string{"128+N stopped by signal N", "0 < 1 < 2 < 3 <\n  128+N", `"version": 1`} {
		if !strings.Contains(exitCodesHelp+jsonHelp, want) {
			t.Errorf("the help lacks %q", want)
		}
	}
}
