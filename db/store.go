package db

import (
	"bytes"
	"slices"
	"unsafe"

	"github.com/google/btree"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
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
// costs one copy into one allocation (or one arena carve). slab is the arena slab holding kv
// during recovery, or -1 when kv is its own allocation.
type item struct {
	kv   []byte
	klen uint32
	slab int32
}

func (it item) key() []byte   { return it.kv[:it.klen:it.klen] }
func (it item) value() []byte { return it.kv[it.klen:] }

// probe is a search key: an item with no value.
func probe(key []byte) item { return item{kv: key, klen: uint32(len(key)), slab: -1} }

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
	return item{kv: kv, klen: uint32(len(key)), slab: -1}
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

// arena hands out store-owned memory to the recovery applier, and takes it back: a pair
// that is overwritten or deleted during replay is dead (no transaction, no reader, nothing
// but the replay's own tree ever saw it), so a slab whose live count reaches zero is reused.
// In an overwrite-heavy log the replay therefore cycles through a few slabs that stay warm in
// cache instead of touching the whole log's worth of fresh memory. The arena exists only
// during Open: afterwards no pair is ever recycled (snapshots may still see it), and slabs
// are kept alive only by the pairs that point into them.
type arena struct {
	spare *[][]byte // slabs of an arena compacted away, reused before making new ones; may be nil
	size  int64     // bytes of every slab it holds, live or not
	slabs []slab
	cur   int32   // slab being carved, -1 before the first
	free  []int32 // empty slabs, not current
}

func newArena() *arena { return &arena{cur: -1} }

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
	if size < n {
		size = slabSize
	}
	a.retire()
	var buf []byte
	for a.spare != nil && len(*a.spare) > 0 && buf == nil { // fresh memory is slow to touch
		sp := *a.spare
		if b := sp[len(sp)-1]; len(b) >= size {
			buf = b
		}
		*a.spare = sp[:len(sp)-1]
	}
	if buf == nil {
		buf = make([]byte, size)
	}
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

// retained is the memory the slabs still in use hold.
func (a *arena) retained() int64 {
	var n int64
	for i := range a.slabs {
		if a.slabs[i].live > 0 {
			n += int64(len(a.slabs[i].buf))
		}
	}
	return n
}

// loader is the recovery.Applier that replays a log into the store. It has two modes.
//
// It starts by putting pairs straight into the B-tree (tree mode). That is the right thing
// while most ops add keys, but a log usually overwrites the same keys again and again, and a
// B-tree overwrite is a dozen key comparisons, each a pointer chase into the pair memory.
// Once the log has shown itself overwrite-heavy (at least indexAfter ops, 4096 by default,
// and at least four ops per live key), the loader moves the keys into a hash index (map
// mode): the latest pair of each key sits in a slot found through a map, an overwrite costs
// one lookup and one arena carve, and finish sorts the survivors once and builds the tree in
// key order (BenchmarkOpen256MiB: about 2.5 times faster than tree mode). On a log whose
// keys are all distinct it never switches: hashing and then sorting every key is slower than
// inserting it (measured 2.6 times slower), and holds more memory. Either way the steady
// state (overwrites) allocates nothing: pairs are carved from recycled arena slabs.
//
// In map mode the map's keys alias a copy of each key kept for the map alone (anchors),
// because the pair holding a key dies when the key is overwritten.
type loader struct {
	live       int64 // bytes of the live pairs
	ops        int64 // ops replayed
	indexAfter int64 // the fewest ops before map mode; < 0: never
	pairs      *arena
	spare      [][]byte // slabs freed by the last compaction, for the next arena

	t *tree // tree mode; nil in map mode

	idx     map[string]int32 // map mode: key -> slot; the string aliases the slot's anchor
	slots   []slot
	free    []int32 // unused slots
	anchors *arena
}

type slot struct {
	it     item   // the key's latest pair (it.slab: its slab in pairs)
	anchor []byte // the key, in anchors: what the map's key aliases
	aslab  int32
}

// defaultIndexAfter is the default for WithReplayIndexAfter.
const defaultIndexAfter = 4096

func newLoader(indexAfter int64) *loader {
	return &loader{t: newTree(), pairs: newArena(), indexAfter: indexAfter}
}

// Apply replays one verified record. Its payload aliases a pooled buffer: every byte the
// store keeps is copied.
func (l *loader) Apply(r recovery.Record) error {
	if l.t != nil && l.indexAfter >= 0 && l.ops >= l.indexAfter && l.ops >= 4*int64(l.t.Len()) {
		l.toMap()
	}
	l.ops += int64(r.NumOps)
	if l.t != nil {
		l.applyTree(r)
	} else {
		l.applyMap(r)
	}
	if l.pairs.size > 2*l.live+compactSlack {
		l.compact()
	}
	return nil
}

// compactSlack is how much slab memory beyond twice the live bytes replay tolerates before it
// compacts.
const compactSlack = 4 * slabSize

// compact copies every live pair into a fresh arena and drops the old one. Slabs are reused
// only once everything in them is dead, so a log that overwrites random keys leaves a few
// survivors in every slab and, left alone, would hold slab memory in proportion to the log
// rather than to the store. Compacting whenever the slabs exceed twice the live bytes (plus
// slack) keeps replay's memory within about three times the store, and costs O(1) amortized
// per byte replayed: each compaction copies L live bytes and happens only after more than L
// bytes were carved since the last one.
func (l *loader) compact() {
	na := newArena()
	na.spare = &l.spare
	move := func(it item) item {
		if it.slab < 0 {
			return it // its own allocation (large or empty): nothing to reclaim
		}
		kv, s := na.alloc(len(it.kv))
		copy(kv, it.kv)
		return item{kv: kv, klen: it.klen, slab: s}
	}
	if l.t != nil {
		nt := newTree()
		l.t.Ascend(func(it item) bool {
			nt.ReplaceOrInsert(move(it))
			return true
		})
		l.t = nt
	} else {
		for i := range l.slots {
			if sl := &l.slots[i]; sl.it.kv != nil {
				sl.it = move(sl.it)
			}
		}
	}
	for i := range l.pairs.slabs { // every pair in them is dead now: reuse them next time
		l.spare = append(l.spare, l.pairs.slabs[i].buf)
	}
	l.pairs = na
}

func (l *loader) applyTree(r recovery.Record) {
	for it := r.Ops(); it.Next(); {
		op := it.Op()
		var old item
		var had bool
		if op.Kind == format.OpSet {
			old, had = l.t.ReplaceOrInsert(l.carve(op.Key, op.Value))
		} else {
			old, had = l.t.Delete(probe(op.Key))
		}
		if had {
			l.live -= int64(len(old.kv))
			l.pairs.release(old.kv, old.slab)
		}
	}
}

// carve copies a pair into the arena.
func (l *loader) carve(key, value []byte) item {
	n := len(key) + len(value)
	kv, s := l.pairs.alloc(n)
	copy(kv, key)
	copy(kv[len(key):], value)
	l.live += int64(n)
	return item{kv: kv, klen: uint32(len(key)), slab: s}
}

// toMap moves the tree's pairs into the hash index.
func (l *loader) toMap() {
	l.idx = make(map[string]int32, 2*l.t.Len())
	l.slots = make([]slot, 0, 2*l.t.Len())
	l.anchors = newArena()
	l.t.Ascend(func(it item) bool {
		l.insert(it)
		return true
	})
	l.t = nil
}

// insert gives a new key a slot, an anchor and an entry in the index.
func (l *loader) insert(pair item) {
	a, as := l.anchors.alloc(int(pair.klen))
	copy(a, pair.key())
	var i int32
	if k := len(l.free); k > 0 {
		i = l.free[k-1]
		l.free = l.free[:k-1]
	} else {
		i = int32(len(l.slots))
		l.slots = append(l.slots, slot{})
	}
	l.slots[i] = slot{it: pair, anchor: a, aslab: as}
	l.idx[unsafe.String(unsafe.SliceData(a), len(a))] = i
}

func (l *loader) applyMap(r recovery.Record) {
	for it := r.Ops(); it.Next(); {
		op := it.Op()
		i, had := l.idx[string(op.Key)]
		if !had {
			if op.Kind == format.OpSet {
				l.insert(l.carve(op.Key, op.Value))
			}
			continue // (deleting an absent key does nothing)
		}
		sl := &l.slots[i]
		l.live -= int64(len(sl.it.kv))
		l.pairs.release(sl.it.kv, sl.it.slab)
		if op.Kind == format.OpSet {
			sl.it = l.carve(op.Key, op.Value)
			continue
		}
		delete(l.idx, string(op.Key)) // before its anchor can be reused
		l.anchors.release(sl.anchor, sl.aslab)
		*sl = slot{}
		l.free = append(l.free, i)
	}
}

// finish returns the store's tree. When dead pairs pin more than a quarter again of the slab
// memory the live pairs need (replay tolerates up to twice, see compact), it copies the live
// pairs into fresh memory once, so the open database costs about what it holds.
func (l *loader) finish() *tree {
	var compact *arena
	if l.pairs.retained() > l.live+l.live/4+slabSize { // one copy of the store, once
		compact = newArena()
	}
	own := func(it item) item {
		if compact == nil {
			return it
		}
		kv, s := compact.alloc(len(it.kv))
		copy(kv, it.kv)
		return item{kv: kv, klen: it.klen, slab: s}
	}
	t := l.t
	switch {
	case t == nil: // map mode: sort the survivors, build the tree in order
		items := make([]item, 0, len(l.idx))
		for _, i := range l.idx {
			items = append(items, l.slots[i].it)
		}
		l.idx, l.slots, l.free, l.anchors = nil, nil, nil, nil
		slices.SortFunc(items, func(a, b item) int { return bytes.Compare(a.key(), b.key()) })
		t = newTree()
		for _, it := range items {
			t.ReplaceOrInsert(own(it))
		}
	case compact != nil:
		nt := newTree()
		t.Ascend(func(it item) bool {
			nt.ReplaceOrInsert(own(it))
			return true
		})
		t = nt
	}
	l.t, l.pairs, l.spare = nil, nil, nil
	return t
}
