package hugemem

import (
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// withOffHeap turns off-heap buffers on for a test, also in race builds (whose other packages
// keep buffers on the Go heap so that the race detector sees them).
func withOffHeap(t *testing.T) {
	t.Helper()
	if !offered() {
		t.Skip("no transparent huge pages offered here: Get serves nothing")
	}
	old := offHeap
	offHeap = true
	t.Cleanup(func() { offHeap = old })
}

func TestGetServesOnlyItsSizes(t *testing.T) {
	withOffHeap(t)
	for _, n := range []int{-MinOffHeap, -1, 0, 1, 4 << 10, MinOffHeap / 2, MinOffHeap - 1, MinOffHeap + 1, 3 << 20, MaxOffHeap - 1, MaxOffHeap + 1, MaxOffHeap * 2} {
		if b, ok := Get(n); ok {
			t.Fatalf("Get(%d) served %d bytes; only powers of two in [%d, %d]", n, len(b), MinOffHeap, MaxOffHeap)
		}
	}
	if Put(make([]byte, MinOffHeap)) {
		t.Fatal("Put took memory Get did not return")
	}
}

// The edges it serves: exactly MinOffHeap and exactly MaxOffHeap (only the two pages touched).
func TestGetServesItsEdges(t *testing.T) {
	withOffHeap(t)
	for _, n := range []int{MinOffHeap, MaxOffHeap} {
		b, ok := Get(n)
		if !ok {
			t.Fatalf("Get(%d) refused", n)
		}
		if p := base(b); len(b) != n || cap(b) != n || p%uintptr(min(n, Page)) != 0 {
			t.Fatalf("Get(%d): len %d cap %d at %#x", n, len(b), cap(b), p)
		}
		b[0], b[n-1] = 1, 2
		if !Put(b) {
			t.Fatalf("Put refused Get(%d)'s memory", n)
		}
		again, _ := Get(n)
		if base(again) != base(b) {
			t.Fatalf("Get(%d) after Put mapped new memory", n)
		}
		Put(again)
	}
}

func TestGetPut(t *testing.T) {
	withOffHeap(t)
	for _, n := range []int{MinOffHeap, Page, 4 * Page} {
		var got [][]byte
		seen := map[uintptr]bool{}
		for range 5 {
			b, ok := Get(n)
			if !ok {
				t.Fatalf("Get(%d) refused", n)
			}
			p := base(b)
			if len(b) != n || cap(b) != n || p%uintptr(min(n, Page)) != 0 || seen[p] {
				t.Fatalf("Get(%d): len %d cap %d at %#x (aligned to %d? reused while out? %v)", n, len(b), cap(b), p, min(n, Page), seen[p])
			}
			seen[p] = true
			for i := range b { // every byte writable; no two pieces overlap (checked below)
				b[i] = byte(len(got))
			}
			got = append(got, b)
		}
		for i, b := range got {
			if b[0] != byte(i) || b[n-1] != byte(i) {
				t.Fatalf("Get(%d): piece %d was overwritten by another piece", n, i)
			}
		}
		for _, b := range got {
			if !Put(b) {
				t.Fatalf("Put refused a piece of %d bytes that Get returned", n)
			}
		}
		// Memory given back is handed out again before anything new is mapped.
		for range 5 {
			again, _ := Get(n)
			if !seen[base(again)] {
				t.Fatalf("Get(%d) after Put mapped new memory at %#x instead of reusing", n, base(again))
			}
			defer Put(again)
		}
	}
}

func TestPutOwnershipBugsPanic(t *testing.T) {
	withOffHeap(t)
	b, _ := Get(MinOffHeap)
	mustPanic(t, "an interior slice", func() { Put(b[1:]) })
	Put(b)
	mustPanic(t, "a second Put", func() { Put(b) })
}

// An interior piece of a buffer larger than a huge page is caught too (not taken for memory from
// elsewhere, which a caller such as bufpool would then cache as its own).
func TestPutOfAnInteriorPieceOfALargeBufferPanics(t *testing.T) {
	withOffHeap(t)
	b, ok := Get(4 * Page)
	if !ok {
		t.Fatal("Get refused")
	}
	defer Put(b)
	mustPanic(t, "a huge page inside a larger buffer", func() { Put(b[Page:]) })
	mustPanic(t, "the last huge page of a larger buffer", func() { Put(b[3*Page:]) })
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("Put of %s did not panic", what)
		}
	}()
	f()
}

