package bufpool_test

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/bufpool"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	f()
}

func TestBoundedAndAccounted(t *testing.T) {
	p := bufpool.New[int](2)
	ctx := context.Background()
	a, _ := p.Get(ctx)
	b, _ := p.Get(ctx)
	p.Grow(a, 1000)
	p.Grow(b, 3000)
	if s := p.Stats(); s.Out != 2 || s.Allocated != 4000 || s.PeakOut != 4000 {
		t.Fatalf("stats %+v", s)
	}
	// A third Get blocks until a buffer comes back: the pool never grows past its depth.
	got := make(chan *bufpool.Buffer[int])
	go func() { c, _ := p.Get(ctx); got <- c }()
	select {
	case <-got:
		t.Fatal("Get returned with every buffer out")
	case <-time.After(20 * time.Millisecond):
	}
	p.Put(a)
	c := <-got
	if cap(c.B) != 1000 {
		t.Fatalf("reused buffer has cap %d, want the 1000 it grew to", cap(c.B))
	}
	// Growing within capacity allocates nothing.
	p.Grow(c, 500)
	if s := p.Stats(); s.Allocated != 4000 {
		t.Fatalf("allocated %d after an in-place grow", s.Allocated)
	}
	p.Put(b)
	p.Put(c)
	p.Close()
}

