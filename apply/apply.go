// Package apply is the single ordered applier: the only stage that decides anything.
//
// It takes batches strictly in file order, replays each verified record into the caller's
// Applier, and at the first record that failed (or at the end of the stream) hands the damage to
// classify, exactly as a sequential loop would. Nothing after the first bad record is replayed.
package apply

import (
	"context"
	"fmt"
	"io"

	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/source"
)

// Record is one verified record as the Applier sees it. Payload (and every op decoded from it)
// aliases a pooled buffer: it is valid only during the Apply call and becomes stale (in test
// builds, poisoned) as soon as Apply returns. Copy what must be kept.
type Record struct {
	Offset  int64  // file offset of the record header
	Payload []byte // the transaction's ops, verified: CRC holds, parses to its end
	NumOps  int
}

// Ops returns an allocation-free iterator over the record's ops.
func (r Record) Ops() format.OpIter { return format.Iter(r.Payload) }

// Applier receives the verified records of a log, one at a time, in file order, from a single
// goroutine. An error stops recovery and is returned by it.
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
	Layout   format.Layout
	Progress func(applied, total int64) // may be nil; called once per batch

	// For classification on the failure path.
	File     io.ReaderAt
	Size     int64
	Classify classify.Config

	Stats      Stats
	Truncation *classify.Truncation // the decided cut, if any
}

// Batch replays bt's good records. done reports that the stream is decided (clean end,
// truncation decided, or refusal in err); after done, later batches are discarded unread.
func (s *Stage) Batch(ctx context.Context, bt *source.Batch, buf []byte) (done bool, err error) {
	hdr := int64(s.Layout.HeaderSize())
	st := &s.Stats
	for i := range bt.FirstBad {
		r := &bt.Recs[i]
		rec := Record{Offset: r.Off, Payload: buf[r.Start:r.End], NumOps: int(r.NOps)}
		if err := s.Applier.Apply(rec); err != nil {
			return true, fmt.Errorf("recovery: applier failed on the record at offset %d: %w", r.Off, err)
		}
		n := int64(r.End - r.Start)
		st.Records++
		st.Ops += int64(r.NOps)
		st.Bytes += hdr + n
		st.LargestRecord = max(st.LargestRecord, n)
		st.End = r.Off + hdr + n
	}
	if s.Progress != nil {
		s.Progress(st.End, s.Size)
	}
	switch {
	case bt.FirstBad < len(bt.Recs):
		return true, s.decide(ctx, bt.Bad)
	case bt.Stop.Set && bt.Stop.Trouble == 0:
		return true, nil
	case bt.Stop.Set:
		return true, s.decide(ctx, classify.Damage{Offset: bt.Stop.Off, Trouble: bt.Stop.Trouble, Detail: bt.Stop.Detail})
	}
	return false, nil
}

func (s *Stage) decide(ctx context.Context, d classify.Damage) error {
	t, err := classify.Decide(ctx, s.File, s.Size, s.Classify, d)
	s.Truncation = t
	return err
}
