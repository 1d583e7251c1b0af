//go:build pool_hugeheap

package hugemem

import (
	"math/bits"
	"sync"
)

// The pool_hugeheap build, for measurement only (scripts/pool-alloc.sh): Get and Take serve
// memory from the Go heap whose huge pages are advised MADV_HUGEPAGE, every huge page the slice
// touches (rounded out, unlike Alloc, so that a 1 MiB buffer is in huge pages too: its
// neighbours in the heap share them), and Put caches it in size classes of sync.Pool. Release
// leaves Take's memory to the collector.
const hugeHeap = true

var heapClasses [bits.UintSize]sync.Pool

func heapGet(n int) ([]byte, bool) {
	if v := heapClasses[bits.Len(uint(n))].Get(); v != nil {
		return *(v.(*[]byte)), true
	}
	return heapAlloc(n), true
}

// heapPut caches b, a power of two in [MinOffHeap, MaxOffHeap] that is not Get's off-heap
// memory (the caller checked): in this build the only such memory bufpool recycles is heapGet's.
func heapPut(b []byte) bool {
	n := cap(b)
	if n < MinOffHeap || n > MaxOffHeap || n&(n-1) != 0 {
		return false
	}
	b = b[:n]
	heapClasses[bits.Len(uint(n))].Put(&b)
	return true
}

func heapTake(n int) ([]byte, bool) { return heapAlloc(n), true }

func heapAlloc(n int) []byte {
	b := make([]byte, n)
	if offered() {
		adviseAround(b)
	}
	return b
}
