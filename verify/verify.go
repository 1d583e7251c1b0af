// Package verify is the check of a record's payload: everything about a record that needs no
// store and no other record, so it runs on the parallel workers. Everything exported here is
// stable.
//
// The loop that runs it over a chunk of records is internal/verifier; the decision about a
// record that fails is classify's, made in file order by the ordered applier.
package verify

import (
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
)

// Payload checks a record's payload p against the checksum crc its header carries: first the
// CRC (CRC-32 IEEE, SIMD via github.com/klauspost/crc32), then that p parses as ops to its
// exact end. It returns the number of ops; or, when p fails, the Trouble (classify.Damaged for
// a checksum mismatch, classify.Malformed for a payload that does not parse) and a detail for
// the report. It only reads p, so any number of goroutines may call it at once.
func Payload(p []byte, crc uint32) (numOps int, t classify.Trouble, detail string) {
	if format.Checksum(p) != crc {
		return 0, classify.Damaged, "payload checksum mismatch"
	}
	n, err := format.CountOps(p)
	if err != nil {
		return 0, classify.Malformed, "payload does not parse (" + err.Error() + ")"
	}
	return n, 0, ""
}
