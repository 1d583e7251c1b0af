package db

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/google/btree"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/hugemem"
	"github.com/streamwal/recovery/walerr"
)

// The store is an ordered in-memory map on github.com/google/btree's generic BTreeG.
//
// Why that library: its Clone is an O(1) copy-on-write snapshot (two new copy-on-write
// contexts, no node copied until one side writes), which is exactly what a transaction needs:
// a writer clones the committed tree and mutates the clone (read-your-writes for free, abort is
// dropping it), and a reader keeps whatever tree was published when it began, untouched by
// later commits, because no node reachable from a published tree is ever written again. It
// stores items by value in its nodes (no per-item interface boxing), has no dependencies, and
// is maintained and used widely (etcd, Kubernetes). github.com/tidwall/btree has the same
// copy-on-write copy, but mixes in locking and more API than we need.
//
// A tree is never mutated once published (DB.pub), kept as the writers' base (DB.w), or
// handed to an iterator; see db.go and tx.go.

// degree of the B-tree: nodes of up to 63 items. Degrees 8, 32 and 64 measured within 10% of
// each other on overwrite-heavy inserts (325 ns for 32); 32 is the library's customary choice.
const degree = 32

// item is one key-value pair. Key and value live in one slice, kv = key ++ value, so a set
// costs one copy into one allocation (or one arena carve).
type item struct {
	kv   []byte
	klen uint32
}

func (it item) key() []byte   { return it.kv[:it.klen:it.klen] }
func (it item) value() []byte { return it.kv[it.klen:] }

// probe is a search key: an item with no value.
func probe(key []byte) item { return item{kv: key, klen: uint32(len(key))} }

// less orders keys by unsigned byte-lexicographic comparison.
func less(a, b item) bool { return bytes.Compare(a.key(), b.key()) < 0 }

type tree = btree.BTreeG[item]

func newTree() *tree { return btree.NewG(degree, less) }

// ownedItem copies key and value into one fresh allocation the store owns (the commit path:
// a commit is one fsync, so one allocation per set is noise there).
func ownedItem(key, value []byte) item {
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	return item{kv: kv, klen: uint32(len(key))}
}

// ---- recovery's applier ----

// slabSize is the arena's unit: keys and values replayed at open are copied into slabs of
// 1 MiB, not one allocation per op (fresh memory is slow to touch on small VMs, and a 256 MiB
// log of small records is millions of ops). The first slabs are smaller (64 KiB, doubling),
// so that opening a small database does not cost a megabyte.
const (
	slabSize  = 1 << 20
	firstSlab = 64 << 10
)

// bigItem: a pair at least this large gets its own allocation (it would waste a slab's tail).
const bigItem = slabSize / 8

// noBytes is the kv of an empty key with an empty value: non-nil, zero capacity.
var noBytes = make([]byte, 0)

// slab is one arena chunk. live counts the bytes of pairs in it that are still in the tree.
type slab struct {
	buf  []byte
	off  int
	live int
}

// arena hands out store-owned memory during Open: the replay's copies of its keys (taken back
// when a key is deleted, so a slab whose live count reaches zero is reused), and the pairs
// finish reads back. Afterwards no pair is ever recycled (snapshots may still see it), and
// slabs are kept alive only by the pairs that point into them.
type arena struct {
	size   int64 // bytes of every slab it holds, live or not
	slabs  []slab
	cur    int32   // slab being carved, -1 before the first
	free   []int32 // empty slabs, not current
	expect int64   // bytes still to come (newArenaFor): slabs are cut to fit them
}

func newArena() *arena { return &arena{cur: -1} }

// newArenaFor is an arena for total bytes known in advance (finish's read-back): its slabs are
// up to bigSlab each, cut to the bytes still expected, so no slab has an unused tail to speak
// of, and they come from hugemem.Alloc, whose huge pages make fresh memory cheap to touch.
func newArenaFor(total int64) *arena { return &arena{cur: -1, expect: total} }

// bigSlab is the largest slab of an arena sized in advance: a slab lives as long as any pair in
// it, so a bigger one could pin more memory after later writes supersede most of its pairs.
const bigSlab = 8 << 20

// alloc returns n bytes of store-owned memory and the slab they came from (-1: own allocation).
func (a *arena) alloc(n int) ([]byte, int32) {
	if n == 0 {
		return noBytes, -1 // tracked nowhere: a zero-byte pair must not count as a slab's
	}
	if n >= bigItem {
		return make([]byte, n), -1
	}
	if a.cur < 0 || a.slabs[a.cur].off+n > len(a.slabs[a.cur].buf) {
		a.next(n)
	}
	s := &a.slabs[a.cur]
	b := s.buf[s.off : s.off+n : s.off+n]
	s.off += n
	s.live += n
	return b, a.cur
}

