// Package oracle is an independent, whole-file reference implementation of log recovery.
//
// It takes the entire log as one []byte and walks it the way the TypeScript kernel loads a
// file (one buffer, one sequential pass), but it decides every record exactly by this
// project's rules, read from docs/classification.md. It shares no code with the
// streaming recovery: it imports only the standard library. Tests compare the streaming
// implementation against it, and benchmarks use it as the baseline.
//
// It is written to be obviously correct rather than fast: every length check is done in
// int64 against the input's size, nothing is allocated from a length field (payloads, keys
// and values are sub-slices of the input), and it never panics.
package oracle

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
)

// Mode selects what recovery does with a damaged tail or mid-log corruption.
type Mode int

const (
	Tolerate    Mode = iota // default: truncate a torn/damaged tail, refuse corruption
	Strict                  // refuse both
	PointInTime             // truncate both at the first bad record
)

// Options configures Recover.
type Options struct {
	Mode      Mode
	MaxRecord uint32 // 0 means the default 1<<30
}

// DefaultMaxRecord is the maximum record size used when Options.MaxRecord is 0.
const DefaultMaxRecord uint32 = 1 << 30

// Op is one mutation of a replayed transaction.
type Op struct {
	Delete     bool
	Key, Value []byte // alias the input; nil-vs-empty not significant
}

// Outcome is everything recovery decides about a file.
type Outcome struct {
	Layout      string // "", "legacy", "v1" ("" for empty file or when refused before the layout is known)
	Code        string // "" on success; else "NOT_A_DATABASE", "UNSUPPORTED_VERSION", "CORRUPT_WAL", "RECORD_TOO_LARGE", "TAIL_DAMAGE"
	ErrOffset   int64  // offset carried by the error (-1 when Code == "")
	Truncate    bool   // a truncation is decided (the file would be cut at TruncOffset)
	TruncOffset int64
	TruncBytes  int64
	Reason      string // "torn_header", "torn_tail", "damaged_tail", "corrupt", "" when clean
	Records     int64  // records replayed (good records before the decision point)
	Ops         int64  // ops replayed
	End         int64  // offset just past the last replayed record (or the first-record offset)
	// Refused is, in strict mode only, the truncation that the TAIL_DAMAGE refusal declined
	// to make (Bytes > 0); it is the zero value otherwise, including for a truncation that
	// was made (see Truncate) and for every other code.
	Refused Refusal
}

// Refusal names a truncation that strict mode refused: the file would have been cut at
// Offset, losing Bytes bytes, for Reason (ReasonTornHeader, ReasonTornTail or
// ReasonDamagedTail).
type Refusal struct {
	Offset, Bytes int64
	Reason        string
}

// Error codes.
const (
	CodeNotADatabase       = "NOT_A_DATABASE"
	CodeUnsupportedVersion = "UNSUPPORTED_VERSION"
	CodeCorruptWAL         = "CORRUPT_WAL"
	CodeRecordTooLarge     = "RECORD_TOO_LARGE"
	CodeTailDamage         = "TAIL_DAMAGE"
)

// Reasons.
const (
	ReasonTornHeader  = "torn_header"
	ReasonTornTail    = "torn_tail"
	ReasonDamagedTail = "damaged_tail"
	ReasonCorrupt     = "corrupt"
)

// Layouts.
const (
	LayoutLegacy = "legacy"
	LayoutV1     = "v1"
)

// fileHeader is the complete v1 file header: "LRDB", version 1, reserved 0.
var fileHeader = []byte{0x4C, 0x52, 0x44, 0x42, 0x00, 0x01, 0x00, 0x00}

const (
	v1HeaderLen     = 12
	legacyHeaderLen = 8
	tagCost         = 8       // work units per tag byte read in the evidence search
	budgetBase      = 1 << 20 // fixed part of the evidence-search budget
)

// be32 reads the big-endian u32 at data[i:i+4]; the caller guarantees i+4 <= len(data).
func be32(data []byte, i int64) uint32 {
	return binary.BigEndian.Uint32(data[i : i+4])
}

