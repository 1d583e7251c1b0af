package hugemem

import "testing"

// Each build serves the pool's sizes from the memory its tags say (scripts/pool-alloc.sh
// measures the three): off the heap by default on Linux with huge pages offered, from the Go
// heap in pool_hugeheap builds, and not at all (the caller allocates) in pool_heap, race and
// invariants builds and elsewhere.
func TestPoolVariant(t *testing.T) {
	b, ok := Get(MinOffHeap)
	switch {
	case OffHeap():
		if !ok || !put(b) {
			t.Fatalf("default build: Get served off-heap memory? %v", ok)
		}
	case hugeHeap:
		if !ok || len(b) != MinOffHeap || !Put(b) {
			t.Fatalf("pool_hugeheap build: Get served %v, %d bytes, or Put refused them", ok, len(b))
		}
		c, ok := Take(3 << 20)
		if !ok || len(c) != 3<<20 || Release(c) {
			t.Fatalf("pool_hugeheap build: Take served %v, %d bytes, or Release took heap memory", ok, len(c))
		}
	case ok:
		t.Fatalf("Get served %d bytes in a build that keeps the pool's buffers to its caller", len(b))
	}
}
