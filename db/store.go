package db

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"runtime"
	"slices"
	"sync"
	"unsafe"

	"github.com/tidwall/btree"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/hugemem"
	"github.com/streamwal/recovery/walerr"
)

// The store is an ordered in-memory map on github.com/tidwall/btree's generic BTreeG.
//
// Why that library: its Copy is an O(1) copy-on-write snapshot (no node copied until one side
// writes), which is exactly what a transaction needs: a writer copies the committed tree and
// mutates the copy (read-your-writes for free, abort is dropping it), and a reader keeps
// whatever tree was published when it began, untouched by later commits, because no node
// reachable from a published tree is ever written again. It stores items by value in its
// nodes, has no dependencies, is maintained and widely used, and it has Load, a bulk load of
// sorted items: Open builds the tree from tens of thousands of sorted pairs, and Load takes
// 4.8 ms for 60,000 where inserting them one by one takes 13.8 ms (21.2 ms in
// github.com/google/btree, which this store used before; /tmp benchmark of 60,000 16-byte keys,
// 2026-12-01). Locking is off (Options.NoLocks): the store orders its own writers, and readers
// only read published trees, which no method of the library mutates on a read.
//
// A tree is never mutated once published (DB.pub), kept as the writers' base (DB.w), or
// handed to an iterator; see db.go and tx.go.

// degree of the B-tree: nodes of up to 63 items. Degrees 8, 32 and 64 measured within 10% of
// each other on overwrite-heavy inserts; 32 is the libraries' customary choice.
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

// tree is the store's B-tree, with the few operations the store uses.
type tree struct{ t *btree.BTreeG[item] }

func newTree() *tree {
	return &tree{btree.NewBTreeGOptions(less, btree.Options{Degree: degree, NoLocks: true})}
}

// Clone is an O(1) copy-on-write snapshot: t and the clone may each be written afterwards
// without the other seeing it.
func (t *tree) Clone() *tree { return &tree{t.t.Copy()} }

func (t *tree) Get(key item) (item, bool)                          { return t.t.Get(key) }
func (t *tree) ReplaceOrInsert(it item) (item, bool)               { return t.t.Set(it) }
func (t *tree) Delete(key item) (item, bool)                       { return t.t.Delete(key) }
func (t *tree) Len() int                                           { return t.t.Len() }
func (t *tree) Ascend(fn func(item) bool)                          { t.t.Scan(fn) }
func (t *tree) AscendGreaterOrEqual(from item, fn func(item) bool) { t.t.Ascend(from, fn) }

// AscendRange visits the items with from <= key < to.
func (t *tree) AscendRange(from, to item, fn func(item) bool) {
	t.t.Ascend(from, func(it item) bool { return less(it, to) && fn(it) })
}

// load adds it, which must sort after every item in t, faster than ReplaceOrInsert.
func (t *tree) load(it item) { t.t.Load(it) }

// ownedItem copies key and value into one fresh allocation the store owns (the commit path:
// a commit is one fsync, so one allocation per set is noise there).
func ownedItem(key, value []byte) item {
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	return item{kv: kv, klen: uint32(len(key))}
}

// ---- recovery's applier ----

// bigItem: a pair at least this large gets its own allocation (it would waste a slab's tail).
const bigItem = 128 << 10

// noBytes is the kv of an empty key with an empty value: non-nil, zero capacity.
var noBytes = make([]byte, 0)

// arena hands out the store's memory at open: the pairs finish reads back, carved one after
// the other from slabs of up to bigSlab, cut to the bytes still expected (the read-back knows
// exactly how many it will copy), so no slab has an unused tail to speak of. Slabs come from
// hugemem.Alloc: a 4 KiB page of fresh memory costs a fault of ~10 us to touch on a small VM,
// a huge page ~60 us per MiB instead of 2.5 ms. No pair is ever recycled (snapshots may still
// see it); a slab lives as long as any pair in it.
type arena struct {
	slab   []byte // what is left of the slab being carved
	expect int64  // bytes still to be asked for
	size   int64  // bytes of every slab made
}

// newArenaFor is an arena for total bytes to come.
func newArenaFor(total int64) *arena { return &arena{expect: total} }

// bigSlab is the largest slab: a bigger one could pin more memory after later writes
// supersede most of its pairs.
const bigSlab = 8 << 20

// alloc returns n bytes of store-owned memory, capacity capped.
func (a *arena) alloc(n int) []byte {
	switch {
	case n == 0:
		return noBytes
	case n >= bigItem:
		return make([]byte, n)
	}
	if len(a.slab) < n {
		size := int(min(max(a.expect, int64(n)), bigSlab))
		a.slab = hugemem.Alloc(size)
		a.size += int64(size)
	}
	b := a.slab[:n:n]
	a.slab = a.slab[n:]
	a.expect -= int64(n)
	return b
}

