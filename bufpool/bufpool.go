// Package bufpool is a bounded pool of reusable byte buffers: the one thing that bounds
// recovery's memory.
//
// A Pool holds exactly Depth buffers for its whole life. Get blocks while all of them are out
// (back-pressure on the reader), so at most Depth buffers ever exist, each grown only as far as
// the largest thing it had to hold. Each buffer carries a Meta value of the caller's type that
// is reused with it (record tables, verdicts), so the steady state allocates nothing.
//
// Ownership is strict: a buffer is owned by whoever got it until it is Put back, exactly once.
// Put panics on a second return or on a buffer of another pool; Close panics if any buffer is
// still out. In builds with the race detector or the `invariants` tag, Put poisons the bytes
// (0xDB), so a stage that kept a slice past its release reads garbage and its test fails.
//
// Recovery's stages use it through internal/reader and pipeline; it needs nothing of them, and
// everything exported here is stable.
package bufpool

import (
	"context"
	"fmt"
	"sync"
)

// Poison is the byte released buffers are filled with when Debug is on.
const Poison = 0xDB

// Buffer is one pooled buffer. The memory it holds is the capacity of B, the capacity of Aux
// (a second region, for bytes that do not belong after B's), and the bytes its Meta says it
// holds (SetMetaBytes): the pool counts all three.
//
// B and Aux are the regions Grow and GrowAux gave (Get hands them out at length 0). The owner
// may change their length within their capacity (B = B[:n]), but not their start or capacity
// (an append past the capacity replaces B): the pool recycles and counts only the memory it
// gave, and Put panics on a buffer whose B or Aux is other memory.
type Buffer[M any] struct {
	B    []byte
	Aux  []byte
	Meta M

	pool      *Pool[M]
	out       bool
	metaBytes int64
	mem, aux  []byte // the regions the pool gave B and Aux, whole
}

// Grow is p.Grow(b, n) for b's own pool.
func (b *Buffer[M]) Grow(n int) []byte { return b.pool.Grow(b, n) }

// GrowAux is p.GrowAux(b, n) for b's own pool.
func (b *Buffer[M]) GrowAux(n int) []byte { return b.pool.GrowAux(b, n) }

// SetMetaBytes records how many bytes b's Meta holds (record tables that grow with the number
// of records), so that the pool's accounting covers every byte a buffer holds, not only B.
func (b *Buffer[M]) SetMetaBytes(n int64) {
	p := b.pool
	p.mustOwn(b, "SetMetaBytes")
	if n == b.metaBytes {
		return
	}
	p.count(n - b.metaBytes)
	b.metaBytes = n
}

func (b *Buffer[M]) held() int64 { return int64(cap(b.mem)) + int64(cap(b.aux)) + b.metaBytes }

// Stats is the pool's accounting.
type Stats struct {
	Depth     int   // buffers the pool may ever hold
	Out       int   // buffers checked out now
	Allocated int64 // capacity of every buffer the pool holds, in or out: its real memory
	PeakOut   int64 // largest total capacity ever checked out at once
}

// Pool is a bounded pool of Depth buffers. It is safe for concurrent use.
type Pool[M any] struct {
	// tokens holds one token per buffer in the pool (Get takes one, Put gives one back);
	// stack holds the buffers themselves, last in first out: the buffer released last is the
	// one most likely still in a core's cache, so it is the one handed out next.
	tokens chan struct{}
	stack  []*Buffer[M] // guarded by mu
	depth  int

	mu        sync.Mutex
	out       int
	outBytes  int64
	peakOut   int64
	allocated int64
	closed    bool
}

// New returns a pool of depth buffers (depth >= 1). No byte is allocated until a buffer grows.
func New[M any](depth int) *Pool[M] {
	if depth < 1 {
		panic(fmt.Sprintf("bufpool: depth %d < 1", depth))
	}
	p := &Pool[M]{tokens: make(chan struct{}, depth), depth: depth}
	for range depth {
		p.tokens <- struct{}{}
		p.stack = append(p.stack, &Buffer[M]{pool: p})
	}
	return p
}

