package faults_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/streamwal/recovery/internal/faults"
)

var data = []byte("0123456789abcdefghij") // 20 bytes

type got struct {
	n   int
	s   string
	err error
}

func read(r io.ReaderAt, off int64, n int) got {
	p := make([]byte, n)
	m, err := r.ReadAt(p, off)
	return got{m, string(p[:max(0, min(m, n))]), err}
}

func TestPlainReaderIsTheSource(t *testing.T) {
	r := faults.Bytes(data)
	if err := iotest.TestReader(io.NewSectionReader(r, 0, r.Size()), data); err != nil {
		t.Fatal(err)
	}
	if g := read(r, 15, 10); g.n != 5 || g.err != io.EOF {
		t.Fatalf("a read past the end: %+v", g)
	}
	if r.Size() != 20 || faults.New(struct{ io.ReaderAt }{r}).Size() != -1 {
		t.Fatal("Size is the source's, or -1")
	}
}

func TestMatches(t *testing.T) {
	for _, c := range []struct {
		name string
		rule func() *faults.Rule
		want []bool // for the calls below, in order
	}{
		{"always", faults.Always, []bool{true, true, true, true, true}},
		{"on call 2", func() *faults.Rule { return faults.OnCall(2) }, []bool{false, true, false, false, false}},
		{"from call 4", func() *faults.Rule { return faults.FromCall(4) }, []bool{false, false, false, true, true}},
		{"touching 5", func() *faults.Rule { return faults.Touching(5) }, []bool{false, true, false, false, true}},
		{"past 10", func() *faults.Rule { return faults.Past(10) }, []bool{false, false, false, true, false}},
		{"starting at 6, 12", func() *faults.Rule { return faults.StartingAt(6, 12) }, []bool{false, false, false, true, false}},
		{"starting from 8", func() *faults.Rule { return faults.StartingFrom(8) }, []bool{false, false, true, true, false}},
		{"where even length", func() *faults.Rule { return faults.Where(func(c faults.Call) bool { return c.Len%2 == 0 }) }, []bool{true, false, true, false, true}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rule := c.rule().Fail(faults.ErrInjected)
			r := faults.Bytes(data, rule)
			// [0,4) [3,6) [8,10) [12,15) [4,6)
			for i, call := range [][2]int{{0, 4}, {3, 3}, {8, 2}, {12, 3}, {4, 2}} {
				g := read(r, int64(call[0]), call[1])
				if failed := g.err == faults.ErrInjected; failed != c.want[i] {
					t.Fatalf("call %d %v: failed=%v, want %v", i+1, call, failed, c.want[i])
				}
			}
			n := int64(0)
			for _, w := range c.want {
				if w {
					n++
				}
			}
			if rule.Count() != n || r.Calls() != 5 {
				t.Fatalf("count %d (want %d), calls %d", rule.Count(), n, r.Calls())
			}
		})
	}
	var armed atomic.Bool
	r := faults.Bytes(data, faults.When(armed.Load).Fail(faults.ErrInjected))
	if g := read(r, 0, 4); g.err != nil {
		t.Fatal(g)
	}
	armed.Store(true)
	if g := read(r, 0, 4); g.err != faults.ErrInjected {
		t.Fatal(g)
	}
}

func TestDecidingSteps(t *testing.T) {
	boom := errors.New("EIO")
	for _, c := range []struct {
		name string
		rule *faults.Rule
		off  int64
		n    int
		want got
	}{
		{"fail", faults.Always().Fail(boom), 0, 4, got{0, "", boom}},
		{"short with nil", faults.Always().Short(3, nil), 2, 8, got{3, "234", nil}},
		{"short with EOF", faults.Always().Short(3, io.EOF), 2, 8, got{3, "234", io.EOF}},
		{"short with an error", faults.Always().Short(2, boom), 0, 8, got{2, "01", boom}},
		{"short of nothing", faults.Always().Short(0, nil), 0, 8, got{0, "", nil}},
		{"short at the end: the source's EOF", faults.Always().Short(5, boom), 17, 8, got{3, "hij", io.EOF}},
		{"short of more than asked", faults.Always().Short(100, nil), 0, 4, got{4, "0123", nil}},
		{"half", faults.Always().Half(io.EOF), 0, 9, got{4, "0123", io.EOF}},
		{"lie", faults.Always().Lie(boom), 0, 4, got{4, "\x00\x00\x00\x00", boom}},
		{"count past len(p)", faults.Always().Claim(5, nil), 0, 4, got{5, "0123", nil}},
		{"negative count", faults.Always().Claim(-1, nil), 0, 4, got{-1, "", nil}},
		{"corrupt", faults.Always().Corrupt(func(b []byte, c faults.Call) { b[0] = 'X' }), 4, 3, got{3, "X56", nil}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if g := read(faults.Bytes(data, c.rule), c.off, c.n); g != c.want {
				t.Fatalf("got %+v, want %+v", g, c.want)
			}
		})
	}
}