// Replay at open is a location index, not a copy of the log. The ordered applier keeps, for
// each live key, where its latest value lies in the file and the extent of the record holding
// it; superseded values are never copied anywhere, checksummed again or touched. Only when the
// log has been replayed does finish read the surviving values back, once each, in file order
// through a small window: it reads each record that holds one whole and checks it against its
// header's CRC again (the file must not have changed since it was verified), then builds the
// tree in key order. The per-op work that needs no store (the key's hash, the op's layout)
// runs in recovery's parallel stage, through a Preparer; the applier touches one cache line
// of the index per op (index.go). Open's memory is then the live data plus the index, not the
// log.

// loader is the recovery.Applier that replays a log into the location index.
type loader struct {
	ix      *index
	seed    maphash.Seed // the keys' hashes, taken by prepare
	hdr     int          // record header size of the log (set by Apply)
	live    int64        // bytes of the live pairs, keys and values
	touched uint32       // what touch loaded, kept so that the loads are not optimized away
}

// prepare is the Preparer of a replay. It runs on recovery's workers, on the core that has
// just read and checked the record, and hands the ordered applier everything it needs so that
// the applier never reads the payload again (its bytes are in another core's cache by then:
// reading an op's header there was a cache miss per op, 14% of Open). Per op:
//
//	word 0: the key's hash << 32 | the value's length (noValue for a delete)
//	word 1: the key's length << 32 | its offset in the payload (a set's value follows it)
//	then, for a key of up to preparedKey bytes, the key itself in ceil(len/8) words
func (l *loader) prepare(r recovery.Record, dst []uint64) []uint64 {
	it := r.Ops()
	for it.Next() {
		key := it.Key()
		h := uint32(maphash.Bytes(l.seed, key))
		vlen := uint64(noValue)
		if it.Kind() == format.OpSet {
			vlen = uint64(len(it.Value()))
		}
		dst = append(dst, uint64(h)<<32|vlen, uint64(len(key))<<32|uint64(it.KeyOffset()))
		n := len(dst)
		dst = append(dst, make([]uint64, keyWords(len(key)))...)
		copy(wordBytes(dst[n:]), key)
	}
	return dst
}

const (
	// preparedKey is the longest key prepare copies into the words it hands the applier.
	preparedKey = 24
	// noValue is a delete's value length in the prepared words (no value in a payload of under
	// 4 GiB can be this long).
	noValue = math.MaxUint32
	// maxPreparedPerByte bounds prepare's words, in bytes per payload byte: an op of a k-byte
	// key takes at least 5+k payload bytes and gets 2+ceil(k/8) words (2 for a key over
	// preparedKey), so the densest op, a delete of a 1-byte key, turns 6 bytes into 24. The pool
	// counts these words; docs/design.md's memory bound for an open rests on this.
	maxPreparedPerByte = 4
)

// keyWords is how many words prepare gives a key of klen bytes: ceil(klen/8), or none for a key
// longer than preparedKey (the applier reads that one from the payload).
func keyWords(klen int) int {
	if klen > preparedKey {
		return 0
	}
	return (klen + 7) / 8
}

// wordBytes is w's memory as bytes.
func wordBytes(w []uint64) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), len(w)*8)
}

func newLoader() *loader { return newLoaderFor(0) }

// newLoaderFor sizes the index for a log of size bytes: one key per 4 KiB of log, at most 64Ki
// keys (8 MiB of index), so that a store of tens of thousands of keys is not rehashed over and
// over as it fills, and a small or hugely overwritten store costs little.
func newLoaderFor(size int64) *loader {
	return &loader{ix: newIndex(int(min(size/(4<<10), 1<<16))), seed: maphash.MakeSeed()}
}

