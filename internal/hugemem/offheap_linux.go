package hugemem

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// unit is one mapping: Page bytes split into Page/size pieces, or one piece of size >= Page.
type unit struct {
	mem      []byte
	size     int    // bytes per piece
	free     uint32 // bit i: piece i is back (at most Page/MinOffHeap = 2 pieces)
	idle     int    // garbage collections seen with every piece back
	resident bool   // pages may be resident: not returned to the kernel since last used
}

func (u *unit) pieces() int   { return max(1, Page/u.size) }
func (u *unit) allFree() bool { return u.free == 1<<u.pieces()-1 }

var heap struct {
	mu    sync.Mutex
	units []*unit           // every mapping: what releaseIdle goes over
	pages map[uintptr]*unit // by the address of each huge page in it: what Put looks up
	free  map[int][]*unit   // by piece size: units with at least one free piece
	armed bool
}

func get(n int) ([]byte, bool) {
	heap.mu.Lock()
	defer heap.mu.Unlock()
	if !heap.armed {
		heap.armed = true
		heap.pages, heap.free = map[uintptr]*unit{}, map[int][]*unit{}
		armGC()
	}
	var u *unit
	if l := heap.free[n]; len(l) > 0 {
		u = l[len(l)-1]
	} else {
		mem, err := mapAligned(max(n, Page))
		if err != nil {
			return nil, false
		}
		u = &unit{mem: mem, size: n}
		u.free = 1<<u.pieces() - 1
		heap.units = append(heap.units, u)
		for off := 0; off < len(mem); off += Page {
			heap.pages[base(mem)+uintptr(off)] = u
		}
		heap.free[n] = append(heap.free[n], u)
	}
	i := 0
	for u.free&(1<<i) == 0 {
		i++
	}
	u.free &^= 1 << i
	u.idle, u.resident = 0, true
	if u.free == 0 { // no piece left: off the free list (it is its last entry)
		l := heap.free[n]
		heap.free[n] = l[:len(l)-1]
	}
	return u.mem[i*n : (i+1)*n : (i+1)*n], true
}

func put(b []byte) bool {
	p := base(b)
	heap.mu.Lock()
	defer heap.mu.Unlock()
	u := heap.pages[p&^(Page-1)]
	if u == nil {
		return false
	}
	if cap(b) != u.size || (p-base(u.mem))%uintptr(u.size) != 0 {
		panic(fmt.Sprintf("hugemem: Put of %d bytes at %#x that Get did not return", cap(b), p))
	}
	i := int(p-base(u.mem)) / u.size
	if u.free&(1<<i) != 0 {
		panic(fmt.Sprintf("hugemem: Put of %#x twice", p))
	}
	if u.free == 0 {
		heap.free[u.size] = append(heap.free[u.size], u)
	}
	u.free |= 1 << i
	return true
}

func take(n int) ([]byte, bool) {
	c := Page
	for c < n {
		c <<= 1
	}
	b, ok := get(c) // a mapping of its own (c >= Page: one piece), perhaps one given back before
	if !ok {
		return nil, false
	}
	if hi := Held(n); hi < c {
		// A reused mapping may still hold resident pages past what this buffer will touch.
		_ = unix.Madvise(b[hi:], unix.MADV_DONTNEED)
	}
	return b[:n:n], true
}

func release(b []byte) bool {
	p := base(b)
	heap.mu.Lock()
	defer heap.mu.Unlock()
	u := heap.pages[p&^(Page-1)]
	if u == nil {
		return false
	}
	if u.size < Page || p != base(u.mem) || cap(b) > u.size {
		panic(fmt.Sprintf("hugemem: Release of %d bytes at %#x that Take did not return", cap(b), p))
	}
	if u.free != 0 {
		panic(fmt.Sprintf("hugemem: Release of %#x twice", p))
	}
	_ = unix.Madvise(u.mem, unix.MADV_DONTNEED)
	u.free, u.idle, u.resident = 1, 0, false
	heap.free[u.size] = append(heap.free[u.size], u)
	return true
}

func resident() int64 {
	heap.mu.Lock()
	defer heap.mu.Unlock()
	pageSize := unix.Getpagesize()
	var n int64
	var vec []byte
	for _, u := range heap.units {
		pages := (len(u.mem) + pageSize - 1) / pageSize
		if cap(vec) < pages {
			vec = make([]byte, pages)
		}
		vec = vec[:pages]
		_, _, e := unix.Syscall(unix.SYS_MINCORE, base(u.mem), uintptr(len(u.mem)), uintptr(unsafe.Pointer(unsafe.SliceData(vec))))
		if e != 0 {
			continue
		}
		for _, v := range vec {
			n += int64(v & 1)
		}
	}
	return n * int64(pageSize)
}

// mapAligned maps n bytes (a multiple of Page) at a huge-page boundary, advised for huge pages.
func mapAligned(n int) ([]byte, error) {
	// MmapPtr and MunmapPtr, not Mmap and Munmap: Munmap unmaps only a whole mapping that Mmap
	// returned (a piece of one is EINVAL), so the padding would stay mapped.
	p, err := unix.MmapPtr(-1, 0, nil, uintptr(n+Page), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, err
	}
	pad := -uintptr(p) & (Page - 1)
	if pad > 0 {
		_ = unix.MunmapPtr(p, pad) // never handed out: nothing can refer to it
	}
	if tail := Page - pad; tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(p, pad+uintptr(n)), tail)
	}
	mem := unsafe.Slice((*byte)(unsafe.Add(p, pad)), n)
	_ = unix.Madvise(mem, unix.MADV_HUGEPAGE) // a hint: refused, the memory is ordinary pages
	return mem, nil
}

func base(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// gcTick is an object that dies at every garbage collection; its cleanup runs releaseIdle and
// makes the next one.
type gcTick struct{ _ *int }

func armGC() {
	t := &gcTick{}
	runtime.AddCleanup(t, func(struct{}) {
		collected()
		armGC()
		cleanups.Add(1)
	}, struct{}{})
}

// cleanups counts the collections whose cleanup has run and re-armed (for a test that waits for
// them: a collection after the count moved is one that the next cleanup follows).
var cleanups atomic.Uint64

// collectorPaused stops the collections from calling releaseIdle (for a test that calls it
// itself and counts). It is read under heap.mu, so a collection whose cleanup was already
// waiting for the lock when a test paused does nothing either.
var collectorPaused atomic.Bool

// collected is a garbage collection's call of releaseIdle.
func collected() {
	heap.mu.Lock()
	defer heap.mu.Unlock()
	if !collectorPaused.Load() {
		releaseIdleLocked()
	}
}

// releaseIdle returns to the kernel the pages of every unit that has had all its pieces back
// through two garbage collections: like sync.Pool, memory nobody asked for again goes.
func releaseIdle() {
	heap.mu.Lock()
	defer heap.mu.Unlock()
	releaseIdleLocked()
}

func releaseIdleLocked() {
	for _, u := range heap.units {
		if !u.allFree() || !u.resident {
			continue
		}
		if u.idle++; u.idle >= 2 {
			_ = unix.Madvise(u.mem, unix.MADV_DONTNEED)
			u.resident = false
		}
	}
}