func TestGetHonoursContext(t *testing.T) {
	p := bufpool.New[int](1)
	a, _ := p.Get(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := p.Get(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Get on an empty pool returned %v, want the context's error", err)
	}
	p.Put(a)
	p.Close()
}

func TestOwnershipViolationsAreCaught(t *testing.T) {
	p := bufpool.New[int](2)
	a, _ := p.Get(context.Background())
	p.Put(a)
	mustPanic(t, "double Put", func() { p.Put(a) })
	mustPanic(t, "Grow after Put", func() { p.Grow(a, 10) })
	other := bufpool.New[int](1)
	o, _ := other.Get(context.Background())
	mustPanic(t, "Put into another pool", func() { p.Put(o) })
	other.Put(o)
	b, _ := p.Get(context.Background())
	mustPanic(t, "Close with a buffer out", p.Close)
	p.Put(b)
	p.Close()
}

// TestReleasedBuffersArePoisoned: a slice kept past Put reads poison in race/invariants builds,
// so a stage that touches a buffer after releasing it fails its tests.
func TestReleasedBuffersArePoisoned(t *testing.T) {
	if !bufpool.Debug {
		t.Skip("poisoning is on only with -race or -tags invariants")
	}
	p := bufpool.New[int](1)
	a, _ := p.Get(context.Background())
	kept := p.Grow(a, 64)
	for i := range kept {
		kept[i] = byte(i)
	}
	p.Put(a)
	for i, c := range kept {
		if c != bufpool.Poison {
			t.Fatalf("byte %d of a released buffer is %#x, want poison", i, c)
		}
	}
	p.Close()
}

// Buffers of the sizes that come from the shared caches (powers of two from 4 KiB to 1 GiB,
// size classes of sync.Pool) are never shared between live buffers:
// not between two pools at once, nor with the next pool after a Close. Each buffer's bytes are
// marked and must read back unchanged while it is out; the accounting is every capacity held.
func TestCachedBuffersAreNeverShared(t *testing.T) {
	ctx := context.Background()
	type region struct {
		s    []byte
		mark byte
	}
	var live []region
	mark := byte(0)
	fill := func(p *bufpool.Pool[int], depth int) []*bufpool.Buffer[int] {
		var bs []*bufpool.Buffer[int]
		for i := range depth {
			b, err := p.Get(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range [][]byte{p.Grow(b, 1<<20<<(i%2)), p.GrowAux(b, 1<<20)} {
				mark++
				s[0], s[len(s)/2], s[len(s)-1] = mark, mark, mark
				live = append(live, region{s, mark})
			}
			bs = append(bs, b)
		}
		if s, want := p.Stats(), int64(depth/2*(3<<20)+(depth-depth/2)*(2<<20)); s.Allocated != want || s.PeakOut != want || s.Out != depth {
			t.Fatalf("stats %+v, want Allocated = PeakOut = %d, Out %d", s, want, depth)
		}
		return bs
	}
	check := func() {
		t.Helper()
		for i, r := range live {
			if r.s[0] != r.mark || r.s[len(r.s)/2] != r.mark || r.s[len(r.s)-1] != r.mark {
				t.Fatalf("a buffer still out was overwritten (region %d)", i)
			}
			for j, q := range live[:i] {
				lo, hi := &r.s[0], &r.s[len(r.s)-1]
				if ql, qh := &q.s[0], &q.s[len(q.s)-1]; uintptr(unsafe.Pointer(lo)) <= uintptr(unsafe.Pointer(qh)) && uintptr(unsafe.Pointer(ql)) <= uintptr(unsafe.Pointer(hi)) {
					t.Fatalf("two buffers out at once share memory (regions %d and %d)", j, i)
				}
			}
		}
	}
	a, b := bufpool.New[int](3), bufpool.New[int](4)
	as := fill(a, 3)
	bs := fill(b, 4)
	check()
	for _, x := range as {
		a.Put(x)
	}
	a.Close()
	live = live[2*3:] // a's regions are gone; b's are still out
	c := bufpool.New[int](3)
	cs := fill(c, 3)
	check()
	for _, x := range bs {
		b.Put(x)
	}
	for _, x := range cs {
		c.Put(x)
	}
	b.Close()
	c.Close()
}

// A Grow whose allocation panics (a size no slice can have: the caller's bug, but one a caller
// may recover from, as the pipeline recovers a panic in a chunk's read) leaves the buffer holding
// nothing it gave back: its old memory went to the shared cache before the allocation, and a
// buffer still holding it would share it with whoever the cache hands it to next (and give it
// back a second time on Close). Its accounting stays what it holds.
func TestGrowThatPanicsHoldsNothingItGaveBack(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("no size here makes make panic rather than run out of memory")
	}
	ctx := context.Background()
	p := bufpool.New[int](1)
	b, _ := p.Get(ctx)
	p.Grow(b, 1<<20)
	mustPanic(t, "Grow to math.MaxInt bytes", func() { p.Grow(b, math.MaxInt) })
	mustPanic(t, "GrowAux to math.MaxInt bytes", func() { p.GrowAux(b, math.MaxInt) })
	if s, held := p.Stats(), int64(cap(b.B)+cap(b.Aux)); s.Allocated != held {
		t.Fatalf("after the panics the pool counts %d bytes; the buffer holds %d", s.Allocated, held)
	}
	q := bufpool.New[int](1)
	c, _ := q.Get(ctx)
	q.Grow(c, 1<<20)
	if cap(b.B) > 0 && unsafe.SliceData(b.B[:1]) == unsafe.SliceData(c.B) {
		t.Fatal("a buffer whose Grow panicked still holds memory the cache handed to another pool's buffer")
	}
	p.Put(b)
	p.Close()
	q.Put(c)
	q.Close()
}

// B and Aux are exported fields, so a caller can replace them (an append past the capacity
// does). The pool still recycles and counts only the memory it gave: a replaced region is never
// handed to the shared cache (where the next Grow anywhere would share it with the caller, who
// may still use it), and Put of a buffer whose region was replaced panics, an ownership bug like
// a second Put (before, the pool's memory was lost, off the Go heap for good, and its
// accounting took the replacement's capacity for its own).
func TestReplacedRegionsAreNotThePools(t *testing.T) {
	ctx := context.Background()
	p := bufpool.New[int](1)
	b, _ := p.Get(ctx)
	mine := make([]byte, 8<<10) // a caller's own memory, of a cached size
	b.B = mine
	got := p.Grow(b, 16<<10) // from the pool, whatever b.B was
	if unsafe.SliceData(got) == unsafe.SliceData(mine) {
		t.Fatal("Grow returned the caller's memory")
	}
	q := bufpool.New[int](1)
	c, _ := q.Get(ctx)
	if other := q.Grow(c, 8<<10); unsafe.SliceData(other) == unsafe.SliceData(mine) {
		t.Fatal("the caller's memory, put in b.B, was handed to another pool's buffer")
	}
	q.Put(c)
	q.Close()

	ours := b.B
	b.B = append(b.B, 1) // past its capacity: a new slice
	mustPanic(t, "Put of a buffer whose B was replaced", func() { p.Put(b) })
	b.B = ours
	b.Aux = make([]byte, 4<<10)
	mustPanic(t, "Put of a buffer whose Aux was replaced", func() { p.Put(b) })
	b.Aux = nil
	p.Put(b)
	if s := p.Stats(); s.Allocated != 16<<10 {
		t.Fatalf("allocated %d, want the %d bytes the pool gave", s.Allocated, 16<<10)
	}
	b, _ = p.Get(ctx)
	if unsafe.SliceData(b.B[:1]) != unsafe.SliceData(ours) || cap(b.B) != 16<<10 {
		t.Fatal("the buffer came back without the memory the pool gave it")
	}
	p.Put(b)
	p.Close()
}
