package db

import (
	"encoding/binary"
	"fmt"
	"iter"

	"github.com/streamwal/recovery/format"
)

// Tx is a transaction: read-write in Update, read-only in View. It is valid only while the
// function it was passed to runs, and is not for concurrent use. Nothing it returns aliases
// the store, and nothing it is given is kept: keys and values are copied both ways.
//
// A Tx used after its function returned is a bug in the caller, and every method treats it
// the same way: it panics with an *Error of code CLOSED (errors.Is(v, ErrClosed) on the
// recovered value), rather than read a state that is gone or drop a write silently.
type Tx struct {
	db       *DB
	t        *tree // the transaction's state: a clone of the committed tree (mutated only if writable)
	writable bool
	closed   bool
	buf      []byte // writable: hdrRoom bytes of room for the framing, then the payload (big values not included)
	segs     []seg  // the big values, in the store's own copy, and where they go in buf
	size     int64  // the payload's size: buf's payload bytes plus the big values
	live     int64  // what the transaction changes in the live pairs' share of a compacted log
	ops      int
	err      error // sticky: a failed Set or Delete fails the commit too
}

// seg is a value written from the store's copy rather than copied into the buffer: it goes
// after buf[:at].
type seg struct {
	at  int
	val []byte
}

// gather appends to dst the payload that starts at buf[from:], in pieces: buf's stretches
// between the big values and the values themselves (segs, in order), and returns them with
// the payload's checksum.
func gather(dst [][]byte, buf []byte, from int, segs []seg) ([][]byte, uint32) {
	at := from
	for _, sg := range segs {
		dst = append(dst, buf[at:sg.at], sg.val)
		at = sg.at
	}
	dst = append(dst, buf[at:])
	var crc uint32
	for _, p := range dst {
		crc = format.UpdateChecksum(crc, p)
	}
	return dst, crc
}

// bigValue: a value at least this large is not copied into the transaction's buffer; the
// commit writes it from the store's copy (one copy of a 64 MiB value, not two).
const bigValue = 32 << 10

func (tx *Tx) close() { tx.closed = true }

func (tx *Tx) mustBeOpen() {
	if tx.closed {
		panic(newError(CodeClosed, tx.db.path, "a Tx used after the Update or View it was given to returned", nil))
	}
}

// Writable reports whether this is a read-write transaction.
func (tx *Tx) Writable() bool { return tx.writable }

// Get returns a copy of the value of key, and whether it is present (an empty value is
// present: non-nil and empty). Inside Update it sees the transaction's own writes.
func (tx *Tx) Get(key []byte) ([]byte, bool) {
	tx.mustBeOpen()
	it, ok := tx.t.Get(probe(key))
	if !ok {
		return nil, false
	}
	v := make([]byte, len(it.value()))
	copy(v, it.value())
	return v, true
}

// Set sets key to value (either may be empty). The error, also returned by Update, is
// ErrReadOnly in a View, ErrTxTooLarge when the transaction's record would exceed the
// maximum record size.
func (tx *Tx) Set(key, value []byte) error {
	n := 1 + 4 + len(key) + 4 + len(value)
	if err := tx.writeCheck(n); err != nil {
		return err
	}
	it := ownedItem(key, value)
	if len(value) >= bigValue {
		tx.buf = format.AppendSet(tx.buf, key, nil) // the value's length is the last field
		binary.BigEndian.PutUint32(tx.buf[len(tx.buf)-4:], uint32(len(value)))
		tx.segs = append(tx.segs, seg{at: len(tx.buf), val: it.value()})
	} else {
		tx.buf = format.AppendSet(tx.buf, key, value)
	}
	tx.size += int64(n)
	if old, had := tx.t.ReplaceOrInsert(it); had {
		tx.live -= pairSize(old)
	}
	tx.live += pairSize(it)
	tx.ops++
	return nil
}

// Delete removes key. Deleting an absent key is not an error; like every op it is logged.
func (tx *Tx) Delete(key []byte) error {
	n := 1 + 4 + len(key)
	if err := tx.writeCheck(n); err != nil {
		return err
	}
	tx.buf = format.AppendDelete(tx.buf, key)
	tx.size += int64(n)
	if old, had := tx.t.Delete(probe(key)); had {
		tx.live -= pairSize(old)
	}
	tx.ops++
	return nil
}

func (tx *Tx) writeCheck(opSize int) error {
	tx.mustBeOpen()
	switch {
	case !tx.writable:
		return newError(CodeReadOnly, tx.db.path, "write in a View transaction", nil)
	case tx.err != nil:
		return tx.err
	}
	if payload := tx.size; payload+int64(opSize) > tx.db.maxRecord {
		tx.err = newError(CodeTxTooLarge, tx.db.path, fmt.Sprintf(
			"a %d-byte op on top of %d bytes of ops would exceed the maximum record size of %d bytes; split the transaction",
			opSize, payload, tx.db.maxRecord), nil)
		return tx.err
	}
	return nil
}

// Range yields copies of the pairs with start <= key < end, in unsigned byte order; a nil end
// means no upper bound (and a nil start is the smallest key, the empty one). Inside Update
// it iterates the transaction's state as it was when the loop began: the loop may Set and
// Delete without disturbing it.
func (tx *Tx) Range(start, end []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(key, value []byte) bool) {
		tx.mustBeOpen()
		t := tx.t
		if tx.writable {
			t = t.Clone() // the loop body may write to tx.t; this clone stays as it is
		}
		visit := func(it item) bool {
			kv := make([]byte, len(it.kv))
			copy(kv, it.kv)
			return yield(kv[:it.klen:it.klen], kv[it.klen:])
		}
		if end == nil {
			t.AscendGreaterOrEqual(probe(start), visit)
		} else {
			t.AscendRange(probe(start), probe(end), visit)
		}
	}
}

// Len is the number of keys in the transaction's state.
func (tx *Tx) Len() int {
	tx.mustBeOpen()
	return tx.t.Len()
}
