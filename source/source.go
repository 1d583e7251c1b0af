// Package source is the rule the first stage reads by: what a record header must say before
// the reader trusts its length (Check). Everything exported here is stable.
//
// The stage itself, which reads the log in fixed extents into pooled buffers and carves them
// into records, is internal/reader; the streaming reader of pipeline.RunStream applies the
// same Check, so a stream and a file of the same bytes stop at the same trouble.
package source

import (
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
)

// Check checks the record header head (layout.HeaderSize() bytes) found at offset off of a
// log of size bytes, whose records may carry at most maxRecord payload bytes. It returns the
// payload length and the payload CRC the header promises, and the trouble that stops a
// record loop there, 0 when the header is good: a v1 header must pass its own checksum, and
// in both layouts the length must be nonzero, fit in the file and not exceed maxRecord.
// detail says what failed, for the report. A length is to be trusted only when t is 0.
func Check(layout format.Layout, maxRecord uint32, size, off int64, head []byte) (l, crc uint32, t classify.Trouble, detail string) {
	left := size - off - int64(layout.HeaderSize())
	if layout == format.LayoutV1 {
		h := format.DecodeV1Header(head)
		l, crc = h.Length, h.PayloadCRC
		switch {
		case !h.SelfCheckOK():
			return l, crc, classify.Damaged, "record header self-checksum mismatch"
		case l == 0:
			return l, crc, classify.Damaged, "zero-length record"
		case int64(l) > left:
			return l, crc, classify.Torn, "record runs past the end of the file"
		case l > maxRecord:
			return l, crc, classify.TooLarge, "record larger than the maximum record size"
		}
		return l, crc, 0, ""
	}
	h := format.DecodeLegacyHeader(head)
	l, crc = h.Length, h.PayloadCRC
	switch {
	case l == 0:
		return l, crc, classify.Damaged, "zero-length record"
	case int64(l) > left:
		return l, crc, classify.Damaged, "record length runs past the end of the file"
	case l > maxRecord:
		return l, crc, classify.LegacyOversize, "record larger than the maximum record size"
	}
	return l, crc, 0, ""
}