// TestDribble: counts from 1 to len(p) with a nil error, the same for the same read; every
// length is seen; a read that reaches the end says io.EOF, a full one included.
func TestDribble(t *testing.T) {
	big := bytes.Repeat(data, 50)
	r := faults.Bytes(big, faults.Always().Dribble())
	counts := map[int]bool{}
	for off := int64(0); off < 200; off++ {
		g := read(r, off, 7)
		if g.n < 1 || g.n > 7 || g.err != nil || g.s != string(big[off:off+int64(g.n)]) {
			t.Fatalf("at %d: %+v", off, g)
		}
		if again := read(r, off, 7); again != g {
			t.Fatalf("at %d: %+v then %+v", off, g, again)
		}
		counts[g.n] = true
	}
	if len(counts) != 7 {
		t.Fatalf("counts seen: %v", counts)
	}
	if all, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size())); err != nil || !bytes.Equal(all, big) {
		t.Fatalf("read piece by piece: %v", err)
	}
	end := int64(len(big))
	for off := end - 30; off < end; off++ {
		g := read(r, off, int(end-off))
		if off+int64(g.n) == end && g.err != io.EOF || off+int64(g.n) < end && g.err != nil {
			t.Fatalf("at %d: %+v", off, g)
		}
	}
	if g := read(r, end, 4); g.n != 0 || g.err != io.EOF {
		t.Fatalf("at the end: %+v", g)
	}
}

// TestRulesInOrder: passing steps run in order and let the call go on to later rules; the
// first deciding step ends it; a call no rule decides reads the source.
func TestRulesInOrder(t *testing.T) {
	var trace []string
	note := func(s string) func(faults.Call) { return func(faults.Call) { trace = append(trace, s) } }
	first := faults.Always().Do(note("a")).Do(note("b"))
	second := faults.OnCall(2).Do(note("c")).Fail(faults.ErrInjected)
	third := faults.Always().Do(note("d"))
	r := faults.Bytes(data, first, second, third)
	if g := read(r, 0, 2); g.err != nil || g.s != "01" {
		t.Fatal(g)
	}
	if g := read(r, 0, 2); g.err != faults.ErrInjected {
		t.Fatal(g)
	}
	if got := strings.Join(trace, ""); got != "abdabc" {
		t.Fatalf("steps ran as %q", got)
	}
	if first.Count() != 2 || second.Count() != 1 || third.Count() != 1 {
		t.Fatalf("counts %d %d %d", first.Count(), second.Count(), third.Count())
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a step after a deciding one was accepted")
		}
	}()
	faults.Always().Fail(faults.ErrInjected).Do(note("never"))
}

func TestPanicAndGoexit(t *testing.T) {
	r := faults.Bytes(data, faults.Touching(9).Panic("byte 9"))
	func() {
		defer func() {
			p := recover()
			if p != "byte 9" || !strings.Contains(string(debug.Stack()), "faults.(*Reader).ReadAt") {
				t.Fatalf("recovered %v", p)
			}
		}()
		read(r, 8, 4)
		t.Fatal("no panic")
	}()
	r = faults.Bytes(data, faults.OnCall(1).Goexit())
	returned := make(chan bool)
	go func() {
		ok := false
		defer func() { returned <- ok }()
		read(r, 0, 1)
		ok = true
	}()
	if <-returned {
		t.Fatal("ReadAt returned after Goexit")
	}
}