// next makes a slab with room for n bytes current: the current one again if nothing in it is
// live, else an empty one from the free list, else a new one.
func (a *arena) next(n int) {
	if a.cur >= 0 && a.slabs[a.cur].live == 0 && n <= len(a.slabs[a.cur].buf) {
		a.slabs[a.cur].off = 0
		return
	}
	for i := len(a.free) - 1; i >= 0; i-- {
		if s := a.free[i]; n <= len(a.slabs[s].buf) {
			a.free = append(a.free[:i], a.free[i+1:]...)
			a.retire()
			a.cur = s
			a.slabs[s].off = 0
			return
		}
	}
	size := min(firstSlab<<len(a.slabs), slabSize)
	if a.expect > 0 {
		size = int(min(a.expect, bigSlab))
		a.expect -= int64(size)
	}
	if size < n {
		size = max(n, slabSize)
	}
	a.retire()
	buf := hugemem.Alloc(size)
	a.size += int64(len(buf))
	a.slabs = append(a.slabs, slab{buf: buf})
	a.cur = int32(len(a.slabs) - 1)
}

// retire leaves the current slab: if nothing in it is live, it goes to the free list.
func (a *arena) retire() {
	if a.cur >= 0 && a.slabs[a.cur].live == 0 {
		a.free = append(a.free, a.cur)
	}
}

// release says b, carved from slab i, is dead: nothing will ever read it again.
func (a *arena) release(b []byte, i int32) {
	if i < 0 {
		return
	}
	s := &a.slabs[i]
	s.live -= len(b)
	if s.live == 0 && i != a.cur {
		a.free = append(a.free, i)
	}
}

// Replay at open is a location index, not a copy of the log. The ordered applier keeps, for
// each live key, where its latest value lies in the file (offset, length) and the value's
// CRC; superseded values are never copied anywhere and no memory is touched for them. Only
// when the log has been replayed does finish read the surviving values back, once each, in
// file order through a small window, check each against the CRC taken when its record was
// verified, and build the tree in key order. The per-op work that needs no store (the value
// CRCs) runs in recovery's parallel stage, through a Preparer; the applier does one map
// lookup per op. Open's memory is then the live data plus the index, not the log.

// prepare is the Preparer of a replay: one word per op, the CRC of a set's value (0 for a
// delete), computed on recovery's workers.
var prepare = recovery.PrepareFunc(func(r recovery.Record, dst []uint64) []uint64 {
	it := r.Ops()
	for it.Next() {
		var c uint32
		if it.Kind() == format.OpSet {
			c = format.Checksum(it.Value())
		}
		dst = append(dst, uint64(c))
	}
	return dst
})

// loader is the recovery.Applier that replays a log into the location index.
type loader struct {
	idx   map[string]int32 // key -> slot; the string aliases the slot's copy of the key
	slots []slot
	free  []int32 // unused slots
	keys  *arena  // the keys' copies (recycled when a key is deleted)
	live  int64   // bytes of the live pairs, keys and values
}

// slot is a live key and where its latest value is.
type slot struct {
	key   []byte // in keys
	kslab int32
	vlen  uint32
	voff  int64 // file offset of the value
	vcrc  uint32
}

func newLoader() *loader { return newLoaderFor(0) }

// newLoaderFor sizes the index for a log of size bytes: one key per 4 KiB of log, at most 64Ki
// keys (about 2 MiB of index), so that a store of tens of thousands of keys is not rehashed
// over and over as it fills, and a small or hugely overwritten store costs little.
func newLoaderFor(size int64) *loader {
	hint := int(min(size/(4<<10), 1<<16))
	return &loader{idx: make(map[string]int32, hint), slots: make([]slot, 0, hint), keys: newArena()}
}

// Apply replays one verified record. Its payload aliases a pooled buffer: the index keeps a
// copy of each new key and only the location of values.
func (l *loader) Apply(r recovery.Record) error {
	words := r.Prepared
	it := r.Ops()
	for n := 0; it.Next(); n++ {
		key := it.Key()
		i, had := l.idx[string(key)]
		if it.Kind() == format.OpDelete {
			if had {
				sl := &l.slots[i]
				l.live -= int64(len(sl.key)) + int64(sl.vlen)
				delete(l.idx, string(key)) // before the key's copy can be reused
				l.keys.release(sl.key, sl.kslab)
				*sl = slot{}
				l.free = append(l.free, i)
			}
			continue
		}
		if n >= len(words) {
			return fmt.Errorf("db: replay needs the record's value checksums (recovery.WithPrepare(prepare))")
		}
		if !had {
			i = l.newSlot(key)
			l.live += int64(len(key))
		} else {
			l.live -= int64(l.slots[i].vlen)
		}
		vlen := len(it.Value())
		sl := &l.slots[i]
		sl.voff = r.PayloadOffset() + int64(it.ValueOffset())
		sl.vlen = uint32(vlen)
		sl.vcrc = uint32(words[n])
		l.live += int64(vlen)
	}
	return nil
}

