package main

import (
	"bytes"
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