// TestStallAndFired: a stalled read waits for its gate; Fired says it has begun; Release
// more than once is harmless; Await gives up after its limit, failing or going on.
func TestStallAndFired(t *testing.T) {
	gate := faults.NewGate()
	defer gate.Release()
	stall := faults.Past(10).Stall(gate.C())
	r := faults.Bytes(data, stall)
	done := make(chan got)
	go func() { done <- read(r, 8, 4) }()
	<-stall.Fired()
	select {
	case g := <-done:
		t.Fatalf("the stalled read returned %+v", g)
	case <-time.After(10 * time.Millisecond):
	}
	if g := read(r, 0, 4); g.err != nil { // other reads go on meanwhile
		t.Fatal(g)
	}
	gate.Release()
	gate.Release()
	if g := <-done; g.s != "89ab" || g.err != nil {
		t.Fatal(g)
	}

	never := make(chan struct{})
	boom := errors.New("setup: never came")
	if g := read(faults.Bytes(data, faults.Always().Await(never, time.Millisecond, boom)), 0, 2); g.err != boom {
		t.Fatal(g)
	}
	if g := read(faults.Bytes(data, faults.Always().Await(never, time.Millisecond, nil)), 0, 2); g.err != nil || g.s != "01" {
		t.Fatal(g)
	}
}

// TestConcurrentCallsAreCounted: calls from many goroutines are numbered once each, counted,
// and recorded in the order they began; MaxLen and Asked sum them up. (Run with -race.)
func TestConcurrentCallsAreCounted(t *testing.T) {
	var seen sync.Map
	r := faults.Bytes(data, faults.Always().Record(), faults.Always().Do(func(c faults.Call) {
		if _, dup := seen.LoadOrStore(c.N, true); dup {
			t.Errorf("call %d numbered twice", c.N)
		}
	}), faults.FromCall(1).Delay(time.Microsecond))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if got := read(r, int64(i%10), 1+g); got.err != nil {
					t.Error(got)
				}
			}
		})
	}
	wg.Wait()
	log := r.Log()
	if r.Calls() != 400 || len(log) != 400 || r.MaxLen() != 8 || r.Asked() != 50*(1+2+3+4+5+6+7+8) {
		t.Fatalf("calls %d, log %d, max %d, asked %d", r.Calls(), len(log), r.MaxLen(), r.Asked())
	}
	for i, c := range log {
		if c.N != int64(i+1) || c.At.IsZero() {
			t.Fatalf("log[%d] = %+v", i, c)
		}
	}
}

// TestStream: a Stream's calls are placed by the bytes it delivered; the same rules apply.
func TestStream(t *testing.T) {
	gate := faults.NewGate()
	stall := faults.StartingFrom(20).Stall(gate.C())
	s := faults.NewStream(bytes.NewReader(data), stall, faults.Always().Short(7, nil))
	gate.Release()
	b, err := io.ReadAll(s)
	if err != nil || string(b) != string(data) || s.Calls() != 4 || stall.Count() != 1 {
		t.Fatalf("%q %v after %d calls, stalled %d", b, err, s.Calls(), stall.Count())
	}
	s = faults.NewStream(bytes.NewReader(data), faults.Past(12).Panic("broke"))
	p := make([]byte, 8)
	if n, err := s.Read(p); n != 8 || err != nil {
		t.Fatal(n, err)
	}
	defer func() {
		if v := recover(); v != "broke" || !strings.Contains(string(debug.Stack()), "faults.(*Stream).Read") {
			t.Fatalf("recovered %v", v)
		}
	}()
	s.Read(p)
	t.Fatal("no panic")
}

func ExampleReader() {
	r := faults.Bytes([]byte("hello, world"),
		faults.OnCall(2).Fail(faults.ErrInjected),
		faults.Always().Short(5, nil))
	p := make([]byte, 12)
	for off := int64(0); off < 12; {
		n, err := r.ReadAt(p[off:], off)
		fmt.Printf("%q %v\n", p[off:off+int64(n)], err)
		off += int64(n)
	}
	// Output:
	// "hello" <nil>
	// "" faults: injected read error
	// ", wor" <nil>
	// "ld" <nil>
}

// TestNoAllocationPerCall: a call allocates nothing unless a rule records it, so that a test
// that measures recovery's allocations can read through a Reader.
func TestNoAllocationPerCall(t *testing.T) {
	p := make([]byte, 8)
	r := faults.Bytes(data, faults.Touching(3).Short(2, nil), faults.OnCall(1<<40).Fail(faults.ErrInjected), faults.Always().Dribble())
	s := faults.NewStream(iotest.HalfReader(bytes.NewReader(bytes.Repeat(data, 1000))), faults.FromCall(1).Short(4, nil))
	if n := testing.AllocsPerRun(100, func() {
		r.ReadAt(p, 0)
		r.ReadAt(p, 10)
		s.Read(p)
	}); n != 0 {
		t.Fatalf("%v allocations per call", n)
	}
}