// Apply replays one verified record from the words prepare made for it (the payload is read
// only for a key longer than preparedKey). The index keeps a copy of each new key and only the
// location of values.
func (l *loader) Apply(r recovery.Record) error {
	l.touch(r)
	l.hdr = int(r.PayloadOffset() - r.Offset)
	words := r.Prepared
	for range r.NumOps() {
		if len(words) < 2 {
			return errNotPrepared
		}
		hv, k := words[0], words[1]
		words = words[2:]
		klen, koff := int(k>>32), int(uint32(k))
		var key []byte
		if klen <= preparedKey {
			n := keyWords(klen)
			if len(words) < n {
				return errNotPrepared
			}
			key = wordBytes(words[:n])[:klen:klen]
			words = words[n:]
		} else if koff+klen <= len(r.Payload) {
			key = r.Payload[koff : koff+klen : koff+klen]
		} else {
			return errNotPrepared
		}
		h, vlen := uint32(hv>>32), uint32(hv)
		if vlen == noValue { // a delete
			if e := l.ix.find(h, key); e != nil {
				l.live -= int64(e.klen) + int64(e.vlen)
				l.ix.remove(e)
			}
			continue
		}
		vpos := koff + klen + 4
		if vpos+int(vlen) > len(r.Payload) {
			return errNotPrepared
		}
		e, added := l.ix.upsert(h, key)
		if added {
			l.live += int64(klen)
		} else {
			l.live -= int64(e.vlen)
		}
		e.voff = r.PayloadOffset() + int64(vpos)
		e.vlen, e.vpos, e.plen = vlen, uint32(vpos), uint32(len(r.Payload))
		l.live += int64(vlen)
	}
	return nil
}

// touch loads the index entry each op of r will probe, all of them before any is used: the
// loads are independent, so the CPU has them all in flight at once instead of waiting for one
// cache miss per op in turn (a prefetch, in plain Go).
func (l *loader) touch(r recovery.Record) {
	words, tab, mask := r.Prepared, l.ix.tab, l.ix.mask
	var acc uint32
	for len(words) >= 2 {
		acc += tab[tagOf(uint32(words[0]>>32))&mask].tag
		words = words[min(len(words), 2+keyWords(int(words[1]>>32))):]
	}
	l.touched += acc
}

var errNotPrepared = errors.New("db: replay needs the words loader.prepare makes for each record (recovery.WithPrepare)")

// readBack fills items[i] with the pair of entry order[i] (entries in file order): its key,
// and its value, read from f through a window. Each record holding a value is read whole and
// checked against its header (length and CRC) again, once however many of its values it gives.
func (l *loader) readBack(ctx context.Context, f interface {
	ReadAt([]byte, int64) (int, error)
}, size int64, order []int32, items []item) error {
	var total int64 // what the pairs arena will hold: pairs of at least bigItem are allocated alone
	for _, i := range order {
		if n := int(l.ix.tab[i].klen) + int(l.ix.tab[i].vlen); n < bigItem {
			total += int64(n)
		}
	}
	pairs := newArenaFor(total)
	rb := recordReader{f: f, size: size, hdr: l.hdr}
	for n := 0; n < len(order); {
		e := &l.ix.tab[order[n]]
		start := l.recordOf(e)
		end := start + int64(l.hdr) + int64(e.plen)
		m := n // the entries of this record: [n, m)
		for ; m < len(order) && l.recordOf(&l.ix.tab[order[m]]) == start; m++ {
			e := &l.ix.tab[order[m]]
			key := l.ix.keyOf(e)
			kv := pairs.alloc(len(key) + int(e.vlen)) // the store keeps it
			copy(kv, key)
			items[m] = item{kv: kv, klen: uint32(len(key))}
		}
		reach := end                // when the window must move: how far to read, the records after this one
		if !rb.covers(start, end) { // included while the gaps between them are small
			for j := m; j < len(order); j++ {
				next := l.recordOf(&l.ix.tab[order[j]])
				nextEnd := next + int64(l.hdr) + int64(l.ix.tab[order[j]].plen)
				if next-reach > readGap || nextEnd-start > readWindow {
					break
				}
				reach = max(reach, nextEnd)
			}
		}
		// b: the file's bytes at off; from: the first value of the record not yet complete
		from, same := n, true
		if err := rb.read(ctx, start, end, reach, func(off int64, b []byte) {
			if same {
				var done int
				done, same = fillValues(l.ix.tab, order[from:m], items[from:m], off, b)
				from += done
			}
		}); err != nil {
			return err
		}
		if !same {
			return fileChanged(start, "ops")
		}
		n = m
	}
	// Each part sorts its own pairs by key, in parallel; finish merges the sorted parts.
	slices.SortFunc(items, func(a, b item) int { return bytes.Compare(a.key(), b.key()) })
	return nil
}

