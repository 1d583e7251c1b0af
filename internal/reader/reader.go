// Package reader is the first stage's wiring: it reads the log in fixed extents (chunks) into
// pooled buffers and carves each into records, checking each header with source.Check and
// never looking at a payload.
//
// Reading and carving are separate steps, so that reads can be issued in parallel: chunk k is
// the extent [F+k*R, F+(k+1)*R) of the file (F the layout's first record, R the read size),
// known before any record boundary is. Carving is the one sequential step: chunk k's first
// record starts where chunk k-1's carving ended (the Carry), so chunks are carved strictly in
// order, each by whichever goroutine read it. The carver trusts a length field only as far as
// the layout allows: a v1 length is used only after its header self-checksum holds; any length
// sizes a read only when it is within both the maximum record size and the file, and a legacy
// length (which has no checksum of its own) sizes a buffer larger than a read only after its
// payload's CRC, streamed through a buffer of the read size, matched. Anything it cannot carve
// past (a short tail, a bad header, a record too large) ends the stream with a Stop;
// classifying it is the applier's job.
package reader

import (
	"context"
	"runtime"
	"sync/atomic"

	"github.com/streamwal/recovery/bufpool"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/chunk"
	"github.com/streamwal/recovery/source"
	"github.com/streamwal/recovery/walerr"
)

// Buffer is the memory a chunk is read into: a pooled buffer of any Meta type.
type Buffer interface {
	Grow(n int) []byte    // the chunk's bytes
	GrowAux(n int) []byte // a straddler's bytes, up to one read size
}

var _ Buffer = (*bufpool.Buffer[int])(nil)

// Carry is what carving one chunk tells the next: where its first record starts, or that the
// stream has ended.
type Carry struct {
	Off  int64
	Done bool
}

// ReaderAt is the file, as Read and Carve read it: each call names the reader it reads
// through, so that a caller can tell each goroutine's reads apart (the pipeline's workers each
// read through their own gate).
type ReaderAt interface {
	ReadAt([]byte, int64) (int, error)
}

// Reader carves a log into chunks. Read may be called from many goroutines at once; Carve is
// called for chunk 0, 1, 2... in order, each after the previous one returned (the Carry passed
// between them orders them).
type Reader struct {
	size      int64
	layout    format.Layout
	hdr       int
	readSize  int
	maxRecord uint32
	first     int64
	head      [format.V1HeaderSize]byte // a header that runs past its chunk; Carve's alone

	// The one buffer for records larger than a read: held by at most one batch at a time, so
	// a huge record is held once however many workers run. bigFree has a token while it is
	// free; the batch that took it gives it back (ReleaseBig) when its buffer is released.
	// It grows (is replaced) when a record needs more: see growBig.
	bigFree chan struct{}
	big     []byte
	bigPeak int // the most bytes it ever held, replaced buffers not yet freed included
	// retired is the bytes of replaced heap buffers of countFrom bytes or more that the
	// collector has not freed yet (each has a cleanup that takes its bytes off).
	retired atomic.Int64
}

// New returns a Reader of the records of a file of the given size and layout.
func New(size int64, layout format.Layout, readSize int, maxRecord uint32) *Reader {
	s := &Reader{size: size, layout: layout, hdr: layout.HeaderSize(), readSize: readSize,
		maxRecord: maxRecord, first: layout.FirstRecord(), bigFree: make(chan struct{}, 1)}
	s.bigFree <- struct{}{}
	return s
}

// Start is the carry into chunk 0.
func (s *Reader) Start() Carry { return Carry{Off: s.first} }

// Chunks is the number of chunks (at least 1: an empty log is one empty chunk).
func (s *Reader) Chunks() int64 {
	n := (s.size - s.first + int64(s.readSize) - 1) / int64(s.readSize)
	return max(n, 1)
}

