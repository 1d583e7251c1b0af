// Package apply is the single ordered applier: the only stage that decides anything.
//
// It takes batches strictly in file order, replays each verified record into the caller's
// Applier, and at the first record that failed (or at the end of the stream) hands the damage to
// classify, exactly as a sequential loop would. Nothing after the first bad record is replayed.
package apply

import (
	"context"
	"encoding/binary"
	"io"

	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/chunk"
	"github.com/streamwal/recovery/walerr"
)

// Record is one verified record as the Applier sees it. Payload (and every op decoded from it)
// aliases a pooled buffer: it is valid only during the Apply call and becomes stale (in test
// builds, poisoned) as soon as Apply returns. Copy what must be kept.
//
// A Record is eight machine words, so that it travels to Apply in registers: at nine (the
// op count and the payload's offset each had a field) the compiler copied every Record
// through memory twice on its way to the Applier, a sixth of the ordered applier's time per
// record at 256 bytes (BenchmarkApplyBatch). NumOps and PayloadOffset are methods for that
// reason; NewRecord builds one (for an Applier's own tests).
type Record struct {
	Offset  int64  // file offset of the record header
	Payload []byte // the transaction's ops, verified: CRC holds, parses to its end
	// Prepared is what the Preparer (WithPrepare) returned for this record, nil without one.
	// Like Payload it aliases pooled memory: valid during the Apply call only.
	Prepared []uint64
	meta     uint64 // header size << 32 | number of ops
}

// NewRecord is the record at offset whose header is headerSize bytes, with numOps ops in
// payload (and what a Preparer returned for it, or nil).
func NewRecord(offset int64, headerSize int, payload []byte, numOps int, prepared []uint64) Record {
	return Record{Offset: offset, Payload: payload, Prepared: prepared, meta: uint64(uint32(headerSize))<<32 | uint64(uint32(numOps))}
}

// NumOps is the number of ops in the payload (counted when it was verified).
func (r *Record) NumOps() int { return int(uint32(r.meta)) }

// PayloadOffset is the file offset of Payload[0].
func (r *Record) PayloadOffset() int64 { return r.Offset + int64(r.meta>>32) }

// Preparer is per-record work done in the parallel stage, before the ordered applier sees the
// record: parsing, hashing, checksumming, whatever needs no shared state (Prometheus decodes
// its WAL records in parallel and applies them in order the same way). Prepare is called once
// per verified record, on the workers, many records at once and in no particular order, so
// it must not touch state shared between calls. It appends what the Applier should receive
// for r to dst and returns the extended slice; the Applier finds those words in
// Record.Prepared. The words are held with the chunk's buffer and counted by the pool
// (Result.PeakBuffered). Records after the first bad one may be prepared and never applied.
//
// Prepare runs on read-ahead too (parallelism > 1): on records past the point where the stream
// is decided, which parallelism 1 never prepares. A panic there is dropped with the read-ahead
// and the decision stands; a runtime.Goexit there cannot be kept for later and ends the
// caller's goroutine, where parallelism 1 returns a decision (recovery.WithPrepare).
type Preparer interface {
	Prepare(r Record, dst []uint64) []uint64
}

// PrepareFunc adapts a function to Preparer.
type PrepareFunc func(r Record, dst []uint64) []uint64

// Prepare calls f.
func (f PrepareFunc) Prepare(r Record, dst []uint64) []uint64 { return f(r, dst) }

// Ops returns an allocation-free iterator over the record's ops.
func (r *Record) Ops() format.OpIter { return format.Iter(r.Payload) }

// Applier receives the verified records of a log, one at a time, in file order, never two
// calls at once. At parallelism 1 every call is on the caller's goroutine; in parallel, calls
// come from the pipeline's workers (whichever finds the next chunk ready), each call ordered
// after the one before it, so an Applier needs no locking of its own. An error stops recovery
// and is returned by it; a panic or runtime.Goexit in Apply is re-raised on the caller's
// goroutine once every worker has stopped.
type Applier interface {
	Apply(Record) error
}

// Func adapts a function to Applier.
type Func func(Record) error

// Apply calls f.
func (f Func) Apply(r Record) error { return f(r) }

// Discard is an Applier that keeps nothing (verify-only runs, benchmarks).
var Discard Applier = Func(func(Record) error { return nil })

// Stats describes what was replayed.
type Stats struct {
	Records       int64
	Ops           int64
	Bytes         int64 // record bytes replayed, headers included
	LargestRecord int64 // largest payload replayed
	End           int64 // offset just past the last replayed record
}