// fillValues copies b, the file's bytes at off, into the values of the entries order[i]
// (items[i].value()), which are in file order, and returns how many of them, from the first,
// are complete once b is copied. The pieces of a record come in file order, so the caller
// starts the next piece at the first value not complete: each piece visits only the values it
// reaches, and a record of v values streamed in p pieces costs v+p visits, not v*p (a 22 MiB
// record of 400,000 values took 1.4 s to read back, quadratically more as it grew).
//
// It also checks, in the bytes of b, that each value is still preceded by the op that set it
// (a set's tag, the key's length, the key, the value's length), and reports false when one is
// not: the record was rewritten since replay with one of the same length and a valid checksum
// (a writer that cut a failed append and wrote another in its place while a read-only open was
// between replay and read-back), and the value would be served under another op's key.
func fillValues(tab []entry, order []int32, items []item, off int64, b []byte) (done int, ok bool) {
	end := off + int64(len(b))
	for i, j := range order {
		e, it := &tab[j], items[i]
		v := it.value()
		if !opBefore(e.voff, it.key(), len(v), off, b) {
			return done, false
		}
		if lo, hi := max(off, e.voff), min(end, e.voff+int64(len(v))); lo < hi {
			copy(v[lo-e.voff:], b[lo-off:hi-off])
		}
		if e.voff+int64(len(v)) > end { // it goes on past b (and the values after it start past b)
			break
		}
		done = i + 1
	}
	return done, true
}

// opBefore reports whether b, the file's bytes at off, agree with a set op of key whose value
// of vlen bytes starts at file offset voff, wherever the two overlap (the op's framing and key
// come just before its value: tag 1, the key's length, the key, the value's length).
func opBefore(voff int64, key []byte, vlen int, off int64, b []byte) bool {
	var frame [9]byte
	frame[0] = byte(format.OpSet)
	binary.BigEndian.PutUint32(frame[1:], uint32(len(key)))
	binary.BigEndian.PutUint32(frame[5:], uint32(vlen))
	kat := voff - 4 - int64(len(key)) // where the key starts
	return agree(b, off, kat-5, frame[:5]) && agree(b, off, kat, key) && agree(b, off, voff-4, frame[5:])
}

// agree reports whether b (the file's bytes at off) and want (the bytes expected at file
// offset at) are equal where they overlap.
func agree(b []byte, off, at int64, want []byte) bool {
	lo, hi := max(off, at), min(off+int64(len(b)), at+int64(len(want)))
	return lo >= hi || bytes.Equal(b[lo-off:hi-off], want[lo-at:hi-at])
}

// fileChanged is the error of a record at start that no longer matches, in what, the record
// replay verified there.
func fileChanged(start int64, what string) error {
	return walerr.New(walerr.IO, start, fmt.Sprintf(
		"a record read back at open no longer matches its %s as verified during replay: the file changed during open", what)).
		WithHint("reopen; a cut recovery had already made stays, its bytes in the sidecar")
}

// recordOf is the file offset of the record holding e's value.
func (l *loader) recordOf(e *entry) int64 { return e.voff - int64(e.vpos) - int64(l.hdr) }

// recordReader reads records back through a window, checking each against its header.
type recordReader struct {
	f interface {
		ReadAt([]byte, int64) (int, error)
	}
	size   int64
	hdr    int
	win    []byte
	wstart int64 // file offset of win[0]
}

// covers reports whether the window holds [start, end).
func (rb *recordReader) covers(start, end int64) bool {
	return start >= rb.wstart && end <= rb.wstart+int64(len(rb.win))
}

