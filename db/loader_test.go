package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testdepth"
	"github.com/streamwal/recovery/internal/testlog"
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

// record is p as recovery hands it to l, prepared, at file offset off.
func record(l *loader, p []byte, off int64) recovery.Record {
	n, err := format.CountOps(p)
	if err != nil {
		panic(err)
	}
	r := recovery.NewRecord(off, format.V1HeaderSize, p, n, nil)
	r.Prepared = l.prepare(r, nil)
	return r
}

// replay runs payloads, as a v1 log, through recovery into a loader at parallelism par, with
// an Applier that wipes each payload once the loader has seen it (as a pooled buffer may be),
// and returns the store finish builds from the log.
func replay(t *testing.T, par int, payloads ...[]byte) (*tree, []byte) {
	t.Helper()
	log := testlog.Build(format.LayoutV1, payloads...)
	l := newLoader()
	_, err := recovery.Recover(context.Background(), bytes.NewReader(log.Bytes), recovery.ApplyFunc(func(r recovery.Record) error {
		err := l.Apply(r)
		clear(r.Payload)
		return err
	}), recovery.WithParallelism(par), recovery.WithReadSize(4<<10), recovery.WithPrepare(recovery.PrepareFunc(l.prepare)), recovery.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	tr, err := l.finish(context.Background(), bytes.NewReader(log.Bytes), int64(len(log.Bytes)), par)
	if err != nil {
		t.Fatal(err)
	}
	return tr, log.Bytes
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

// The loader copies the keys it keeps and reads values back from the file: the payload
// buffer may be reused (poisoned, in race builds of recovery) as soon as Apply returns.
func TestLoaderCopiesPayload(t *testing.T) {
	for _, par := range []int{1, 4} {
		tr, _ := replay(t, par, payloadOf(setOp("b", "2"), setOp("a", "1"), setOp("", ""), setOp("c", "x"), delOp("c"), delOp("zz")))
		if got, want := dump(tr), `""="" "a"="1" "b"="2" `; got != want {
			t.Fatalf("par %d: state %s, want %s", par, got, want)
		}
	}
}

// The store replay builds equals a plain map replaying the same ops, at every parallelism: 60
// random logs (200 with WALREC_DEEP=1).
func TestLoaderAgreesWithAMap(t *testing.T) {
	for seed := range uint64(testdepth.Pick(60, 200)) {
		rng := rand.New(rand.NewPCG(seed, 1))
		nkeys := 1 + rng.IntN(60)
		var recs [][]byte
		want := map[string]string{}
		for range 1 + rng.IntN(300) {
			var ops []format.Op
			for range 1 + rng.IntN(6) {
				k := fmt.Sprintf("k%d", rng.IntN(nkeys))
				switch rng.IntN(7) {
				case 0:
					k = "" // the empty key
				case 1: // keys around the index's inline limit, and longer ones held apart
					k = fmt.Sprintf("%0*d", inlineKey-1+rng.IntN(3)+rng.IntN(2)*rng.IntN(60), rng.IntN(nkeys))
				}
				if rng.IntN(4) == 0 {
					ops = append(ops, delOp(k))
					delete(want, k)
					continue
				}
				v := string(bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(3)*rng.IntN(200)))
				if seed%10 == 0 && rng.IntN(100) == 0 {
					v = string(bytes.Repeat([]byte{byte(rng.Uint32())}, readWindow+rng.IntN(1000))) // larger than the window
				}
				ops = append(ops, setOp(k, v))
				want[k] = v
			}
			recs = append(recs, payloadOf(ops...))
		}
		var expect bytes.Buffer
		for _, k := range slices.Sorted(maps.Keys(want)) {
			fmt.Fprintf(&expect, "%q=%s ", k, show([]byte(want[k])))
		}
		for _, par := range []int{1, 3} {
			tr, _ := replay(t, par, recs...)
			if got := dump(tr); got != expect.String() {
				t.Fatalf("seed %d, par %d: state\n%s\nwant\n%s", seed, par, got, expect.String())
			}
			if tr.Len() != len(want) {
				t.Fatalf("seed %d, par %d: Len %d, want %d", seed, par, tr.Len(), len(want))
			}
		}
	}
}

// In steady state (keys overwritten, store not growing) the applier allocates nothing per
// record and holds no value bytes at all: only where the latest value of each key is.
func TestLoaderSteadyStateAllocatesNothing(t *testing.T) {
	l := newLoader()
	recs := make([]recovery.Record, 64)
	for i := range recs {
		var ops []format.Op
		for j := range 8 {
			ops = append(ops, setOp(fmt.Sprintf("key-%04d", (i*8+j)%200), string(bytes.Repeat([]byte{byte(i)}, 100+i))))
		}
		ops = append(ops, delOp(fmt.Sprintf("key-%04d", i%200)))
		recs[i] = record(l, payloadOf(ops...), int64(8+i*4096))
	}
	apply := func() {
		for _, r := range recs {
			if err := l.Apply(r); err != nil {
				t.Fatal(err)
			}
		}
	}
	for range 500 { // warm up: fill the key space (~75 MB of values went by)
		apply()
	}
	if allocs := testing.AllocsPerRun(50, apply); allocs != 0 {
		t.Fatalf("%v allocations per %d records in steady state, want 0", allocs, len(recs))
	}
	if len(l.ix.tab) > 512 {
		t.Fatalf("the index has %d entries for 200 keys", len(l.ix.tab))
	}
}

func TestLoaderZeroLengthPairs(t *testing.T) {
	var recs [][]byte
	for range 2000 {
		recs = append(recs, payloadOf(setOp("", ""), setOp("k", string(make([]byte, 500))), delOp(""), setOp("", "")))
	}
	tr, _ := replay(t, 2, recs...)
	if got := dump(tr); got != fmt.Sprintf(`""="" "k"=%s `, show(make([]byte, 500))) {
		t.Fatalf("state %s", got)
	}
}

// A value whose bytes in the file changed between replay and finish (the file was modified
// during open) is refused with an I/O error rather than served.
func TestFinishRefusesAChangedValue(t *testing.T) {
	p := payloadOf(setOp("a", "first"), setOp("b", "kept value"))
	log := testlog.Build(format.LayoutV1, p, payloadOf(setOp("a", "second")))
	l := newLoader()
	if _, err := recovery.Recover(context.Background(), bytes.NewReader(log.Bytes), l, recovery.WithPrepare(recovery.PrepareFunc(l.prepare)), recovery.ReadOnly()); err != nil {
		t.Fatal(err)
	}
	changed := bytes.Clone(log.Bytes)
	i := bytes.Index(changed, []byte("kept value"))
	changed[i] ^= 1
	if _, err := l.finish(context.Background(), bytes.NewReader(changed), int64(len(changed)), 2); !errors.Is(err, recovery.ErrIO) {
		t.Fatalf("want an I/O error, got %v", err)
	}
}

// Values are read back from their records, which are checked whole again: a change anywhere
// in a record that holds a live value (in a dead op of it too) is refused with an I/O error,
// for a record that fits the read-back window and for one streamed through it; a change in a
// record with no live value left does not matter; and a large record's values come back whole
// across the window's pieces.
func TestFinishChecksRecordsAgain(t *testing.T) {
	big := func(c byte, n int) string { return string(bytes.Repeat([]byte{c}, n)) }
	for _, size := range []int{100, readWindow/2 + 7, readWindow + 12345} {
		p1 := payloadOf(setOp("a", big('1', size)), setOp("dead", "first"), setOp("b", big('2', size)), setOp("c", big('3', 10)))
		p2 := payloadOf(setOp("gone", "soon overwritten"))
		p3 := payloadOf(setOp("gone", "x"), setOp("dead", "second"))
		log := testlog.Build(format.LayoutV1, p1, p2, p3)
		replayed := func() *loader {
			l := newLoader()
			if _, err := recovery.Recover(context.Background(), bytes.NewReader(log.Bytes), l, recovery.WithPrepare(recovery.PrepareFunc(l.prepare)), recovery.ReadOnly()); err != nil {
				t.Fatal(err)
			}
			return l
		}
		tr, err := replayed().finish(context.Background(), bytes.NewReader(log.Bytes), int64(len(log.Bytes)), 2)
		if err != nil {
			t.Fatalf("value size %d: %v", size, err)
		}
		want := fmt.Sprintf(`"a"=%s "b"=%s "c"="3333333333" "dead"="second" "gone"="x" `, show([]byte(big('1', size))), show([]byte(big('2', size))))
		if got := dump(tr); got != want {
			t.Fatalf("value size %d: state %s, want %s", size, got, want)
		}
		for _, c := range []struct {
			what   string
			at     string // the bytes to flip one bit of
			reject bool
		}{{"a live value", "3333", true}, {"a dead op of a live record", "first", true}, {"a record with no live value", "soon overwritten", false}} {
			changed := bytes.Clone(log.Bytes)
			changed[bytes.Index(changed, []byte(c.at))] ^= 1
			_, err := replayed().finish(context.Background(), bytes.NewReader(changed), int64(len(changed)), 2)
			if c.reject && !errors.Is(err, recovery.ErrIO) || !c.reject && err != nil {
				t.Fatalf("value size %d, a change in %s: %v (want refused: %v)", size, c.what, err, c.reject)
			}
		}
	}
}

// A record rewritten after replay with another of the same length and a valid checksum (a
// writer that cut a failed append and wrote another transaction in its place while a
// read-only open was between replay and read-back) is refused at read-back, IO_ERROR, when its
// ops no longer put the live values where replay found them under the same keys: keys
// renamed, values moved. Values small, half a window and larger than the window (streamed).
func TestFinishRefusesARewrittenRecord(t *testing.T) {
	big := func(c byte, n int) string { return string(bytes.Repeat([]byte{c}, n)) }
	for _, size := range []int{100, readWindow/2 + 7, readWindow + 12345} {
		p1 := payloadOf(setOp("a", big('1', size)), setOp("dead", "first"), setOp("b", big('2', size)), setOp("c", big('3', 10)))
		p2 := payloadOf(setOp("dead", "second"))
		orig := testlog.Build(format.LayoutV1, p1, p2).Bytes
		for _, c := range []struct {
			what string
			p1   []byte
		}{
			{"a key renamed", payloadOf(setOp("a", big('1', size)), setOp("dead", "first"), setOp("B", big('2', size)), setOp("c", big('3', 10)))},
			{"the last key renamed", payloadOf(setOp("a", big('1', size)), setOp("dead", "first"), setOp("b", big('2', size)), setOp("C", big('3', 10)))},
			{"a value moved by a dead op's", payloadOf(setOp("a", big('1', size)), setOp("dead", "firs"), setOp("b", big('2', size+1)), setOp("c", big('3', 10)))},
			{"other ops entirely", payloadOf(setOp("zz", big('9', 2*size+len("dead")+len("first")+len("c")+10+3*9)))},
		} {
			if len(c.p1) != len(p1) {
				t.Fatalf("%s: the rewritten payload is %d bytes, want %d", c.what, len(c.p1), len(p1))
			}
			rewritten := testlog.Build(format.LayoutV1, c.p1, p2).Bytes
			l := newLoader()
			if _, err := recovery.Recover(context.Background(), bytes.NewReader(orig), l, recovery.WithPrepare(recovery.PrepareFunc(l.prepare)), recovery.ReadOnly()); err != nil {
				t.Fatal(err)
			}
			_, err := l.finish(context.Background(), bytes.NewReader(rewritten), int64(len(rewritten)), 2)
			if !errors.Is(err, recovery.ErrIO) || !strings.Contains(err.Error(), "file changed during open") {
				t.Fatalf("value size %d, %s: %v, want IO_ERROR (the file changed)", size, c.what, err)
			}
		}
	}
}

// finish in several parts (each a stretch of the file, cut at the first stripe's quantiles)
// builds the same store as in one, whatever the parts get: values clustered at one end of the
// file, parts with nothing to read, more parts than keys, records cut between two parts. 12
// random logs (40 with WALREC_DEEP=1).
func TestFinishInPartsAgreesWithOnePart(t *testing.T) {
	defer func(b int64) { partBytes = b }(partBytes)
	partBytes = 1
	rng := rand.New(rand.NewPCG(11, 11))
	for seed := range testdepth.Pick(12, 40) {
		var recs [][]byte
		nkeys := 1 + rng.IntN([]int{3, 50, 2000}[seed%3])
		for range 1 + rng.IntN(400) {
			var ops []format.Op
			for range 1 + rng.IntN(5) {
				k := fmt.Sprintf("key%d", rng.IntN(nkeys))
				if rng.IntN(5) == 0 {
					ops = append(ops, delOp(k))
				} else {
					ops = append(ops, setOp(k, string(bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(300)))))
				}
			}
			recs = append(recs, payloadOf(ops...))
		}
		one, _ := replay(t, 1, recs...)
		for _, par := range []int{2, 3, 5, 16} {
			got, _ := replay(t, par, recs...)
			if dump(got) != dump(one) || got.Len() != one.Len() {
				t.Fatalf("seed %d, %d parts: the store differs from one part's", seed, par)
			}
		}
	}
}

// The arena hands out capped, disjoint slices that keep their bytes, and its slabs add up to
// about what was asked for.
func TestArenaCarvesDisjointSlices(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	sizes := make([]int, 20000)
	var total int64
	for i := range sizes {
		sizes[i] = rng.IntN(3000) * rng.IntN(2)
		if rng.IntN(500) == 0 {
			sizes[i] = bigItem + rng.IntN(1000) // allocated alone, not from the expected bytes
		} else {
			total += int64(sizes[i])
		}
	}
	a := newArenaFor(total)
	got := make([][]byte, len(sizes))
	for i, n := range sizes {
		b := a.alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		for j := range b {
			b[j] = byte(i)
		}
		got[i] = b
	}
	for i, b := range got {
		for _, c := range b {
			if c != byte(i) {
				t.Fatalf("slice %d was overwritten by a later one", i)
			}
		}
	}
	if a.size < total || a.size > total+total/50 {
		t.Fatalf("slabs of %d bytes for %d asked", a.size, total)
	}
}
