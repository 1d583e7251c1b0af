// Package crash is the real-process crash test of the database: a writer process commits
// transactions and reports each acknowledged one on its stdout; the test kills it with
// SIGKILL at random moments (while it opens and recovers the log, cutting a torn tail into a
// sidecar; while it commits, in groups; while it compacts), reopens the file, and checks that every
// acknowledged commit is there and that no transaction is there in part.
//
//	go test ./tests/crash                                   # a few seconds
//	CRASH_DURATION=10m go test ./tests/crash -timeout 0 -v  # a soak
//
// The writer is this test binary, re-executed with CRASH_WRITER set.
package crash

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/db"
)

func TestMain(m *testing.M) {
	if os.Getenv("CRASH_WRITER") != "" {
		os.Exit(writer())
	}
	if os.Getenv("CRASH_HOLDER") != "" {
		os.Exit(holder())
	}
	goleak.VerifyTestMain(m)
}

// ---- the transactions, as both sides compute them ----

// txKeys is how many keys transaction id sets (1..6), and value its j-th value: derived from
// the id alone, so the checker knows exactly what a whole transaction looks like.
func txKeys(id uint64) int { return 1 + int(mix(id, 0)%6) }

func key(id uint64, j int) string { return fmt.Sprintf("tx/%012d/%d", id, j) }

func value(id uint64, j int) []byte {
	h := mix(id, uint64(j)+1)
	n := int(h % 200)
	switch h >> 60 {
	case 0: // one value in 16 is large, so that kills land inside its write
		n = 64<<10 + int(h>>20%(1<<20))
	case 1:
		n = 4<<10 + int(h>>20%(32<<10))
	}
	b := make([]byte, n+8)
	x := h
	for i := 0; i < n; i += 8 {
		x = mix(x, uint64(i))
		binary.LittleEndian.PutUint64(b[i:], x)
	}
	return b[:n]
}

