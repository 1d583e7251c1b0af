package hugemem

import "testing"

// Take's memory is held only while it is out: touched whole it is resident, and Release returns
// its pages to the kernel at once (the kernel's count, mincore, says so), not after idle
// collections as Put's. A mapping given back is taken again, with nothing resident past what
// the new buffer may touch, even when Get's user left it resident.
func TestTakeReleaseReturnsPagesAtOnce(t *testing.T) {
	withOffHeap(t)
	collectorPaused.Store(true) // nothing else returns pages while this test counts them
	defer collectorPaused.Store(false)
	const n = 5<<20 + 12
	r0 := Resident()
	b, ok := Take(n)
	if !ok {
		t.Fatal("Take refused")
	}
	if len(b) != n || cap(b) != n || base(b)%Page != 0 {
		t.Fatalf("Take(%d): len %d cap %d at %#x", n, len(b), cap(b), base(b))
	}
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	b[n-1] = 1
	r1 := Resident()
	if r1-r0 < n || r1-r0 > int64(Held(n)) {
		t.Fatalf("touched whole, %d bytes grew the resident memory by %d; want [%d, %d]", n, r1-r0, n, Held(n))
	}
	if !Release(b) {
		t.Fatal("Release refused Take's memory")
	}
	if r2 := Resident(); r2 > r0 {
		t.Fatalf("after Release %d bytes are resident, %d before Take: its pages were not returned", r2, r0)
	}
	if b[0] != 0 {
		t.Fatal("released memory still reads its old bytes")
	}
	again, _ := Take(n - 1<<20) // the same class: the same mapping
	if base(again) != base(b) {
		t.Fatalf("Take after Release mapped new memory at %#x instead of reusing %#x", base(again), base(b))
	}
	Release(again)

	// A mapping Get's user left resident: Take keeps nothing resident past Held.
	g, ok := Get(8 << 20)
	if !ok {
		t.Fatal("Get refused")
	}
	for i := 0; i < len(g); i += 4096 {
		g[i] = 1
	}
	Put(g)
	r3 := Resident()
	c, _ := Take(5 << 20) // class 8 MiB: Get's mapping
	if base(c) != base(g) {
		t.Fatalf("Take did not reuse the mapping Get's user gave back")
	}
	if r4 := Resident(); r3-r4 < 8<<20-int64(Held(5<<20)) {
		t.Fatalf("Take of 5 MiB on a resident 8 MiB mapping left %d bytes resident past its %d", 8<<20-(r3-r4)-int64(Held(5<<20)), Held(5<<20))
	}
	Release(c)
}

func TestTakeServesOnlyItsSizes(t *testing.T) {
	withOffHeap(t)
	for _, n := range []int{-1, 0, MinOffHeap - 1, MaxTake + 1} {
		if b, ok := Take(n); ok {
			t.Fatalf("Take(%d) served %d bytes", n, len(b))
		}
	}
	if Release(make([]byte, MinOffHeap)) {
		t.Fatal("Release took memory Take did not return")
	}
}

func TestReleaseOwnershipBugsPanic(t *testing.T) {
	withOffHeap(t)
	b, ok := Take(3 << 20)
	if !ok {
		t.Fatal("Take refused")
	}
	mustPanic(t, "a Take slice to Put", func() { Put(b) })
	mustPanic(t, "an interior slice of Take's", func() { Release(b[Page:]) })
	Release(b)
	mustPanic(t, "a second Release", func() { Release(b) })
}