// read reads the record at [start, end) (header included), hands its payload's bytes to use
// (in one or more pieces, in order, each with its file offset) and checks that the header
// still gives the payload's length and CRC, as when the record was verified. When the window
// must move, it reads [start, reach): the records after this one that the caller will ask for.
func (rb *recordReader) read(ctx context.Context, start, end, reach int64, use func(off int64, b []byte)) error {
	hdr := int64(rb.hdr)
	changed := func(what string) error { return fileChanged(start, what) }
	if rb.win == nil {
		rb.win = make([]byte, 0, readWindow) // holds nothing yet
	}
	if end-start <= int64(cap(rb.win)) { // the usual case: the record fits in the window
		if !rb.covers(start, end) {
			if err := ctx.Err(); err != nil { // once per window: a cancel stops the read-back
				return walerr.Wrap(walerr.Canceled, start, err, "open stopped while reading the store back")
			}
			if end > rb.size {
				return changed("extent")
			}
			rb.wstart, rb.win = start, rb.win[:min(int64(cap(rb.win)), rb.size-start, max(reach, end)-start)]
			if err := walerr.ReadFull(rb.f, rb.win, start); err != nil {
				return err
			}
		}
		rec := rb.win[start-rb.wstart : end-rb.wstart]
		if int64(binary.BigEndian.Uint32(rec)) != end-start-hdr {
			return changed("length")
		}
		if format.Checksum(rec[hdr:]) != binary.BigEndian.Uint32(rec[hdr-4:]) {
			return changed("checksum")
		}
		use(start+hdr, rec[hdr:])
		return nil
	}
	// A record larger than the window: streamed through it, checksummed piece by piece, each
	// piece handed on as it is read (so what is kept is exactly what was checked).
	if end > rb.size {
		return changed("extent")
	}
	head := rb.win[:hdr]
	if err := walerr.ReadFull(rb.f, head, start); err != nil {
		return err
	}
	want := binary.BigEndian.Uint32(head[hdr-4:])
	if int64(binary.BigEndian.Uint32(head)) != end-start-hdr {
		return changed("length")
	}
	var crc uint32
	for off := start + hdr; off < end; {
		if err := ctx.Err(); err != nil {
			return walerr.Wrap(walerr.Canceled, off, err, "open stopped while reading the store back")
		}
		piece := rb.win[:min(int64(cap(rb.win)), end-off)]
		if err := walerr.ReadFull(rb.f, piece, off); err != nil {
			return err
		}
		crc = format.UpdateChecksum(crc, piece)
		use(off, piece)
		off += int64(len(piece))
	}
	rb.wstart, rb.win = 0, rb.win[:0] // the window holds none of the file now
	if crc != want {
		return changed("checksum")
	}
	return nil
}

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
func (l *loader) finish(ctx context.Context, f interface {
	ReadAt([]byte, int64) (int, error)
}, size int64, par int) (*tree, error) {
	parts := max(1, min(par, int(l.live/partBytes)))
	// The live entries in file order, found in parallel: each part sorts one stripe of the
	// table by offset, as (offset, entry) pairs side by side (a comparison through the table
	// is two cache misses). A stripe of a hash table is a random sample of its keys, so the
	// first stripe's quantiles split the file into parts of about equal counts; each part then
	// merges the stripes' entries in its stretch of the file.
	type at struct {
		voff int64
		i    int32
	}
	stripes := make([][]at, parts)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
	cuts := make([]int64, parts+1) // part p: cuts[p] <= offset < cuts[p+1]
	cuts[0], cuts[parts] = math.MinInt64, math.MaxInt64
	for p := 1; p < parts; p++ {
		cuts[p] = cuts[p-1]
		if s := stripes[0]; len(s) > 0 {
			cuts[p] = max(cuts[p-1], s[p*len(s)/parts].voff)
		}
	}
	sorted := make([][]item, parts)
	var failed error // the first part's error: the others may only have seen the cancel it made
	var failedMu sync.Mutex
	runParts(parts, cancel, func(p int) {
		mine, n := make([][]at, parts), 0 // each stripe's entries in this part's stretch
		for r, s := range stripes {
			lo, _ := slices.BinarySearchFunc(s, cuts[p], func(a at, v int64) int { return cmp.Compare(a.voff, v) })
			hi, _ := slices.BinarySearchFunc(s, cuts[p+1], func(a at, v int64) int { return cmp.Compare(a.voff, v) })
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
	if failed != nil {
		return nil, failed
	}
	l.ix = nil
	t := newTree()
	merge(sorted, less, t.load) // in key order (a key is in one part only: the index holds it once)
	return t, nil
}

// runParts runs fn(0) to fn(n-1) on goroutines of their own and returns once all have
// returned. A panic or runtime.Goexit in one (the caller's ReadAt runs there) calls cancel, so
// that the others stop early, and is raised again on runParts' caller once every part has
// stopped, as recovery does with its workers': the caller's deferred cleanup runs (Open closes
// the file and releases its lock) instead of the process dying, and a part that never
// finished is never taken for one that found nothing.
func runParts(n int, cancel func(), fn func(p int)) {
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		fault  bool
		value  any
		goexit bool
	)
	for p := range n {
		wg.Add(1)
		go func() {
			normal := false
			defer func() {
				if !normal {
					v := recover() // nil for a runtime.Goexit
					mu.Lock()
					if !fault {
						fault, value, goexit = true, v, v == nil
					}
					mu.Unlock()
					cancel()
				}
				wg.Done()
			}()
			fn(p)
			normal = true
		}()
	}
	wg.Wait()
	if fault {
		if goexit {
			runtime.Goexit()
		}
		panic(value)
	}
}

// merge calls fn on every element of the sorted runs, in order. The runs' heads are kept in a
// binary heap: finish merges as many runs as it has parts, so taking each element costs about
// 2*log2(parts) comparisons, not parts-1 (the merge into the tree is finish's one serial step:
// 2.4 million 16-byte keys in 64 runs took 2.0 s with a scan of every run's head, 0.76 s with
// the heap, and 0.9 s against 0.63 s in 16 runs; the same at 4 runs and fewer: a throwaway
// test on the project's 2-core VM, 2026-12-01).
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