// Recover walks data and calls apply for each good record's ops in order (apply may be nil).
// Records are replayed before a refusal too (a caller discards them on error), exactly as a
// sequential loop would have, so that Records/Ops/End describe the prefix that was good.
//
// The ops slice passed to apply is freshly allocated for each record and may be retained;
// its keys and values alias data.
func Recover(data []byte, opts Options, apply func(ops []Op)) Outcome {
	size := int64(len(data))
	maxRec := opts.MaxRecord
	if maxRec == 0 {
		maxRec = DefaultMaxRecord
	}
	out := Outcome{ErrOffset: -1}

	// File prefix.
	if size == 0 {
		return out // new, empty database
	}
	if size < 8 {
		if bytes.Equal(data, fileHeader[:size]) {
			out.Layout = LayoutV1
			out.decideTail(opts.Mode, ReasonTornHeader, 0, size)
			return out
		}
		return out.refuse(CodeNotADatabase, 0)
	}
	var v1 bool
	var off int64
	if bytes.Equal(data[:4], fileHeader[:4]) {
		if binary.BigEndian.Uint16(data[4:6]) != 1 {
			return out.refuse(CodeUnsupportedVersion, 4)
		}
		v1, off = true, 8
		out.Layout = LayoutV1
	} else {
		// Legacy iff the first record is verifiable in the legacy framing and well-formed.
		n := int64(be32(data, 0))
		end := legacyHeaderLen + n
		if n == 0 || end > size || crc32.ChecksumIEEE(data[legacyHeaderLen:end]) != be32(data, 4) {
			return out.refuse(CodeNotADatabase, 0)
		}
		if uint32(n) > maxRec {
			out.Layout = LayoutLegacy
			return out.refuse(CodeRecordTooLarge, 0)
		}
		if !walk(data[legacyHeaderLen:end], nil, nil) {
			return out.refuse(CodeNotADatabase, 0)
		}
		v1, off = false, 0
		out.Layout = LayoutLegacy
	}

	// Records, in order.
	for {
		out.End = off
		if off == size {
			return out // clean end
		}
		var (
			payload []byte
			next    int64
			damaged bool // DAMAGED (true) or TORN (false) when bad is set
			bad     bool
		)
		if v1 {
			if size-off < v1HeaderLen {
				out.decideTail(opts.Mode, ReasonTornTail, off, size)
				return out
			}
			n := be32(data, off)
			selfOK := crc32.ChecksumIEEE(data[off:off+4]) == be32(data, off+4)
			end := off + v1HeaderLen + int64(n)
			switch {
			case !selfOK || n == 0:
				bad, damaged = true, true
			case end > size && n <= maxRec:
				// The header checks out and its length is plausible: every byte of
				// [off, size) is this append's own unfinished payload. Torn tail, with
				// no evidence search (docs/classification.md, the torn-tail rule).
				out.decideTail(opts.Mode, ReasonTornTail, off, size)
				return out
			case end > size:
				// Over the maximum and past the end (an erased 0xFF header checks out with
				// length 0xFFFFFFFF): torn unless [off, size) holds evidence.
				bad, damaged = true, false
			case n > maxRec:
				return out.refuse(CodeRecordTooLarge, off)
			case crc32.ChecksumIEEE(data[off+v1HeaderLen:end]) != be32(data, off+8):
				bad, damaged = true, true
			default:
				payload, next = data[off+v1HeaderLen:end], end
			}
		} else {
			if size-off < legacyHeaderLen {
				out.decideTail(opts.Mode, ReasonTornTail, off, size)
				return out
			}
			n := be32(data, off)
			end := off + legacyHeaderLen + int64(n)
			switch {
			case n == 0 || end > size:
				bad, damaged = true, true
			case crc32.ChecksumIEEE(data[off+legacyHeaderLen:end]) != be32(data, off+4):
				bad, damaged = true, true
			case n > maxRec: // the payload CRC matched: the record is real
				return out.refuse(CodeRecordTooLarge, off)
			default:
				payload, next = data[off+legacyHeaderLen:end], end
			}
		}

		if bad {
			verdict, _ := search(data, off, v1, damaged, maxRec, Budget(size, off))
			switch {
			case verdict != "":
				out.decideCorrupt(opts.Mode, off, size)
			case damaged:
				out.decideTail(opts.Mode, ReasonDamagedTail, off, size)
			default:
				out.decideTail(opts.Mode, ReasonTornTail, off, size)
			}
			return out
		}

		var ops []Op
		if !walk(payload, nil, &ops) {
			// CRC good but not well-formed: written whole, never a crash. No search.
			out.decideCorrupt(opts.Mode, off, size)
			return out
		}
		if apply != nil {
			apply(ops)
		}
		out.Records++
		out.Ops += int64(len(ops))
		off = next
	}
}

// State is a convenience: Recover into a map and return it, key string(key) -> value string.
func State(data []byte, opts Options) (Outcome, map[string]string) {
	m := make(map[string]string)
	o := Recover(data, opts, func(ops []Op) {
		for _, op := range ops {
			if op.Delete {
				delete(m, string(op.Key))
			} else {
				m[string(op.Key)] = string(op.Value)
			}
		}
	})
	return o, m
}

func (o *Outcome) refuse(code string, at int64) Outcome {
	o.Code, o.ErrOffset = code, at
	return *o
}

// decideTail applies the mode to a tail (torn header, torn tail, damaged tail) at off.
func (o *Outcome) decideTail(mode Mode, reason string, off, size int64) {
	o.Reason = reason
	if mode == Strict {
		o.Code, o.ErrOffset = CodeTailDamage, off
		o.Refused = Refusal{Offset: off, Bytes: size - off, Reason: reason}
		return
	}
	o.Truncate, o.TruncOffset, o.TruncBytes = true, off, size-off
}

// decideCorrupt applies the mode to corruption (evidence, budget exhausted, malformed) at off.
func (o *Outcome) decideCorrupt(mode Mode, off, size int64) {
	o.Reason = ReasonCorrupt
	if mode == PointInTime {
		o.Truncate, o.TruncOffset, o.TruncBytes = true, off, size-off
		return
	}
	o.Code, o.ErrOffset = CodeCorruptWAL, off
}