// Memory nobody asks for again goes back to the kernel after two garbage collections, and reads
// as zeros (never faults) if a buggy caller still looks at it.
func TestIdleMemoryIsReturned(t *testing.T) {
	withOffHeap(t)
	collectorPaused.Store(true) // this test counts the collections itself
	defer collectorPaused.Store(false)
	b, _ := Get(Page)
	for i := range b {
		b[i] = 0xAB
	}
	Put(b)
	releaseIdle() // one collection: still resident, still reused as is
	if b[0] != 0xAB {
		t.Fatal("memory was returned after one collection")
	}
	releaseIdle()
	if b[0] != 0 || b[Page-1] != 0 {
		t.Fatalf("memory idle through two collections still holds %#x: not returned", b[0])
	}
	// A piece in use is never returned.
	c, _ := Get(Page)
	c[0] = 0xCD
	releaseIdle()
	releaseIdle()
	releaseIdle()
	if c[0] != 0xCD {
		t.Fatal("memory in use was returned to the kernel")
	}
	Put(c)
}

// The collector really drives releaseIdle: a piece put back is returned after two collections
// (three cleanups counted from here: the first may have begun before the Put). Each collection
// is made after the previous cleanup re-armed, so each is followed by a cleanup; the test waits
// for them however long the machine takes.
func TestCollectionsReturnIdleMemory(t *testing.T) {
	withOffHeap(t)
	b, _ := Get(Page)
	b[0] = 0xEF
	Put(b)
	for range 3 {
		n := cleanups.Load()
		runtime.GC()
		for cleanups.Load() == n {
			runtime.Gosched()
		}
	}
	heap.mu.Lock()
	returned := b[0] == 0
	heap.mu.Unlock()
	if !returned {
		t.Fatal("three collections did not return an idle piece")
	}
}

// mapAligned keeps only the n bytes it hands out: the padding it mapped to find a huge-page
// boundary is unmapped again (the byte just past the memory is no longer mapped).
func TestMapAlignedUnmapsItsPadding(t *testing.T) {
	mem, err := mapAligned(Page)
	if err != nil {
		t.Fatal(err)
	}
	var vec [1]byte
	_, _, e := unix.Syscall(unix.SYS_MINCORE, base(mem)+Page, 4096, uintptr(unsafe.Pointer(&vec[0])))
	if e != unix.ENOMEM {
		t.Fatalf("mincore of the page after the aligned mapping: %v, want ENOMEM (its padding is still mapped)", e)
	}
}

// Many goroutines Get, write, check and Put buffers of several sizes while the collector's
// releaseIdle runs over and over: no piece is handed out while another holder has it (its
// bytes would be overwritten, or two held pieces would overlap), and none is returned to the
// kernel while held (its bytes would read as zeros). Under -race this also checks the
// bookkeeping's locking (the race detector does not see the off-heap bytes themselves).
func TestConcurrentGetPutAndRelease(t *testing.T) {
	withOffHeap(t)
	const workers, rounds = 4, 64
	sizes := []int{MinOffHeap, Page, 2 * Page}
	var (
		heldMu sync.Mutex
		held   = map[uintptr]int{} // base -> size of every piece out now
	)
	claim := func(b []byte) {
		heldMu.Lock()
		defer heldMu.Unlock()
		p := base(b)
		for q, n := range held {
			if p < q+uintptr(n) && q < p+uintptr(len(b)) {
				t.Errorf("Get handed out [%#x, +%d) while [%#x, +%d) is still out", p, len(b), q, n)
			}
		}
		held[p] = len(b)
	}
	unclaim := func(b []byte) {
		heldMu.Lock()
		defer heldMu.Unlock()
		delete(held, base(b))
	}
	stop := make(chan struct{})
	var releaser sync.WaitGroup
	releaser.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				releaseIdle()
				runtime.Gosched()
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				n := sizes[(w+r)%len(sizes)]
				b, ok := Get(n)
				if !ok {
					t.Errorf("Get(%d) refused", n)
					return
				}
				claim(b)
				mark := byte(1 + w*rounds + r) // never 0: a returned page reads 0
				for i := 0; i < n; i += 64 << 10 {
					b[i] = mark
				}
				b[n-1] = mark
				runtime.Gosched()
				for i := 0; i < n; i += 64 << 10 {
					if b[i] != mark {
						t.Errorf("byte %d of a held %d-byte piece at %#x is %#x, want %#x", i, n, base(b), b[i], mark)
						break
					}
				}
				if b[n-1] != mark {
					t.Errorf("last byte of a held %d-byte piece at %#x is %#x, want %#x", n, base(b), b[n-1], mark)
				}
				unclaim(b)
				Put(b)
			}
		})
	}
	wg.Wait()
	close(stop)
	releaser.Wait()
}