func mix(a, b uint64) uint64 {
	x := a*0x9e3779b97f4a7c15 + b + 0x632be59bd9b4e019
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// ---- the writer process ----

// writer opens CRASH_DB (recovering it, cutting a torn tail if the last kill left one), then
// runs CRASH_WRITERS goroutines that commit transactions with ids from CRASH_FIRST on
// (goroutine g takes first+g, first+g+writers, ...) and prints "ack <id>" for each Update
// that returned nil, until it is killed. An error prints "err <message>" and exits 2.
func writer() int {
	path := os.Getenv("CRASH_DB")
	first, _ := strconv.ParseUint(os.Getenv("CRASH_FIRST"), 10, 64)
	writers, _ := strconv.Atoi(os.Getenv("CRASH_WRITERS"))
	writers = max(writers, 1)
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	d, err := db.Open(path)
	if err != nil {
		say("err open: %v", err)
		return 2
	}
	if t := d.Truncation(); t != nil {
		say("cut %d %d %s", t.Offset, t.Bytes, t.Sidecar)
	}
	say("open")
	var wg sync.WaitGroup
	failed := make(chan error, writers+1)
	if os.Getenv("CRASH_COMPACT") != "" {
		// Compactions back to back, beside the writers, so that kills land inside them.
		wg.Go(func() {
			for {
				say("compacting")
				res, err := d.Compact()
				if err != nil {
					failed <- fmt.Errorf("compact: %w", err)
					return
				}
				say("compacted %d %d %d", res.Before, res.After, res.Carried)
			}
		})
	}
	for g := range writers {
		wg.Go(func() {
			for id := first + uint64(g); ; id += uint64(writers) {
				err := d.Update(func(tx *db.Tx) error {
					for j := range txKeys(id) {
						if err := tx.Set([]byte(key(id, j)), value(id, j)); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					failed <- fmt.Errorf("commit %d: %w", id, err)
					return
				}
				say("ack %d", id)
			}
		})
	}
	err = <-failed
	say("err %v", err)
	return 2
}

// ---- the test ----

// TestSIGKILL runs the writer again and again, killing it with SIGKILL after a random delay
// (from at once, during its open, to well into its commits), and checks the file after each
// kill with a read-only open.
func TestSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	dur := 3 * time.Second
	if s := os.Getenv("CRASH_DURATION"); s != "" {
		var err error
		if dur, err = time.ParseDuration(s); err != nil {
			t.Fatalf("CRASH_DURATION=%q: %v", s, err)
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d (CRASH_SEED=%d replays the kill delays, not the kernel's timing)", seed, seed)

	var st stats
	dir := t.TempDir()
	path := filepath.Join(dir, "crash.db")
	next := uint64(1)
	acked := map[uint64]bool{}
	deadline := time.Now().Add(dur)
	// Past the duration, it goes on until it has checked something (a slow machine may start
	// the writer slowly): a run never fails for being slow, only for a lost or partial commit.
	for time.Now().Before(deadline) || st.kills < 3 || st.checked == 0 {
		writers := []int{1, 4, 16}[rng.IntN(3)]
		compact := rng.IntN(2) == 0
		// Kill delays: often right at the start (inside open and its cut), else anywhere in
		// the first quarter second of commits.
		delay := time.Duration(rng.Int64N(int64(250 * time.Millisecond)))
		if rng.IntN(4) == 0 {
			delay = time.Duration(rng.Int64N(int64(20 * time.Millisecond)))
		}
		acks, lines := runAndKill(t, path, next, writers, compact, delay)
		st.kills++
		inCompaction := false
		for _, l := range lines {
			switch {
			case strings.HasPrefix(l, "cut "):
				st.cuts++
			case l == "compacting":
				inCompaction = true
			case strings.HasPrefix(l, "compacted "):
				st.compactions++
				inCompaction = false
			}
		}
		if inCompaction {
			st.killsInCompaction++
		}
		maxID := next
		st.acked += len(acks)
		for _, id := range acks {
			acked[id] = true
			maxID = max(maxID, id)
		}
		next = maxID + uint64(writers) + 1 // ids never reused: an unacknowledged one may be on disk
		st.check(t, path, acked)
		if fi, err := os.Stat(path); err == nil && fi.Size() > 48<<20 {
			// A fresh file keeps each check's read bounded (the soak runs for hours).
			os.Remove(path)
			os.Remove(path + ".compact")
			side, _ := db.RemoveSidecars(path)
			st.sidecars += len(side)
			acked = map[uint64]bool{}
			st.files++
		}
	}
	side, _ := db.Sidecars(path)
	st.sidecars += len(side)
	t.Logf("%d kills (%d during a compaction) over %d files in %v: %d acknowledged commits, %d checks of an acknowledged commit after a kill (%d of an unacknowledged one found whole), %d compactions, %d cuts at open, %d sidecars, %d lost, %d partial",
		st.kills, st.killsInCompaction, st.files+1, dur, st.acked, st.checked, st.unacked, st.compactions, st.cuts, st.sidecars, st.lost, st.partial)
}

type stats struct {
	kills, files, cuts, sidecars   int
	compactions, killsInCompaction int
	acked, checked, unacked        int
	lost, partial                  int
}

// runAndKill starts a writer, kills it after delay, and returns the ids it acknowledged and
// every line it printed.
func runAndKill(t *testing.T, path string, first uint64, writers int, compact bool, delay time.Duration) ([]uint64, []string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "CRASH_WRITER=1", "CRASH_DB="+path,
		"CRASH_FIRST="+strconv.FormatUint(first, 10), "CRASH_WRITERS="+strconv.Itoa(writers))
	if compact {
		cmd.Env = append(cmd.Env, "CRASH_COMPACT=1")
	}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	read := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		_, err := io.Copy(io.Discard, stdout)
		read <- errors.Join(sc.Err(), err)
	}()
	time.Sleep(delay)
	cmd.Process.Signal(syscall.SIGKILL)
	if err := <-read; err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		// It stopped by itself before the kill: only an error does that.
		t.Fatalf("the writer exited (%v) before it was killed: %s", err, strings.Join(lines, "\n"))
	}
	var acks []uint64
	for _, l := range lines {
		if s, ok := strings.CutPrefix(l, "ack "); ok {
			id, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("writer said %q", l)
			}
			acks = append(acks, id)
		}
	}
	return acks, lines
}

// check opens the file read-only and checks every acknowledged transaction is there whole,
// and every transaction there is whole.
func (st *stats) check(t *testing.T, path string, acked map[uint64]bool) {
	t.Helper()
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) && len(acked) == 0 {
		return // killed before it created the file
	}
	d, err := db.Open(path, db.ReadOnly())
	if err != nil {
		t.Fatalf("read-only open after a kill: %v", err)
	}
	defer d.Close()
	present := map[uint64]map[int]bool{}
	err = d.View(func(tx *db.Tx) error {
		for k, v := range tx.Range(nil, nil) {
			var id uint64
			var j int
			if _, err := fmt.Sscanf(string(k), "tx/%012d/%d", &id, &j); err != nil || key(id, j) != string(k) {
				return fmt.Errorf("a key no transaction sets: %q", k)
			}
			if !bytes.Equal(v, value(id, j)) {
				return fmt.Errorf("key %s: a %d-byte value, want %d bytes", k, len(v), len(value(id, j)))
			}
			if present[id] == nil {
				present[id] = map[int]bool{}
			}
			present[id][j] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id := range acked {
		if present[id] == nil {
			st.lost++
			t.Errorf("acknowledged commit %d is missing", id)
		}
	}
	for id, js := range present {
		if len(js) != txKeys(id) {
			st.partial++
			t.Errorf("transaction %d is there in part: %d of %d keys", id, len(js), txKeys(id))
		}
		if acked[id] {
			st.checked++
		} else {
			st.unacked++
		}
	}
}
