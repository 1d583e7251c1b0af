package db

import (
	"errors"
	"hash/maphash"
	"math"
	"unsafe"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
)

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