// Stage is the applier's state across batches.
type Stage struct {
	Applier  Applier
	Preparer Preparer // may be nil; run by the verifier
	Layout   format.Layout
	Progress func(applied, total int64) // may be nil; called once per batch
	// Verified, if not nil, gets the file's own bytes of the records replayed, headers
	// included, in file order, after the Applier had them: off is where b starts in the file,
	// and b is valid during the call only.
	Verified func(off int64, b []byte) error

	// For classification on the failure path.
	File     io.ReaderAt
	Size     int64
	Classify classify.Config

	Stats      Stats
	Truncation *classify.Truncation // the decided cut, if any
}

// Batch replays the good records of bt (whose bytes are buf and aux). done reports that the
// stream is decided (clean end, truncation decided, or refusal in err); after done, later
// batches are discarded unread. An error the Applier returns comes back as an APPLY_FAILED
// *walerr.Error at the record's offset, wrapping it (errors.Is still finds the cause), the same
// at every parallelism.
func (s *Stage) Batch(ctx context.Context, bt *chunk.Batch, buf, aux []byte) (done bool, err error) {
	hdr := int64(s.Layout.HeaderSize())
	st := &s.Stats
	w := bt.Walk(s.Layout, buf, aux)
	var rec Record  // set field by field: see Record on why it is never built and copied whole
	start := st.End // where this batch's first record is (the stream is replayed back to back)
	for i := range bt.FirstBad {
		off, p, _, _ := w.Next()
		rec.Offset, rec.Payload = off, p
		rec.meta = uint64(hdr)<<32 | uint64(bt.Ops[i])
		if s.Preparer != nil {
			rec.Prepared = bt.Prepared(i)
		}
		if err := s.Applier.Apply(rec); err != nil {
			if s.Verified != nil { // the records the Applier had before this one
				if verr := s.verified(bt, buf[bt.First:replayedEnd(bt, st.End, start)], nil); verr != nil {
					return true, verr
				}
			}
			return true, walerr.Wrap(walerr.ApplyFailed, off, err, "the applier failed on this record; what it received is incomplete")
		}
		n := int64(len(p))
		st.Records++
		st.Ops += int64(bt.Ops[i])
		st.Bytes += hdr + n
		st.LargestRecord = max(st.LargestRecord, n)
		st.End = off + hdr + n
	}
	if s.Verified != nil {
		// The records replayed from buf end where the straddler starts when it was replayed
		// too, and where the last one ended otherwise: derived here, so the per-record loop
		// does no work for this callback.
		bufEnd, replayed := replayedEnd(bt, st.End, start), []byte(nil)
		if bt.HasAux && bt.FirstBad > bt.N {
			bufEnd, replayed = int(bt.AuxOff-bt.Base), aux
		}
		if err := s.verified(bt, buf[bt.First:bufEnd], replayed); err != nil {
			return true, err
		}
	}
	if s.Progress != nil {
		s.Progress(st.End, s.Size)
	}
	switch {
	case bt.FirstBad < bt.Count():
		return true, s.decide(ctx, bt.Bad)
	case bt.Stop.Set && bt.Stop.Trouble == 0:
		return true, nil
	case bt.Stop.Set:
		return true, s.decide(ctx, classify.Damage{Offset: bt.Stop.Off, Trouble: bt.Stop.Trouble, Detail: bt.Stop.Detail})
	}
	return false, nil
}

// replayedEnd is where in bt's chunk the records replayed from it end, given where the
// replay stood before the batch (start) and stands now (end): the chunk's first record when
// none was.
func replayedEnd(bt *chunk.Batch, end, start int64) int {
	if end == start {
		return bt.First
	}
	return int(end - bt.Base)
}

// verified hands the replayed records' bytes to s.Verified: those in the chunk (inBuf), then
// the straddler's (aux, nil when it was not replayed).
func (s *Stage) verified(bt *chunk.Batch, inBuf, aux []byte) error {
	if len(inBuf) > 0 {
		if err := s.Verified(bt.Base+int64(bt.First), inBuf); err != nil {
			return walerr.Wrap(walerr.ApplyFailed, bt.Base+int64(bt.First), err, "the verified bytes' callback failed")
		}
	}
	if aux != nil {
		n := s.Layout.HeaderSize() + int(binary.BigEndian.Uint32(aux))
		if err := s.Verified(bt.AuxOff, aux[:n]); err != nil {
			return walerr.Wrap(walerr.ApplyFailed, bt.AuxOff, err, "the verified bytes' callback failed")
		}
	}
	return nil
}

func (s *Stage) decide(ctx context.Context, d classify.Damage) error {
	t, err := classify.Decide(ctx, s.File, s.Size, s.Classify, d)
	s.Truncation = t
	return err
}
