// Package chunk is the state one pooled buffer carries through the stages of recovery: which
// part of the file it holds, where its records are, and what the verifier found. It is
// internal: the stages' wiring is not an API a user can misuse.
//
// A chunk is a fixed extent of the file, [Base, Base+len(B)): chunk k of a log whose records
// start at F is [F+k*R, F+(k+1)*R), whatever the records are. Its records are the ones whose
// header starts inside it. Those that also end inside it are read in place, back to back from
// B[First:]; the last one may run past the chunk's end (a straddler): it is read whole, header
// included, into Aux (or into the one shared buffer for records larger than a read).
package chunk

import (
	"encoding/binary"

	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
)

// Stop says why the stream ended at Off. Trouble 0 means a clean end of file.
type Stop struct {
	Set     bool
	Off     int64
	Trouble classify.Trouble
	Detail  string
}

// Batch is the metadata of one chunk. It is reused with its buffer: slices keep their capacity.
type Batch struct {
	K     int64 // chunk index
	Base  int64 // file offset of B[0]
	First int   // offset in B of the first record header carved from B
	N     int   // records carved from B, back to back from First
	// A record whose header starts in this chunk and that runs past its end: header and payload
	// in the Aux bytes, at file offset AuxOff.
	HasAux bool
	AuxOff int64
	Big    bool // the Aux bytes are the shared buffer for records larger than a read

	Stop Stop // set on the last batch of the stream

	// Set by the verifier: the op count of each good record (N, plus one for the straddler),
	// the index of the first record that failed (Count() if none), and why it failed.
	Ops      []uint32
	FirstBad int
	Bad      classify.Damage

	// Set by the verifier when there is a Preparer: the words it returned for the good
	// records, record i's being Prep[PrepEnd[i-1]:PrepEnd[i]].
	Prep    []uint64
	PrepEnd []uint32
}

// Reset clears b for chunk k at base.
func (b *Batch) Reset(k, base int64) {
	*b = Batch{K: k, Base: base, Ops: b.Ops[:0], Prep: b.Prep[:0], PrepEnd: b.PrepEnd[:0]}
}

// Prepared is what the Preparer returned for good record i (capacity capped).
func (b *Batch) Prepared(i int) []uint64 {
	start := uint32(0)
	if i > 0 {
		start = b.PrepEnd[i-1]
	}
	end := b.PrepEnd[i]
	return b.Prep[start:end:end]
}

// Count is the number of records carved into b, the straddler included.
func (b *Batch) Count() int {
	if b.HasAux {
		return b.N + 1
	}
	return b.N
}

// MetaBytes is the memory the batch's tables hold, for the pool's accounting.
func (b *Batch) MetaBytes() int64 {
	return int64(cap(b.Ops))*4 + int64(cap(b.Prep))*8 + int64(cap(b.PrepEnd))*4
}

// Walk iterates the carved records of a batch in file order. The carver validated every header
// it passed, so the walk trusts them: it re-reads each length instead of storing it.
type Walk struct {
	b      *Batch
	buf    []byte
	aux    []byte
	layout format.Layout
	hdr    int
	q, i   int
}

// Walk starts a walk over b's records, whose bytes are buf (the chunk) and aux (the straddler).
func (b *Batch) Walk(layout format.Layout, buf, aux []byte) Walk {
	return Walk{b: b, buf: buf, aux: aux, layout: layout, hdr: layout.HeaderSize(), q: b.First}
}

// Next returns the next record: its file offset, its payload (capacity capped at its end, so
// an append by a caller can never reach the bytes after it) and the CRC its header promises.
func (w *Walk) Next() (off int64, payload []byte, crc uint32, ok bool) {
	switch {
	case w.i < w.b.N:
		off = w.b.Base + int64(w.q)
		payload, crc = w.record(w.buf[w.q:])
		w.q += w.hdr + len(payload)
	case w.i == w.b.N && w.b.HasAux:
		off = w.b.AuxOff
		payload, crc = w.record(w.aux)
	default:
		return 0, nil, 0, false
	}
	w.i++
	return off, payload, crc, true
}

func (w *Walk) record(p []byte) ([]byte, uint32) {
	l := int(binary.BigEndian.Uint32(p))
	crc := binary.BigEndian.Uint32(p[w.hdr-4:])
	end := w.hdr + l
	return p[w.hdr:end:end], crc
}