// inCleanup reports whether a goroutine is running the collections' cleanup (armGC's).
func inCleanup() bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), "hugemem.armGC.func1")
}

// A collection whose cleanup is already under way when a test pauses the collector releases
// nothing afterwards: the pause is checked under the lock, so a test that pauses and then counts
// the calls itself (TestIdleMemoryIsReturned) never sees an extra one. Before, the cleanup read
// the flag and only then waited for the lock, and its late call counted as one of the test's.
func TestPauseStopsACleanupAlreadyUnderWay(t *testing.T) {
	withOffHeap(t)
	defer collectorPaused.Store(false)
	b, _ := Get(Page)
	b[0] = 0xAB
	Put(b) // idle: no collection seen yet
	u := heap.pages[base(b)]

	heap.mu.Lock() // a collection's cleanup now waits for the lock
	for i := 0; !inCleanup(); i++ {
		if i == 1000 {
			heap.mu.Unlock()
			t.Skip("no goroutine dump shows the collections' cleanup: cannot catch one under way")
		}
		runtime.GC()
		runtime.Gosched()
	}
	collectorPaused.Store(true)
	heap.mu.Unlock()
	for inCleanup() {
		runtime.Gosched()
	}
	heap.mu.Lock()
	idle := u.idle
	heap.mu.Unlock()
	if idle != 0 {
		t.Fatalf("a cleanup that waited for the lock counted a collection after the pause (idle %d)", idle)
	}
}

// When the kernel refuses a mapping (here: an address-space limit, as a container or ulimit -v
// sets), Get says no and the caller allocates as usual: no panic, nothing half-recorded, and
// the sizes that still fit are served. Run in a child process: the limit is the whole process's.
func TestGetRefusesWhenMappingFails(t *testing.T) {
	if os.Getenv("HUGEMEM_RLIMIT_CHILD") == "1" {
		getUnderAddressSpaceLimit(t)
		return
	}
	if !offered() {
		t.Skip("no transparent huge pages offered here: Get serves nothing")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestGetRefusesWhenMappingFails$", "-test.v")
	cmd.Env = append(os.Environ(), "HUGEMEM_RLIMIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestGetRefusesWhenMappingFails") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func getUnderAddressSpaceLimit(t *testing.T) {
	withOffHeap(t)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	var size uint64 // VmSize, in KiB
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmSize:"); ok {
			size, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		}
	}
	if size == 0 {
		t.Skip("no VmSize in /proc/self/status")
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &old); err != nil {
		t.Skip(err)
	}
	// Room for the runtime to grow a little (and for one small unit), not for the largest.
	lim := unix.Rlimit{Cur: size<<10 + 160<<20, Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_AS, &lim); err != nil {
		t.Skip("cannot limit the address space:", err)
	}
	defer unix.Setrlimit(unix.RLIMIT_AS, &old)
	heap.mu.Lock()
	units := len(heap.units)
	heap.mu.Unlock()
	if b, ok := Get(MaxOffHeap); ok {
		t.Fatalf("Get(%d) served %d bytes past an address-space limit", MaxOffHeap, len(b))
	}
	heap.mu.Lock()
	after, listed := len(heap.units), len(heap.free[MaxOffHeap])
	heap.mu.Unlock()
	if after != units || listed != 0 {
		t.Fatalf("a refused mapping was recorded: %d units (was %d), %d on the free list", after, units, listed)
	}
	b, ok := Get(MinOffHeap)
	if !ok {
		t.Fatal("Get of a size that fits refused")
	}
	b[0], b[len(b)-1] = 1, 2
	Put(b)
}
