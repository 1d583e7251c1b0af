// Package source is the first stage: it reads the log in large sequential reads into pooled
// buffers and carves each read into records, without looking at payloads.
//
// One Reader is driven by one goroutine (the pipeline's source goroutine, or the sequential
// loop). Fill reads at most max(ReadSize, one record) bytes into the buffer it is given. It
// trusts a length field only as far as the layout allows: a v1 length is used only after its
// header self-checksum holds; any length is used to size a read only when it is within both the
// maximum record size and the file. Anything it cannot carve past (a short tail, a bad header,
// a record too large) ends the stream with a Stop; classifying it is the applier's job.
package source

import (
	"context"
	"io"

	"github.com/streamwal/recovery/bufpool"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/walerr"
)

// Rec is one carved record. Start and End delimit its payload in the batch's buffer.
type Rec struct {
	Off        int64  // file offset of the record header
	Start, End int    // payload is B[Start:End]
	CRC        uint32 // payload CRC the header promises
	NOps       int32  // set by the verifier
}

// Stop says why the stream ended at Off. Trouble 0 with Set means a clean end of file.
type Stop struct {
	Set     bool
	Off     int64
	Trouble classify.Trouble // 0: clean end
	Detail  string
}

// Batch is the metadata that travels with one pooled buffer through every stage. It is reused
// with the buffer, so its slices keep their capacity from one read to the next.
type Batch struct {
	Base int64 // file offset of B[0]
	Recs []Rec // records carved from B, in file order
	Stop Stop  // set on the last batch of the stream

	// Set by the verifier: the index of the first record that failed, len(Recs) if none,
	// and why it failed.
	FirstBad int
	Bad      classify.Damage

	// Err is a read error the parallel source met while reading ahead. It travels in file
	// order like a batch, so that damage in an earlier batch is still decided first, exactly
	// as a sequential loop (which would never have made this read) decides it.
	Err error

	// Ready carries the verifier's "done" to the applier (capacity 1). Owned by the pipeline;
	// the sequential loop leaves it nil.
	Ready chan struct{}
}

// Buffer is a pooled buffer carrying a Batch.
type Buffer = bufpool.Buffer[Batch]

// Pool is a pool of such buffers.
type Pool = bufpool.Pool[Batch]

// Reader carves a log into batches.
type Reader struct {
	r         io.ReaderAt
	size      int64
	layout    format.Layout
	readSize  int
	maxRecord uint32

	pos  int64 // offset of the next record to carve
	done bool
}

// New returns a Reader of the records of a file of the given size and layout, starting at the
// layout's first record.
func New(r io.ReaderAt, size int64, layout format.Layout, readSize int, maxRecord uint32) *Reader {
	return &Reader{r: r, size: size, layout: layout, readSize: readSize, maxRecord: maxRecord, pos: layout.FirstRecord()}
}

// Done reports whether the last Fill ended the stream (a Stop was set).
func (s *Reader) Done() bool { return s.done }

// Pos is the offset of the next record Fill would carve.
func (s *Reader) Pos() int64 { return s.pos }

// Fill reads the next chunk into b and carves it. On error the batch is unusable.
func (s *Reader) Fill(pool *Pool, b *Buffer) error {
	bt := &b.Meta
	bt.Recs, bt.Stop, bt.FirstBad, bt.Bad, bt.Err = bt.Recs[:0], Stop{}, 0, classify.Damage{}, nil
	off := s.pos
	bt.Base = off
	hdr := s.layout.HeaderSize()

	n := int(min(int64(s.readSize), s.size-off))
	buf := pool.Grow(b, n)
	if err := walerr.ReadFull(s.r, buf, off); err != nil {
		return err
	}
	for q := 0; ; {
		if off == s.size {
			s.stop(bt, off, 0, "")
			break
		}
		if s.size-off < int64(hdr) {
			s.stop(bt, off, classify.Short, "fewer bytes left than a record header")
			break
		}
		if n-q < hdr {
			break // the header continues in the next read
		}
		var l, crc uint32
		var trouble classify.Trouble
		var detail string
		if s.layout == format.LayoutV1 {
			h := format.DecodeV1Header(buf[q:])
			l, crc = h.Length, h.PayloadCRC
			switch {
			case !h.SelfCheckOK():
				trouble, detail = classify.Damaged, "record header self-checksum mismatch"
			case l == 0:
				trouble, detail = classify.Damaged, "zero-length record"
			case int64(l) > s.size-off-int64(hdr):
				trouble, detail = classify.Torn, "record runs past the end of the file"
			case l > s.maxRecord:
				trouble, detail = classify.TooLarge, "record larger than the maximum record size"
			}
		} else {
			h := format.DecodeLegacyHeader(buf[q:])
			l, crc = h.Length, h.PayloadCRC
			switch {
			case l == 0:
				trouble, detail = classify.Damaged, "zero-length record"
			case int64(l) > s.size-off-int64(hdr):
				trouble, detail = classify.Damaged, "record length runs past the end of the file"
			case l > s.maxRecord:
				trouble, detail = classify.LegacyOversize, "record larger than the maximum record size"
			}
		}
		if trouble != 0 {
			s.stop(bt, off, trouble, detail)
			break
		}
		end := q + hdr + int(l)
		if end > n {
			if len(bt.Recs) > 0 {
				break // carve it from the next read
			}
			// The first record alone is larger than a read: give it a buffer of its own size.
			// l is bounded by the maximum record size and the file's size (checked above). A
			// legacy length has no checksum of its own, so before it sizes anything its
			// payload's CRC is checked streaming, through the buffer we already hold: a
			// damaged length never grows a buffer, here or in the read-ahead behind it.
			if s.layout == format.LayoutLegacy {
				ok, err := classify.ChecksumMatches(context.Background(), s.r, buf, off+int64(hdr), int64(l), crc)
				if err != nil {
					return err
				}
				if !ok {
					s.stop(bt, off, classify.Damaged, "payload checksum mismatch")
					break
				}
			}
			n = hdr + int(l)
			buf = pool.Grow(b, n)
			if err := walerr.ReadFull(s.r, buf, off); err != nil {
				return err
			}
		}
		bt.Recs = append(bt.Recs, Rec{Off: off, Start: q + hdr, End: end, CRC: crc})
		q = end
		off += int64(hdr) + int64(l)
	}
	s.pos = off
	return nil
}

func (s *Reader) stop(bt *Batch, off int64, t classify.Trouble, detail string) {
	bt.Stop = Stop{Set: true, Off: off, Trouble: t, Detail: detail}
	s.done = true
}
