package db

import (
	"cmp"
	"context"
	"io"
	"math"
	"slices"
	"sync"

	"github.com/streamwal/recovery/internal/panics"
)

// readGap is the largest stretch of the file between two records to read back that finish
// reads through rather than skip with a read of its own (a read costs a few microseconds; so
// does copying 16 KiB).
const readGap = 16 << 10

// partBytes is the live data that makes finish worth another part (a var for the tests).
var partBytes = int64(4 << 20)

// readWindow is how much of the file finish reads at once to collect the values it keeps.
const readWindow = 256 << 10

// finish reads the live values back from f (whose first size bytes hold the replayed log),
// checking every record that holds one against its header again, and returns the store's
// tree. It runs in up to par parts (recovery's parallelism), each a contiguous stretch of the
// file: the part reads its values back in file order and sorts its pairs by key, and the
// sorted parts are merged into the tree.
func (l *loader) finish(ctx context.Context, f io.ReaderAt, size int64, par int) (*tree, error) {
	parts := max(1, min(par, int(l.live/partBytes)))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stripes := l.stripesByOffset(parts, cancel)
	sorted, err := l.readParts(ctx, cancel, f, size, stripes, cutsOf(stripes[0], parts))
	if err != nil {
		return nil, err
	}
	l.ix = nil
	t := newTree()
	merge(sorted, less, t.load) // in key order (a key is in one part only: the index holds it once)
	return t, nil
}

// at is a live entry of the index by the offset of its value: i is its slot.
type at struct {
	voff int64
	i    int32
}

func byOffset(a at, v int64) int { return cmp.Compare(a.voff, v) }

// stripesByOffset finds the live entries in file order, in parallel: part p sorts the p-th
// stripe of the table by offset, as (offset, slot) pairs side by side (a comparison through
// the table would be two cache misses).
func (l *loader) stripesByOffset(parts int, cancel func()) [][]at {
	stripes := make([][]at, parts)
	runParts(parts, cancel, func(p int) {
		lo, hi := p*len(l.ix.tab)/parts, (p+1)*len(l.ix.tab)/parts
		s := make([]at, 0, l.ix.n/parts+64)
		for i := lo; i < hi; i++ {
			if e := &l.ix.tab[i]; e.tag >= 2 {
				s = append(s, at{e.voff, int32(i)})
			}
		}
		slices.SortFunc(s, func(a, b at) int { return cmp.Compare(a.voff, b.voff) })
		stripes[p] = s
	})
	return stripes
}

// cutsOf splits the file into parts stretches of about equal counts of live entries: part p
// is cuts[p] <= offset < cuts[p+1]. A stripe of a hash table is a random sample of its keys,
// so the quantiles of one sorted stripe (sample) are those of all.
func cutsOf(sample []at, parts int) []int64 {
	cuts := make([]int64, parts+1)
	cuts[0], cuts[parts] = math.MinInt64, math.MaxInt64
	for p := 1; p < parts; p++ {
		cuts[p] = cuts[p-1]
		if len(sample) > 0 {
			cuts[p] = max(cuts[p-1], sample[p*len(sample)/parts].voff)
		}
	}
	return cuts
}

// readParts reads the values back, part p the entries of every stripe in its stretch of the
// file (merged into file order), and returns each part's pairs. The first part's error is
// returned: the others may only have seen the cancel it made.
func (l *loader) readParts(ctx context.Context, cancel func(), f io.ReaderAt, size int64, stripes [][]at, cuts []int64) ([][]item, error) {
	parts := len(cuts) - 1
	sorted := make([][]item, parts)
	var failed error
	var failedMu sync.Mutex
	runParts(parts, cancel, func(p int) {
		mine, n := make([][]at, len(stripes)), 0 // each stripe's entries in this part's stretch
		for r, s := range stripes {
			lo, _ := slices.BinarySearchFunc(s, cuts[p], byOffset)
			hi, _ := slices.BinarySearchFunc(s, cuts[p+1], byOffset)
			mine[r], n = s[lo:hi], n+hi-lo
		}
		order := make([]int32, 0, n)
		merge(mine, func(a, b at) bool { return a.voff < b.voff }, func(a at) { order = append(order, a.i) })
		sorted[p] = make([]item, len(order))
		if err := l.readBack(ctx, f, size, order, sorted[p]); err != nil {
			failedMu.Lock()
			if failed == nil {
				failed = err
			}
			failedMu.Unlock()
			cancel() // the other parts stop at their next window
		}
	})
	return sorted, failed
}

// runParts runs fn(0) to fn(n-1) on goroutines of their own and returns once all have
// returned. A panic or runtime.Goexit in one (the caller's ReadAt runs there) calls cancel, so
// that the others stop early, and is raised again on runParts' caller once every part has
// stopped, as recovery does with its workers' (a panic as a *panics.Recovered, with the stack
// of the part where it happened): the caller's deferred cleanup runs (Open closes the file and
// releases its lock) instead of the process dying, and a part that never finished is never
// taken for one that found nothing.
func runParts(n int, cancel func(), fn func(p int)) {
	var wg sync.WaitGroup
	var c panics.Catcher
	for p := range n {
		wg.Go(func() { c.Try(func() { fn(p) }, cancel) })
	}
	wg.Wait()
	c.Repanic()
}

// merge calls fn on every element of the sorted runs, in order. The runs' heads are kept in a
// binary heap: finish merges as many runs as it has parts, so taking each element costs about
// 2*log2(parts) comparisons, not parts-1 (the merge into the tree is finish's one serial step:
// 2.4 million 16-byte keys in 64 runs: 2.0 s with a scan of every run's head, 0.76 s with the
// heap; TestMergeIsInOrderInFewComparisons counts the comparisons).
func merge[T any](runs [][]T, less func(a, b T) bool, fn func(T)) {
	h := make([][]T, 0, len(runs)) // the runs with elements left; h[0][0] is the least head
	for _, r := range runs {
		if len(r) > 0 {
			h = append(h, r)
		}
	}
	down := func(i int) {
		for {
			c := 2*i + 1
			if c >= len(h) {
				return
			}
			if c+1 < len(h) && less(h[c+1][0], h[c][0]) {
				c++
			}
			if !less(h[c][0], h[i][0]) {
				return
			}
			h[i], h[c] = h[c], h[i]
			i = c
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for len(h) > 0 {
		fn(h[0][0])
		if h[0] = h[0][1:]; len(h[0]) == 0 {
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		down(0)
	}
}
