// Package replay is the ordered applier's state across batches: it takes the verified chunks
// strictly in file order, hands each good record to the caller's apply.Applier, and at the
// first record that failed (or at the stream's end) hands the damage to classify, exactly as a
// sequential loop would. Nothing after the first bad record is replayed. It is internal: the
// pipeline drives it, and a user meets only apply.Applier.
package replay

import (
	"context"
	"encoding/binary"
	"io"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/chunk"
	"github.com/streamwal/recovery/walerr"
)

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
	Applier  apply.Applier
	Preparer apply.Preparer // may be nil; run by the verifier
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

// Batch replays the good records of bt (whose bytes are buf and aux), then decides what bt's
// end means: Replay, then Decide. done reports that the stream is decided (clean end,
// truncation decided, or refusal in err); after done, later batches are discarded unread.
func (s *Stage) Batch(ctx context.Context, bt *chunk.Batch, buf, aux []byte) (done bool, err error) {
	if err := s.Replay(bt, buf, aux); err != nil {
		return true, err
	}
	return s.Decide(ctx, bt)
}

// Replay replays the good records of bt, those before its first bad one, into the Applier,
// then hands their bytes to Verified and reports progress. An error the Applier returns comes
// back as an APPLY_FAILED *walerr.Error at the record's offset, wrapping it (errors.Is still
// finds the cause), the same at every parallelism.
func (s *Stage) Replay(bt *chunk.Batch, buf, aux []byte) error {
	hdr := int64(s.Layout.HeaderSize())
	st := &s.Stats
	w := bt.Walk(s.Layout, buf, aux)
	start := st.End // where this batch's first record is (the stream is replayed back to back)
	for i := range bt.FirstBad {
		off, p, _, _ := w.Next()
		var prepared []uint64
		if s.Preparer != nil {
			prepared = bt.Prepared(i)
		}
		if err := s.Applier.Apply(apply.NewRecord(off, int(hdr), p, int(bt.Ops[i]), prepared)); err != nil {
			if s.Verified != nil { // the records the Applier had before this one
				if verr := s.verified(bt, buf[bt.First:replayedEnd(bt, st.End, start)], nil); verr != nil {
					return verr
				}
			}
			return walerr.Wrap(walerr.ApplyFailed, off, err, "the applier failed on this record; what it received is incomplete")
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
			return err
		}
	}
	if s.Progress != nil {
		s.Progress(st.End, s.Size)
	}
	return nil
}

// Decide says what the end of bt's good records means, once they are replayed: nothing yet
// (done false: the next batch follows), a clean end, or the classification of its first bad
// record or of the trouble the reader stopped at (classify.Decide, reading File).
func (s *Stage) Decide(ctx context.Context, bt *chunk.Batch) (done bool, err error) {
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
