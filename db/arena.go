package db

import (
	"github.com/streamwal/recovery/internal/hugemem"
)

// bigItem: a pair at least this large gets its own allocation (it would waste a slab's tail).
const bigItem = 128 << 10

// noBytes is the kv of an empty key with an empty value: non-nil, zero capacity.
var noBytes = make([]byte, 0)

// arena hands out the store's memory at open: the pairs finish reads back, carved one after
// the other from slabs of up to bigSlab, cut to the bytes still expected (the read-back knows
// exactly how many it will copy), so no slab has an unused tail to speak of. Slabs come from
// hugemem.Alloc: a 4 KiB page of fresh memory costs a fault of ~10 us to touch on a small VM,
// a huge page ~60 us per MiB instead of 2.5 ms. No pair is ever recycled (snapshots may still
// see it); a slab lives as long as any pair in it.
type arena struct {
	slab   []byte // what is left of the slab being carved
	expect int64  // bytes still to be asked for
	size   int64  // bytes of every slab made
}

// newArenaFor is an arena for total bytes to come.
func newArenaFor(total int64) *arena { return &arena{expect: total} }

// bigSlab is the largest slab: a bigger one could pin more memory after later writes
// supersede most of its pairs.
const bigSlab = 8 << 20

// alloc returns n bytes of store-owned memory, capacity capped.
func (a *arena) alloc(n int) []byte {
	switch {
	case n == 0:
		return noBytes
	case n >= bigItem:
		return make([]byte, n)
	}
	if len(a.slab) < n {
		size := int(min(max(a.expect, int64(n)), bigSlab))
		a.slab = hugemem.Alloc(size)
		a.size += int64(size)
	}
	b := a.slab[:n:n]
	a.slab = a.slab[n:]
	a.expect -= int64(n)
	return b
}
