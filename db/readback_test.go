package db

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/streamwal/recovery/format"
)

// A record streamed through the read-back window in pieces: each piece visits the values it
// reaches and at most one after them, never the record's later values (which are made
// unreachable here: their index is out of the table's range, so a visit panics), and the
// values come back whole (a piece that walked every value of the record would make reading
// back a record of many values quadratic in their number).
func TestFillValuesVisitsOnlyTheValuesAPieceReaches(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	for round := range 200 {
		const base = 1000 // the payload's file offset
		var src []byte    // the payload
		var tab []entry
		var items []item
		for range 1 + rng.IntN(60) {
			src = append(src, bytes.Repeat([]byte{'-'}, rng.IntN(3)*rng.IntN(20))...) // a gap: a dead op
			n := rng.IntN(3) * rng.IntN(40)                                           // empty values too
			key := make([]byte, rng.IntN(3)*rng.IntN(20))
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			src = format.AppendSet(src, key, make([]byte, n)) // the op that set it, value zeroed...
			tab = append(tab, entry{voff: base + int64(len(src)-n), vlen: uint32(n)})
			for i := range n {
				src[len(src)-n+i] = byte(rng.Uint32()) // ...then filled
			}
			items = append(items, item{kv: append(slices.Clone(key), make([]byte, n)...), klen: uint32(len(key))})
		}
		src = append(src, bytes.Repeat([]byte{'-'}, rng.IntN(10))...)
		order := make([]int32, len(tab))
		for i := range order {
			order[i] = int32(i)
		}
		from := 0
		for off := 0; off < len(src); {
			b := src[off:min(len(src), off+1+rng.IntN(50))]
			end := int64(base + off + len(b))
			want := from // the values complete once b is copied
			for want < len(tab) && tab[want].voff+int64(tab[want].vlen) <= end {
				want++
			}
			visible := slices.Clone(order[from:])
			for i := want + 1 - from; i < len(visible); i++ {
				visible[i] = int32(len(tab)) // out of range: a visit panics
			}
			done := func() int {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("round %d, piece at %d: visited a value past the first one it leaves incomplete (%v)", round, off, p)
					}
				}()
				done, ok := fillValues(tab, visible, items[from:], int64(base+off), b)
				if !ok {
					t.Fatalf("round %d, piece at %d: the ops before the values do not match", round, off)
				}
				return done
			}()
			if from+done != want {
				t.Fatalf("round %d, piece at %d: %d values complete, want %d", round, off, from+done, want)
			}
			from += done
			off += len(b)
		}
		if from != len(tab) {
			t.Fatalf("round %d: %d of %d values complete at the end", round, from, len(tab))
		}
		for i, e := range tab {
			if got, want := items[i].value(), src[e.voff-base:e.voff-base+int64(e.vlen)]; !bytes.Equal(got, want) {
				t.Fatalf("round %d: value %d is %q, want %q", round, i, got, want)
			}
		}
	}
}

// A record larger than the read-back window that holds many small live values (one big
// transaction), some overwritten or deleted by later records, comes back whole, in one part
// and in several (each part reads the record again for its own values).
func TestFinishLargeRecordOfManyValues(t *testing.T) {
	defer func(b int64) { partBytes = b }(partBytes)
	partBytes = 1
	rng := rand.New(rand.NewPCG(7, 7))
	want := map[string]string{}
	var big []byte
	for i := range 40000 { // about 1.5 MiB: six windows
		k, v := fmt.Sprintf("key%06d", i), fmt.Sprintf("value-%d-%d", i, rng.IntN(1000))
		if i%7 == 0 {
			v = ""
		}
		big = format.AppendOp(big, setOp(k, v))
		want[k] = v
	}
	var later []format.Op
	for range 300 {
		k := fmt.Sprintf("key%06d", rng.IntN(40000))
		if rng.IntN(2) == 0 {
			later = append(later, delOp(k))
			delete(want, k)
		} else {
			later = append(later, setOp(k, "later"))
			want[k] = "later"
		}
	}
	if len(big) <= 4*readWindow {
		t.Fatalf("the record is %d bytes: not streamed in pieces", len(big))
	}
	for _, par := range []int{1, 3} {
		tr, _ := replay(t, par, payloadOf(setOp("first", "1")), big, payloadOf(later...))
		want["first"] = "1"
		if tr.Len() != len(want) {
			t.Fatalf("par %d: %d keys, want %d", par, tr.Len(), len(want))
		}
		tr.Ascend(func(it item) bool {
			if v, ok := want[string(it.key())]; !ok || v != string(it.value()) {
				t.Fatalf("par %d: %q=%q, want %q (present %v)", par, it.key(), it.value(), v, ok)
			}
			return true
		})
	}
}

// merge yields every element of the sorted runs in order (empty runs, one run, many), taking
// about 2*log2(runs) comparisons per element: it is finish's one serial step, and finish has
// as many runs as parts, up to the parallelism. (It scanned every run's head for each
// element: runs-1 comparisons, 63 per element at 64 runs.)
func TestMergeIsInOrderInFewComparisons(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, nruns := range []int{0, 1, 2, 3, 7, 16, 64, 100} {
		runs := make([][]int, nruns)
		var all []int
		for r := range runs {
			n := rng.IntN(3) * rng.IntN(400) // some runs empty
			for range n {
				runs[r] = append(runs[r], rng.IntN(1000))
			}
			slices.Sort(runs[r])
			all = append(all, runs[r]...)
		}
		slices.Sort(all)
		var got []int
		compares := 0
		merge(runs, func(a, b int) bool { compares++; return a < b }, func(v int) { got = append(got, v) })
		if !slices.Equal(got, all) {
			t.Fatalf("%d runs: merged %d elements out of order or missing (want %d)", nruns, len(got), len(all))
		}
		levels := 0
		for 1<<levels < nruns {
			levels++
		}
		if bound := len(all)*2*levels + 2*nruns; compares > bound {
			t.Fatalf("%d runs of %d elements: %d comparisons, more than %d", nruns, len(all), compares, bound)
		}
	}
}
