// Package verify is the parallel stage: everything about a record that needs no store.
// For each record of a batch it checks the payload CRC (CRC-32 IEEE, SIMD via
// github.com/klauspost/crc32) and that the payload parses to its exact end, counting its ops.
// It never decides anything: it marks the first record that failed and stops there, and the
// ordered applier classifies it.
package verify

import (
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/source"
)

// Batch verifies the records of bt, whose payloads are in buf. It sets bt.FirstBad (and bt.Bad)
// to the first record that failed, or len(bt.Recs). It reads buf and writes only bt.
func Batch(bt *source.Batch, buf []byte) {
	recs := bt.Recs
	for i := range recs {
		r := &recs[i]
		p := buf[r.Start:r.End]
		if format.Checksum(p) != r.CRC {
			bt.FirstBad = i
			bt.Bad = classify.Damage{Offset: r.Off, Trouble: classify.Damaged, Detail: "payload checksum mismatch"}
			return
		}
		n, err := format.CountOps(p)
		if err != nil {
			bt.FirstBad = i
			bt.Bad = classify.Damage{Offset: r.Off, Trouble: classify.Malformed, Detail: "payload does not parse (" + err.Error() + ")"}
			return
		}
		r.NOps = int32(n)
	}
	bt.FirstBad = len(recs)
}