// newSlot gives a new key a slot, a copy and an entry in the index.
func (l *loader) newSlot(key []byte) int32 {
	k, ks := l.keys.alloc(len(key))
	copy(k, key)
	var i int32
	if n := len(l.free); n > 0 {
		i = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		i = int32(len(l.slots))
		l.slots = append(l.slots, slot{})
	}
	l.slots[i] = slot{key: k, kslab: ks}
	l.idx[unsafe.String(unsafe.SliceData(k), len(k))] = i
	return i
}

// readBack fills items[i] with the pair of slot order[i]: its key, and its value read from f
// (through a window, in file order) and checked against the value's CRC.
func (l *loader) readBack(ctx context.Context, f interface {
	ReadAt([]byte, int64) (int, error)
}, size int64, order []int32, items []item) error {
	var total int64 // what the pairs arena will hold: pairs of at least bigItem are allocated alone
	for _, i := range order {
		if n := len(l.slots[i].key) + int(l.slots[i].vlen); n < bigItem {
			total += int64(n)
		}
	}
	pairs := newArenaFor(total)
	var win []byte
	var wstart int64 // file offset of win[0]
	for n, i := range order {
		sl := &l.slots[i]
		kv, _ := pairs.alloc(len(sl.key) + int(sl.vlen)) // never released: the store keeps it
		copy(kv, sl.key)
		v := kv[len(sl.key):]
		switch end := sl.voff + int64(sl.vlen); {
		case len(v) == 0:
		case sl.voff >= wstart && end <= wstart+int64(len(win)):
			copy(v, win[sl.voff-wstart:])
		case len(v) >= readWindow/2:
			if err := walerr.ReadFull(f, v, sl.voff); err != nil {
				return err
			}
		default:
			if err := ctx.Err(); err != nil { // once per window: a cancel stops the read-back
				return walerr.Wrap(walerr.Canceled, sl.voff, err, "open stopped while reading the store back")
			}
			if win == nil {
				win = make([]byte, readWindow)
			}
			win = win[:min(int64(readWindow), size-sl.voff)]
			wstart = sl.voff
			if err := walerr.ReadFull(f, win, wstart); err != nil {
				return err
			}
			copy(v, win)
		}
		if format.Checksum(v) != sl.vcrc {
			return walerr.New(walerr.IO, sl.voff, fmt.Sprintf(
				"a %d-byte value read back at open does not match the checksum taken when its record was verified: the file changed during open", len(v))).
				WithHint("reopen; a cut recovery had already made stays, its bytes in the sidecar")
		}
		items[n] = item{kv: kv, klen: uint32(len(sl.key))}
	}
	return nil
}

// readWindow is how much of the file finish reads at once to collect the values it keeps.
const readWindow = 256 << 10

// finish reads the live values back from f (whose first size bytes hold the replayed log),
// checks each against the CRC taken when it was verified, and returns the store's tree. The
// values are read in file order, by up to par goroutines (recovery's parallelism) each taking a
// contiguous run of them (fresh memory is slow to touch on a small VM, and that is most of the
// cost here).
func (l *loader) finish(ctx context.Context, f interface {
	ReadAt([]byte, int64) (int, error)
}, size int64, par int) (*tree, error) {
	order := make([]int32, 0, len(l.idx))
	for _, i := range l.idx {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int32) int { return cmp.Compare(l.slots[a].voff, l.slots[b].voff) })
	items := make([]item, len(order))
	parts := max(1, min(par, int(l.live>>22))) // a part per 4 MiB at least
	errs := make([]error, parts)
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(order)/parts, (p+1)*len(order)/parts
		wg.Go(func() { errs[p] = l.readBack(ctx, f, size, order[lo:hi], items[lo:hi]) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	l.idx, l.slots, l.free, l.keys = nil, nil, nil, nil
	slices.SortFunc(items, func(a, b item) int { return bytes.Compare(a.key(), b.key()) })
	t := newTree()
	for _, it := range items {
		t.ReplaceOrInsert(it)
	}
	return t, nil
}