// Get takes a buffer, blocking while all are out. It fails only with ctx's error.
// The buffer's B has length 0 and whatever capacity it had before. Get on a closed pool
// panics: a use after Close is a bug, as a second Put is.
func (p *Pool[M]) Get(ctx context.Context) (*Buffer[M], error) {
	select {
	case <-p.tokens:
	default:
		select {
		case <-p.tokens:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		panic("bufpool: Get on a closed pool")
	}
	b := p.stack[len(p.stack)-1]
	p.stack = p.stack[:len(p.stack)-1]
	b.out = true
	p.out++
	p.outBytes += b.held()
	p.peakOut = max(p.peakOut, p.outBytes)
	p.mu.Unlock()
	b.B, b.Aux = b.mem[:0], b.aux[:0]
	return b, nil
}

// Grow makes b.B hold n bytes of the pool's memory (contents not preserved when it must
// reallocate) and returns b.B, of length n. The caller must own b and must have bounded n: the
// pool trusts it.
func (p *Pool[M]) Grow(b *Buffer[M], n int) []byte {
	p.mustOwn(b, "Grow")
	b.B = p.grow(&b.mem, &b.B, n)
	return b.B
}

// GrowAux is Grow for b.Aux.
func (p *Pool[M]) GrowAux(b *Buffer[M], n int) []byte {
	p.mustOwn(b, "GrowAux")
	b.Aux = p.grow(&b.aux, &b.Aux, n)
	return b.Aux
}

// grow makes the region *r (b.mem or b.aux; *s is B or Aux, on it) hold n bytes and returns
// its first n. The old memory goes back to its cache before the new is made, and the buffer
// lets go of it first: if the allocation panics (a size no slice can have), the buffer holds
// nothing it gave back, and the accounting says so.
func (p *Pool[M]) grow(r, s *[]byte, n int) []byte {
	if cap(*r) < n {
		old := *r
		*r, *s = nil, nil
		p.count(-int64(cap(old)))
		recycle(old)
		*r = fresh(n)
		p.count(int64(n))
	}
	return (*r)[:n]
}

// count adds d bytes to what the pool holds, all of it checked out.
func (p *Pool[M]) count(d int64) {
	p.mu.Lock()
	p.allocated += d
	p.outBytes += d
	p.peakOut = max(p.peakOut, p.outBytes)
	p.mu.Unlock()
}

// PoisonBytes fills all of s's capacity with Poison when Debug is on (a released region's bytes
// must not be read again).
func PoisonBytes(s []byte) {
	if !Debug {
		return
	}
	if full := s[:cap(s)]; len(full) > 0 {
		full[0] = Poison
		for n := 1; n < len(full); n *= 2 { // doubling copies: fast even under -race
			copy(full[n:], full[:n])
		}
	}
}

// Put returns b. After Put the caller must not touch b or any slice of b.B or b.Aux.
func (p *Pool[M]) Put(b *Buffer[M]) {
	p.mustOwn(b, "Put")
	if !on(b.B, b.mem) || !on(b.Aux, b.aux) {
		panic("bufpool: Put of a buffer whose B or Aux is not the memory the pool gave it (replaced, or appended past its capacity)")
	}
	b.out = false
	PoisonBytes(b.mem)
	PoisonBytes(b.aux)
	p.mu.Lock()
	p.out--
	p.outBytes -= b.held()
	p.stack = append(p.stack, b)
	p.mu.Unlock()
	p.tokens <- struct{}{} // never blocks: at most depth tokens exist
}

// on reports whether s is region r resliced within its capacity (or holds no memory at all).
func on(s, r []byte) bool {
	return cap(s) == 0 || cap(s) == cap(r) && &s[:1][0] == &r[:1][0]
}

func (p *Pool[M]) mustOwn(b *Buffer[M], op string) {
	if b == nil || b.pool != p {
		panic("bufpool: " + op + " of a buffer from another pool")
	}
	if !b.out {
		panic("bufpool: " + op + " of a buffer that is not checked out (returned twice, or used after Put)")
	}
}

// Stats returns the pool's accounting.
func (p *Pool[M]) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return Stats{Depth: p.depth, Out: p.out, Allocated: p.allocated, PeakOut: p.peakOut}
}

// Close tears the pool down. It panics if any buffer is still out: a leak of ownership is a
// bug to find, not to paper over.
func (p *Pool[M]) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out != 0 {
		panic(fmt.Sprintf("bufpool: Close with %d buffer(s) still out", p.out))
	}
	p.closed = true
	for _, b := range p.stack { // every buffer is in: hand their memory on to the next pool
		recycle(b.mem)
		recycle(b.aux)
		b.mem, b.aux, b.B, b.Aux = nil, nil, nil, nil
	}
}

// Memory is recycled between pools, so that a recovery's buffers are the next recovery's (a
// benchmark loop, a CLI that verifies many files, a database reopened) instead of fresh pages
// every time: on a small VM the first touch of a fresh 4 KiB page is a fault of about 10 µs,
// which for a pool of 1 MiB buffers was a visible share of a whole recovery.
//
// Powers of two are cached in size classes of sync.Pool, on the Go heap: the collector counts
// them (GOMEMLIMIT, the heap goal, pprof) and frees what sits unused through two collections.
// The pool still counts (and bounds) the capacity it holds; what sits in the cache between
// recoveries belongs to no pool. Why the heap and not mappings outside it: docs/design.md,
// decision record "The pool on the Go heap".
const (
	minClass = 12 // 4 KiB: smaller allocations are not worth caching
	maxClass = 30 // 1 GiB
)

var classes [maxClass + 1]sync.Pool

// class is the size class that holds n bytes: the smallest power of two >= n.
func class(n int) int {
	c := minClass
	for c <= maxClass && 1<<c < n {
		c++
	}
	return c
}

// fresh returns n bytes, from a cache when n is a power of two (the read size is one by
// default); any other size is made exactly, so that the pool's accounting of capacity stays the
// bytes asked for.
func fresh(n int) []byte {
	c := class(n)
	if c > maxClass || 1<<c != n {
		return make([]byte, n)
	}
	if v := classes[c].Get(); v != nil {
		return (*(v.(*[]byte)))[:n]
	}
	return make([]byte, n)
}

// recycle hands s's memory to its cache; the caller must never touch s again.
func recycle(s []byte) {
	if cap(s) < 1<<minClass || cap(s) > 1<<maxClass || cap(s)&(cap(s)-1) != 0 {
		return // not one of ours: let the collector have it
	}
	s = s[:cap(s)]
	classes[class(cap(s))].Put(&s)
}
