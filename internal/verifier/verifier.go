// Package verifier is the parallel stage's loop over a chunk: it checks each record of a batch
// in file order as verify.Payload does (verify.Payload names the trouble of the first that
// fails), stops there, and then runs the caller's Preparer on the good ones. It never decides anything: the ordered applier
// (internal/replay) classifies the first failure.
package verifier

import (
	"math"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/chunk"
	"github.com/streamwal/recovery/verify"
)

// Batch verifies the records of bt, whose bytes are buf (the chunk) and aux (its straddler).
// It fills bt.Ops and sets bt.FirstBad (and bt.Bad) to the first record that failed, or
// bt.Count(). It reads buf and aux and writes only bt.
//
// With a Preparer it then prepares every good record, in file order, into bt.Prep.
func Batch(layout format.Layout, bt *chunk.Batch, buf, aux []byte, prep apply.Preparer) {
	w := bt.Walk(layout, buf, aux)
	ops := bt.Ops[:0]
	if n := bt.Count(); cap(ops) < n {
		ops = make([]uint32, 0, n) // exactly: the pool counts this table's capacity
	}
	for {
		off, p, crc, ok := w.Next()
		if !ok {
			break
		}
		// verify.Payload's checks, written out so that the loop keeps them inline (a call
		// per record costs a nanosecond at 64-byte records); verify.Payload classifies a
		// record that fails them, so the rule and its words live in one place.
		if format.Checksum(p) == crc {
			if n, err := format.CountOps(p); err == nil {
				ops = append(ops, uint32(n))
				continue
			}
		}
		_, t, detail := verify.Payload(p, crc)
		bt.Bad = classify.Damage{Offset: off, Trouble: t, Detail: detail}
		break
	}
	bt.Ops = ops
	bt.FirstBad = len(ops)
	if prep != nil {
		prepare(layout, bt, buf, aux, prep)
	}
}

func prepare(layout format.Layout, bt *chunk.Batch, buf, aux []byte, prep apply.Preparer) {
	hdr := int64(layout.HeaderSize())
	ends := bt.PrepEnd[:0]
	if cap(ends) < bt.FirstBad {
		ends = make([]uint32, 0, bt.FirstBad)
	}
	words := bt.Prep[:0]
	w := bt.Walk(layout, buf, aux)
	for i := range bt.FirstBad {
		off, p, _, _ := w.Next()
		before := len(words)
		rec := apply.NewRecord(off, int(hdr), p, int(bt.Ops[i]), nil)
		words = prep.Prepare(rec, words)
		if len(words) < before || uint64(len(words)) > math.MaxUint32 {
			panic("recovery: a Preparer must append to the slice it is given and return it")
		}
		ends = append(ends, uint32(len(words)))
	}
	bt.Prep, bt.PrepEnd = words, ends
}
