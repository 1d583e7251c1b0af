package db

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
)

func payloadOf(ops ...format.Op) []byte {
	var p []byte
	for _, op := range ops {
		p = format.AppendOp(p, op)
	}
	return p
}

func setOp(k, v string) format.Op {
	return format.Op{Kind: format.OpSet, Key: []byte(k), Value: []byte(v)}
}
func delOp(k string) format.Op { return format.Op{Kind: format.OpDelete, Key: []byte(k)} }

func record(p []byte) recovery.Record {
	n, err := format.CountOps(p)
	if err != nil {
		panic(err)
	}
	return recovery.Record{Payload: p, NumOps: n}
}

func dump(t *tree) string {
	var b bytes.Buffer
	t.Ascend(func(it item) bool {
		fmt.Fprintf(&b, "%q=%s ", it.key(), show(it.value()))
		return true
	})
	return b.String()
}

// show prints a value, or its length and checksum when it is long.
func show(v []byte) string {
	if len(v) > 600 {
		return fmt.Sprintf("<%d bytes, crc %08x>", len(v), crc32.ChecksumIEEE(v))
	}
	return fmt.Sprintf("%q", v)
}

// modes runs fn with the loader forced into each replay mode, and with the default.
func modes(t *testing.T, fn func(t *testing.T, indexAfter int64)) {
	for _, m := range []struct {
		name  string
		after int64
	}{{"tree", -1}, {"index", 0}, {"default", defaultIndexAfter}} {
		t.Run(m.name, func(t *testing.T) { fn(t, m.after) })
	}
}

// The applier copies what it keeps: the payload buffer may be reused (poisoned, in race
// builds of recovery) as soon as Apply returns.
func TestLoaderCopiesPayload(t *testing.T) {
	modes(t, func(t *testing.T, after int64) {
		l := newLoader(after)
		p := payloadOf(setOp("b", "2"), setOp("a", "1"), setOp("", ""), setOp("c", "x"), delOp("c"), delOp("zz"))
		if err := l.Apply(record(p)); err != nil {
			t.Fatal(err)
		}
		clear(p)
		if got, want := dump(l.finish()), `""="" "a"="1" "b"="2" `; got != want {
			t.Fatalf("state %s, want %s", got, want)
		}
	})
}

// Both replay modes, and a switch from one to the other at any point, build the same store
// as a plain map replaying the same ops.
func TestLoaderModesAgree(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 1))
		nkeys := 1 + rng.IntN(60)
		var recs [][]byte
		want := map[string]string{}
		for range rng.IntN(300) {
			var ops []format.Op
			for range 1 + rng.IntN(6) {
				k := fmt.Sprintf("k%d", rng.IntN(nkeys))
				if rng.IntN(7) == 0 {
					k = "" // the empty key
				}
				if rng.IntN(4) == 0 {
					ops = append(ops, delOp(k))
					delete(want, k)
					continue
				}
				v := string(bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(3)*rng.IntN(200)))
				if seed%10 == 0 && rng.IntN(100) == 0 {
					v = string(make([]byte, bigItem+rng.IntN(1000))) // its own allocation
				}
				ops = append(ops, setOp(k, v))
				want[k] = v
			}
			recs = append(recs, payloadOf(ops...))
		}
		var expect bytes.Buffer
		keys := slices.Sorted(maps.Keys(want))
		for _, k := range keys {
			fmt.Fprintf(&expect, "%q=%s ", k, show([]byte(want[k])))
		}
		for _, after := range []int64{-1, 0, 1, int64(rng.IntN(600)), defaultIndexAfter} {
			l := newLoader(after)
			for _, p := range recs {
				buf := bytes.Clone(p)
				if err := l.Apply(record(buf)); err != nil {
					t.Fatal(err)
				}
				clear(buf) // what a pooled buffer may do once Apply returns
			}
			tr := l.finish()
			if got := dump(tr); got != expect.String() {
				t.Fatalf("seed %d, index after %d: state\n%s\nwant\n%s", seed, after, got, expect.String())
			}
			if tr.Len() != len(want) {
				t.Fatalf("seed %d, index after %d: Len %d, want %d", seed, after, tr.Len(), len(want))
			}
		}
	}
}

