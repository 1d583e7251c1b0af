package hugemem

// Off-heap buffers: Get and Put, Take and Release.
//
// Recovery's pooled buffers are the one large allocation whose lifetime is exactly known (a
// pool's life, strict ownership), so on Linux they live outside the Go heap, in anonymous
// mappings aligned to huge pages: the garbage collector neither scans nor counts them (so they
// do not raise the heap goal of the caller's program), and the first touch of each 2 MiB costs
// one fault instead of 512.
//
// A mapping is never unmapped. Memory that is given back stays mapped for the next Get; once
// it has sat unused through two garbage collections its pages are returned to the kernel with
// MADV_DONTNEED (the address range stays valid and reads as zeros until it is touched again).
// So a slice a caller wrongly kept past its buffer's release reads stale bytes or zeros, never
// an unmapped address: the same failure, no worse, as with memory from the Go heap. Take and
// Release are for the one buffer whose size is not known in advance (it grows with the records
// it holds): its memory is not kept for the next user, its pages go back at Release.

const (
	// MinOffHeap and MaxOffHeap bound the sizes Get serves: powers of two. Below 1 MiB a
	// buffer shares its huge page with others, and a huge page is resident whole: the pool
	// would hold memory it does not count. At 1 MiB a piece shares its huge page with one
	// other, which may sit back, unused and resident (not returned while its partner is out):
	// at most one uncounted MiB per 1 MiB piece out, not one per size (two pieces out, each
	// the partner of one given back, leave two such halves).
	MinOffHeap = 1 << 20
	MaxOffHeap = 256 << 20
)

// Get returns n bytes of zeroed-or-reused memory outside the Go heap (contents unspecified),
// aligned to n or to a huge page, whichever is smaller, with length and capacity n. It serves only powers of two in
// [MinOffHeap, MaxOffHeap], on Linux with huge pages offered and outside race and invariants
// builds (where buffers stay on the Go heap so the race detector sees them); otherwise ok is
// false and the caller allocates as usual. The caller owns the memory until Put. (Builds for
// measurement only, scripts/pool-alloc.sh: pool_heap keeps the buffers on the Go heap as race
// builds do; pool_hugeheap serves Get and Take from the Go heap, advised for huge pages.)
func Get(n int) (b []byte, ok bool) {
	if n < MinOffHeap || n > MaxOffHeap || n&(n-1) != 0 {
		return nil, false
	}
	if !offHeap || !offered() {
		return heapGet(n) // pool_hugeheap builds only: otherwise ok is false
	}
	return get(n)
}

// Put gives back b if Get returned it (the whole slice, as returned; the caller must not touch
// it, or any slice of it, again) and reports whether it did; memory from anywhere else is left
// alone. Put panics on a piece of Get's memory that is not one Get returned, or that is back
// already: an ownership bug, not a condition to paper over.
func Put(b []byte) bool { return put(b) || hugeHeap && !OffHeap() && heapPut(b) }

// MaxTake is the largest buffer Take serves: a record of the default maximum size (1 GiB)
// with its header, and then some. Its mapping is the next power of two, 2 GiB: Take serves
// only 64-bit platforms.
const MaxTake = 1<<30 + 1<<20

// Take returns n bytes outside the Go heap for a buffer that grows, replaced by a larger one
// now and then (recovery's one buffer for records larger than a read): the first n bytes of a
// mapping of the power of two at or above n (at least a Page), aligned to a huge page, of
// which nothing past n is resident. It serves n in [MinOffHeap, MaxTake] where Get serves
// anything (ok false otherwise: the caller allocates as usual). Release gives it back with its
// pages returned to the kernel at once, so that a replaced buffer is not held beside its
// replacement: at most Held(n) bytes of a taken buffer are ever resident.
func Take(n int) (b []byte, ok bool) {
	if n < MinOffHeap || n > MaxTake {
		return nil, false
	}
	if !offHeap || !offered() || ^uint(0)>>32 == 0 {
		return heapTake(n) // pool_hugeheap builds only: otherwise ok is false
	}
	return take(n)
}

// Held is what a buffer Take returned for n bytes may hold resident: n rounded up to a huge
// page (the last one, touched in part, may be a huge page whole).
func Held(n int) int { return (n + Page - 1) &^ (Page - 1) }

// Release gives back b, a slice Take returned (as returned), returning its pages to the kernel
// at once (the addresses stay mapped, reading zeros, for a caller that wrongly kept a slice),
// and reports whether it did; memory from anywhere else is left alone. It panics on memory of
// Take's that is not a slice Take returned, or that is back already.
func Release(b []byte) bool { return release(b) }

// Resident is how many bytes of Get's and Take's memory the kernel holds resident now
// (mincore(2)), given back or not: for tests that hold the memory to its accounting.
func Resident() int64 { return resident() }

// OffHeap reports whether Get and Take serve memory here.
func OffHeap() bool { return offHeap && offered() }