// Budget is the evidence search's work budget for a bad record at off in a file of size bytes.
func Budget(size, off int64) int64 {
	return 4*(size-off) + budgetBase
}

// meter counts the evidence search's work units.
type meter struct {
	used, budget int64
	exhausted    bool
}

// charge adds n units, or, if that would exceed the budget, marks the meter exhausted
// (adding nothing) and returns false.
func (m *meter) charge(n int64) bool {
	if m.used+n > m.budget {
		m.exhausted = true
		return false
	}
	m.used += n
	return true
}

// walk reports whether p is a well-formed payload: a non-empty sequence of
// `01 klen key vlen value` (set) and `00 klen key` (delete) that ends exactly at len(p).
// If m is non-nil, tagCost units are charged before each tag byte is read, and each key or
// value length once it fits (the bytes the walk skips over); when the budget
// runs out walk returns false with m.exhausted set. If ops is non-nil the decoded ops are
// appended to it (only meaningful when walk returns true).
func walk(p []byte, m *meter, ops *[]Op) bool {
	n := int64(len(p))
	if n == 0 {
		return false
	}
	var q int64
	for q < n {
		if m != nil && !m.charge(tagCost) {
			return false
		}
		tag := p[q]
		q++
		if tag != 0 && tag != 1 {
			return false
		}
		if n-q < 4 {
			return false
		}
		klen := int64(be32(p, q))
		q += 4
		if klen > n-q {
			return false
		}
		if m != nil && !m.charge(klen) {
			return false
		}
		key := p[q : q+klen]
		q += klen
		var val []byte
		if tag == 1 {
			if n-q < 4 {
				return false
			}
			vlen := int64(be32(p, q))
			q += 4
			if vlen > n-q {
				return false
			}
			if m != nil && !m.charge(vlen) {
				return false
			}
			val = p[q : q+vlen]
			q += vlen
		}
		if ops != nil {
			*ops = append(*ops, Op{Delete: tag == 0, Key: key, Value: val})
		}
	}
	return true
}

// Evidence-search verdicts returned by search.
const (
	EvidenceNone   = ""
	EvidenceRule1a = "1a"
	EvidenceRule1b = "1b"
	EvidenceRule2  = "2"
	EvidenceRule3  = "3"
	EvidenceBudget = "budget"
)

// search looks for evidence of a later write in data[off:] for the bad record at off, rule by
// rule in the order docs/classification.md lists them, and returns which rule found it (EvidenceNone when
// nothing did, EvidenceBudget when the budget ran out) and the work units used.
// v1 selects the layout; damaged says the v1 record at off is DAMAGED (rule 1 applies) rather
// than TORN. For legacy files damaged is ignored. Recover calls it for a TORN v1 record only
// when the header's length is over the maximum record size (a torn header within the maximum
// is cut without a search).
func search(data []byte, off int64, v1, damaged bool, maxRec uint32, budget int64) (string, int64) {
	size := int64(len(data))
	m := &meter{budget: budget}

	// Rule 1: the damaged v1 record itself was written whole. (size-off >= 12 here.)
	if v1 && damaged && size-off >= v1HeaderLen {
		n := be32(data, off)
		selfOK := crc32.ChecksumIEEE(data[off:off+4]) == be32(data, off+4)
		end := off + v1HeaderLen + int64(n)
		if selfOK {
			if end < size {
				return EvidenceRule1a, m.used
			}
		} else if n != 0 && end <= size {
			if !m.charge(int64(n)) {
				return EvidenceBudget, m.used
			}
			if crc32.ChecksumIEEE(data[off+v1HeaderLen:end]) == be32(data, off+8) {
				return EvidenceRule1b, m.used
			}
		}
	}

	for p := off; p+8 <= size; p++ {
		// Rule 2: a later v1 record header (self-checksum good, non-zero, within max),
		// or a verifiable v1 record larger than max.
		if v1 && p > off {
			n := be32(data, p)
			if n != 0 && crc32.ChecksumIEEE(data[p:p+4]) == be32(data, p+4) {
				if n <= maxRec {
					return EvidenceRule2, m.used
				}
				end := p + v1HeaderLen + int64(n)
				if end <= size {
					if !m.charge(int64(n)) {
						return EvidenceBudget, m.used
					}
					if crc32.ChecksumIEEE(data[p+v1HeaderLen:end]) == be32(data, p+8) {
						return EvidenceRule2, m.used
					}
				}
			}
		}
		// Rule 3: a record verifiable in the 8-byte legacy framing with a well-formed payload.
		if v1 || p > off {
			n := be32(data, p)
			end := p + legacyHeaderLen + int64(n)
			if n != 0 && end <= size {
				wf := walk(data[p+legacyHeaderLen:end], m, nil)
				if m.exhausted {
					return EvidenceBudget, m.used
				}
				if wf {
					if !m.charge(int64(n)) {
						return EvidenceBudget, m.used
					}
					if crc32.ChecksumIEEE(data[p+legacyHeaderLen:end]) == be32(data, p+4) {
						return EvidenceRule3, m.used
					}
				}
			}
		}
	}
	return EvidenceNone, m.used
}