// In steady state (keys overwritten, store not growing) the applier allocates nothing per
// record, in either mode: pairs are carved from recycled arena slabs; the tree replaces in
// place, the index updates a slot.
func TestLoaderSteadyStateAllocatesNothing(t *testing.T) {
	modes(t, func(t *testing.T, after int64) {
		l := newLoader(after)
		recs := make([]recovery.Record, 64)
		for i := range recs {
			var ops []format.Op
			for j := range 8 {
				ops = append(ops, setOp(fmt.Sprintf("key-%04d", (i*8+j)%200), string(bytes.Repeat([]byte{byte(i)}, 100+i))))
			}
			ops = append(ops, delOp(fmt.Sprintf("key-%04d", i%200)))
			recs[i] = record(payloadOf(ops...))
		}
		apply := func() {
			for _, r := range recs {
				if err := l.Apply(r); err != nil {
					t.Fatal(err)
				}
			}
		}
		for range 500 { // warm up: fill the key space, cycle through the slabs (~75 MB of pairs)
			apply()
		}
		if (l.t == nil) != (after >= 0) {
			t.Fatalf("index after %d: the loader is in the wrong mode", after)
		}
		if allocs := testing.AllocsPerRun(50, apply); allocs != 0 {
			t.Fatalf("%v allocations per %d records in steady state, want 0", allocs, len(recs))
		}
		// ~500*64 records of ~2 KiB went through; the slabs in use stay a handful.
		if n := len(l.pairs.slabs); n > 6 {
			t.Fatalf("%d slabs for a store of 200 small pairs: dead pairs are not recycled", n)
		}
	})
}

// When a few survivors would pin many slabs, replay compacts them into fresh memory as it
// goes: the slabs never hold much more than twice the live pairs (plus slack), whatever the
// length of the log, and every survivor keeps its value.
func TestLoaderCompactsPinnedSlabs(t *testing.T) {
	modes(t, func(t *testing.T, after int64) {
		l := newLoader(after)
		val := bytes.Repeat([]byte{'v'}, 1000)
		compactions, last := 0, l.pairs
		for i := range 20000 { // ~20 MiB of pairs; every 1000th survives
			k := fmt.Sprintf("k%06d", i)
			l.Apply(record(payloadOf(format.Op{Kind: format.OpSet, Key: []byte(k), Value: val})))
			if i%1000 != 0 {
				l.Apply(record(payloadOf(delOp(k))))
			}
			if l.pairs != last {
				compactions, last = compactions+1, l.pairs
			}
			if limit := 2*l.live + compactSlack + slabSize; l.pairs.size > limit {
				t.Fatalf("after %d pairs the slabs hold %d bytes for %d live: over %d", i+1, l.pairs.size, l.live, limit)
			}
		}
		if compactions == 0 {
			t.Fatal("20 MiB of mostly dead pairs never triggered a compaction")
		}
		tr := l.finish()
		if tr.Len() != 20 {
			t.Fatalf("%d pairs, want 20", tr.Len())
		}
		tr.Ascend(func(it item) bool {
			if !bytes.Equal(it.value(), val) {
				t.Fatalf("value of %q changed", it.key())
			}
			return true
		})
	})
}

func TestLoaderZeroLengthPairs(t *testing.T) {
	modes(t, func(t *testing.T, after int64) {
		l := newLoader(after)
		for range 10000 {
			l.Apply(record(payloadOf(setOp("", ""), setOp("k", string(make([]byte, 500))), delOp(""), setOp("", ""))))
		}
		if got := dump(l.finish()); got != fmt.Sprintf(`""="" "k"=%s `, show(make([]byte, 500))) {
			t.Fatalf("state %s", got)
		}
	})
}

// A randomized check of the arena's bookkeeping: live pairs are never overwritten, and the
// free list holds exactly the empty slabs that are not current, each once.
func TestArenaNeverReusesLiveBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	a := newArena()
	pattern := make([]byte, 150000+256)
	for i := range pattern {
		pattern[i] = byte(i * 7)
	}
	type held struct {
		it  item
		pat []byte // what its bytes must still be
	}
	var live []held
	for step := range 200000 {
		if len(live) > 0 && rng.IntN(2) == 0 {
			i := rng.IntN(len(live))
			h := live[i]
			if !bytes.Equal(h.it.kv, h.pat) {
				t.Fatalf("step %d: live bytes overwritten", step)
			}
			a.release(h.it.kv, h.it.slab)
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		} else {
			n := rng.IntN(3000)
			if rng.IntN(50) == 0 {
				n = 100000 + rng.IntN(50000)
			}
			kv, s := a.alloc(n)
			pat := pattern[step%256 : step%256+n]
			copy(kv, pat)
			live = append(live, held{item{kv: kv, slab: s}, pat})
		}
		if step%1000 == 0 {
			want := map[int32]bool{}
			for i := range a.slabs {
				if a.slabs[i].live == 0 && int32(i) != a.cur {
					want[int32(i)] = true
				}
			}
			got := map[int32]bool{}
			for _, s := range a.free {
				if got[s] {
					t.Fatalf("step %d: slab %d on the free list twice", step, s)
				}
				got[s] = true
			}
			if !maps.Equal(got, want) {
				t.Fatalf("step %d: free list %v, want %v", step, got, want)
			}
		}
	}
}