// Bounds returns chunk k's extent [start, end).
func (s *Reader) Bounds(k int64) (start, end int64) {
	start = s.first + k*int64(s.readSize)
	return start, min(start+int64(s.readSize), s.size)
}

// Skips reports whether carving chunk k from c needs none of its bytes (the stream ended, or
// a record read whole by an earlier chunk covers all of it).
func (s *Reader) Skips(k int64, c Carry) bool {
	_, end := s.Bounds(k)
	return c.Done || (c.Off >= end && end < s.size)
}

// Read reads chunk k from r into buf. It starts no read once ctx is done (CANCELED).
func (s *Reader) Read(ctx context.Context, r ReaderAt, buf Buffer, k int64) error {
	start, end := s.Bounds(k)
	return walerr.ReadFullContext(ctx, r, buf.Grow(int(end-start)), start)
}

// BigHeld is the most memory the shared buffer for large records ever held (for the memory
// accounting): its size plus the buffers of countFrom bytes or more it replaced that the
// collector had not freed yet.
func (s *Reader) BigHeld() int { return s.bigPeak }

// countFrom is the size from which a replaced buffer is counted until the collector frees it:
// 1 MiB, the default read size. Below it a replaced buffer is ordinary garbage, freed under the
// program's GOGC like the pool's own small regions.
const countFrom = 1 << 20

// growBig replaces the shared buffer by one of n bytes (nobody holds it: the caller has the
// token). The old one goes first: it cannot be freed there and then, so it is left to the
// collector and, from countFrom bytes, counted until the collector has freed it.
func (s *Reader) growBig(n int) {
	s.dropBig(true)
	s.big = make([]byte, n)
	s.bigPeak = max(s.bigPeak, n+int(s.retired.Load()))
}

// dropBig lets go of the shared buffer: when count is set and it is large, its bytes are
// counted until the collector frees it.
func (s *Reader) dropBig(count bool) {
	old := s.big
	s.big = nil
	switch {
	case cap(old) == 0:
	case count && cap(old) >= countFrom:
		n := int64(cap(old))
		s.retired.Add(n)
		runtime.AddCleanup(&old[:1][0], func(n int64) { s.retired.Add(-n) }, n)
	}
}

// Close lets go of the shared buffer for large records. Nobody may hold it, read into it or
// look at it any more.
func (s *Reader) Close() { s.dropBig(false) }

// ReleaseBig gives back the shared large-record buffer a batch held, poisoned in debug builds.
func (s *Reader) ReleaseBig(bt *chunk.Batch) {
	if bt.Big {
		bufpool.PoisonBytes(s.big)
		bt.Big = false
		s.bigFree <- struct{}{}
	}
}

// Carve carves chunk k, whose bytes are buf (read by Read; readErr is what that read returned)
// starting from c, into bt; what it must read again (a header across the chunk's end, a record
// that runs past it) it reads from r. It returns the carry into chunk k+1. An error is a read error
// that the stream cannot go past (bt is then unusable and the carry is Done): a failed read of
// this chunk, or of a record that runs past its end, or CANCELED when a read it needs would
// start after ctx is done (none does).
func (s *Reader) Carve(ctx context.Context, r ReaderAt, buf Buffer, readErr error, bt *chunk.Batch, k int64, c Carry) (Carry, error) {
	start, end := s.Bounds(k)
	bt.Reset(k, start)
	if s.Skips(k, c) {
		return c, nil
	}
	if readErr != nil {
		return Carry{Done: true}, readErr
	}
	data := buf.Grow(int(end - start))
	hdr := s.hdr
	off := c.Off
	bt.First = int(off - start)
	for {
		if off == s.size {
			return s.stop(bt, off, 0, "")
		}
		if off >= end {
			return Carry{Off: off}, nil // the next record starts in a later chunk
		}
		if s.size-off < int64(hdr) {
			return s.stop(bt, off, classify.Short, "fewer bytes left than a record header")
		}
		q := int(off - start)
		var head []byte
		if q+hdr <= len(data) {
			head = data[q : q+hdr]
		} else { // the header itself runs past the chunk: read it on its own
			head = s.head[:hdr]
			if err := walerr.ReadFullContext(ctx, r, head, off); err != nil {
				return Carry{Done: true}, err
			}
		}
		l, crc, trouble, detail := s.check(head, off)
		if trouble != 0 {
			return s.stop(bt, off, trouble, detail)
		}
		next := off + int64(hdr) + int64(l)
		if next <= end {
			bt.N++
			off = next
			continue
		}
		// The last record of this chunk runs past its end: read it whole.
		aux, err := s.straddler(ctx, r, buf, bt, head, off, l, crc)
		if err != nil {
			return Carry{Done: true}, err
		}
		if aux == nil {
			return s.stop(bt, off, classify.Damaged, "payload checksum mismatch")
		}
		bt.HasAux, bt.AuxOff = true, off
		if next == s.size {
			return s.stop(bt, next, 0, "")
		}
		return Carry{Off: next}, nil
	}
}

