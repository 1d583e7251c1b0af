package db

import (
	"bytes"
	"unsafe"

	"github.com/streamwal/recovery/internal/hugemem"
)

// index is the replay's location index: for each key seen, where its latest value lies in the
// file. It is an open-addressing hash table (linear probing) whose entries are one 64-byte
// cache line each and hold everything the ordered applier touches for a key: the key itself
// (inline up to 32 bytes, the demo's keys are 11-16), where the value is and the extent of
// its record.
// The key's hash comes from the Preparer, computed on recovery's workers, so the applier
// neither hashes nor follows a pointer: one op costs one cache line. (A Go map cost three:
// its control word, its slot, and the key the slot points to; that was a third of Open.)
//
// Entries hold no pointers, so the collector never scans the table, and the table comes from
// hugemem.Alloc. A key longer than inlineKey is copied whole into long, which the entry
// indexes.
type index struct {
	tab   []entry
	mask  uint32
	used  int // live entries plus tombstones: what the probe lengths depend on
	n     int // live entries
	long  [][]byte
	freeL []uint32 // unused slots of long
}

// inlineKey is the longest key an entry holds itself.
const inlineKey = 32

// entry is one key. tag is 0 for an empty entry, 1 for a deleted one (a tombstone, which a
// probe walks past), else the key's 32-bit hash (moved off 0 and 1), whose low bits place it.
type entry struct {
	tag  uint32
	klen uint32
	vlen uint32
	vpos uint32 // the value's offset in its record's payload
	voff int64  // the value's offset in the file
	long uint32 // when klen > inlineKey: the key is long[long]
	plen uint32 // the length of the value's record's payload
	key  [inlineKey]byte
}

const (
	tagEmpty     = 0
	tagTombstone = 1
)

func tagOf(h uint32) uint32 {
	if h < 2 {
		h += 2
	}
	return h
}

// newIndex returns an index that holds keys keys before it grows.
func newIndex(keys int) *index {
	capacity := 16
	for capacity*3/4 < keys {
		capacity *= 2
	}
	ix := &index{}
	ix.alloc(capacity)
	return ix
}

func (ix *index) alloc(capacity int) {
	var e entry
	b := hugemem.Alloc(capacity * int(unsafe.Sizeof(e)))
	ix.tab = unsafe.Slice((*entry)(unsafe.Pointer(unsafe.SliceData(b))), capacity)
	ix.mask = uint32(capacity - 1)
	ix.used, ix.n = 0, 0
}

func (e *entry) keyIs(key []byte, long [][]byte) bool {
	if int(e.klen) != len(key) {
		return false
	}
	if len(key) <= inlineKey {
		return bytes.Equal(e.key[:len(key)], key)
	}
	return bytes.Equal(long[e.long], key)
}

// find returns the entry of key (hash h), or nil.
func (ix *index) find(h uint32, key []byte) *entry {
	tag := tagOf(h)
	for i := tag & ix.mask; ; i = (i + 1) & ix.mask {
		e := &ix.tab[i]
		switch {
		case e.tag == tagEmpty:
			return nil
		case e.tag == tag && e.keyIs(key, ix.long):
			return e
		}
	}
}

// upsert returns key's entry, adding it (key copied) if it is not there; added says which.
func (ix *index) upsert(h uint32, key []byte) (e *entry, added bool) {
	tag := tagOf(h)
	var free *entry // the first tombstone on the way: where a new key goes
	for i := tag & ix.mask; ; i = (i + 1) & ix.mask {
		c := &ix.tab[i]
		if c.tag == tagEmpty {
			if free == nil {
				if (ix.used+1)*4 > len(ix.tab)*3 { // keep probes short: at most 3/4 full
					ix.rehash()
					return ix.upsert(h, key)
				}
				free = c
				ix.used++
			}
			break
		}
		if c.tag == tagTombstone {
			if free == nil {
				free = c
			}
			continue
		}
		if c.tag == tag && c.keyIs(key, ix.long) {
			return c, false
		}
	}
	*free = entry{tag: tag, klen: uint32(len(key))}
	copy(free.key[:], key)
	if len(key) > inlineKey {
		k := append([]byte(nil), key...)
		if n := len(ix.freeL); n > 0 {
			free.long = ix.freeL[n-1]
			ix.freeL = ix.freeL[:n-1]
			ix.long[free.long] = k
		} else {
			free.long = uint32(len(ix.long))
			ix.long = append(ix.long, k)
		}
	}
	ix.n++
	return free, true
}

// remove deletes e (an entry find or upsert returned).
func (ix *index) remove(e *entry) {
	if e.klen > inlineKey {
		ix.long[e.long] = nil
		ix.freeL = append(ix.freeL, e.long)
	}
	*e = entry{tag: tagTombstone}
	ix.n--
}

// rehash rebuilds the table without its tombstones, twice as large if it is half full of
// live keys.
func (ix *index) rehash() {
	old := ix.tab
	capacity := len(old)
	if ix.n*2 >= capacity {
		capacity *= 2
	}
	n := ix.n
	ix.alloc(capacity)
	for i := range old {
		e := &old[i]
		if e.tag < 2 {
			continue
		}
		j := e.tag & ix.mask
		for ix.tab[j].tag != tagEmpty {
			j = (j + 1) & ix.mask
		}
		ix.tab[j] = *e
	}
	ix.used, ix.n = n, n
}

// keyOf is e's key (aliasing the index).
func (ix *index) keyOf(e *entry) []byte {
	if e.klen > inlineKey {
		return ix.long[e.long]
	}
	return e.key[:e.klen:e.klen]
}