// check validates the header at off and returns its payload length and CRC, or why the stream
// cannot go past it.
func (s *Reader) check(head []byte, off int64) (l, crc uint32, t classify.Trouble, detail string) {
	return source.Check(s.layout, s.maxRecord, s.size, off, head)
}

// straddler reads the record at off (payload length l, bounded by the maximum record size and
// the file, checked by the caller) whole, header included, into the batch's Aux bytes, or into
// the shared large-record buffer when it is larger than a read. It returns nil bytes (and no
// error) when a legacy record's streamed CRC did not match: its length is not to be trusted.
//
// The header read again must be the header that was checked: everything after trusts it.
func (s *Reader) straddler(ctx context.Context, r ReaderAt, buf Buffer, bt *chunk.Batch, head []byte, off int64, l, crc uint32) ([]byte, error) {
	n := s.hdr + int(l)
	if n <= s.readSize {
		aux := buf.GrowAux(n)
		if err := walerr.ReadFullContext(ctx, r, aux, off); err != nil {
			return nil, err
		}
		return aux, sameHeader(aux, head, off)
	}
	if s.layout == format.LayoutLegacy {
		// A legacy length has no checksum: stream its CRC through a read-sized scratch before
		// it may size anything larger than a read.
		ok, err := classify.ChecksumMatches(ctx, r, buf.GrowAux(s.readSize), off+int64(s.hdr), int64(l), crc)
		if err != nil || !ok {
			return nil, err
		}
	}
	select { // in carving order, so the batch that holds it is always ahead of us: no deadlock
	case <-s.bigFree:
	case <-ctx.Done():
		return nil, walerr.Wrap(walerr.Canceled, off, ctx.Err(), "recovery stopped")
	}
	bt.Big = true
	if cap(s.big) < n {
		s.growBig(n)
	}
	s.big = s.big[:n]
	if err := walerr.ReadFullContext(ctx, r, s.big, off); err != nil {
		return nil, err
	}
	return s.big, sameHeader(s.big, head, off)
}

// sameHeader checks that a record read again starts with the header checked the first time.
// A file that reads differently twice (rewritten under us, or storage that lies) is an I/O
// error, never a reason to trust either copy.
func sameHeader(rec, head []byte, off int64) error {
	if string(rec[:len(head)]) != string(head) {
		return walerr.New(walerr.IO, off, "the record header read differently twice: the file is changing under recovery, or the storage returns unstable data").
			WithHint("nothing was cut; stop other writers and retry")
	}
	return nil
}

func (s *Reader) stop(bt *chunk.Batch, off int64, t classify.Trouble, detail string) (Carry, error) {
	bt.Stop = chunk.Stop{Set: true, Off: off, Trouble: t, Detail: detail}
	return Carry{Done: true}, nil
}

// Big is the shared large-record buffer's bytes, for the batch that holds it.
func (s *Reader) Big() []byte { return s.big }
