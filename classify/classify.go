// Package classify is the rule of evidence (stated, and made exact, in
// docs/classification.md): what the first bytes of a file say it is, and what a damaged record
// means. Decide is called only on the failure path, by the one applier, in file order; the hot
// path never enters it. ChecksumMatches (a streamed CRC, stateless) is also used by the carver
// on recovery's workers, before a legacy length may size a buffer larger than a read.
//
// Everything here streams: it reads the file through small fixed buffers, whatever the length
// fields say, and its work is bounded by a budget proportional to the bytes it examines.
package classify

import (
	"context"
	"fmt"
	"io"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/walerr"
)

// Mode is what recovery may do about damage (docs/classification.md, "Modes").
type Mode uint8

const (
	// Tolerate cuts a torn or damaged tail (reporting it) and refuses mid-log corruption.
	Tolerate Mode = iota
	// Strict refuses any damage, tail included.
	Strict
	// PointInTime salvages: it cuts at the first bad record, mid-log or not, reporting the loss.
	PointInTime
)

func (m Mode) String() string {
	switch m {
	case Strict:
		return "strict"
	case PointInTime:
		return "point-in-time"
	}
	return "tolerate"
}

// Reason says why bytes are (or would be) cut.
type Reason string

const (
	TornHeader  Reason = "torn_header"  // a prefix of the v1 file header and nothing else
	TornTail    Reason = "torn_tail"    // the last append stopped part way
	DamagedTail Reason = "damaged_tail" // the last bytes are damaged and nothing later was written
	Corrupt     Reason = "corrupt"      // point-in-time mode cut mid-log corruption: acknowledged data lost
)

// Truncation is a decided cut of [Offset, Offset+Bytes), the whole rest of the file.
type Truncation struct {
	Offset int64
	Bytes  int64
	Reason Reason
	Detail string // what was found at Offset
}

// DefaultMaxRecord is the default maximum record size: 1 GiB.
const DefaultMaxRecord = 1 << 30

// MaxRecordLimit is the largest allowed maximum record size. 0xFFFFFFFF is excluded: its
// self-checksum is itself, so an erased-flash tail of 0xFF bytes would be all "headers".
const MaxRecordLimit = 0xFFFFFFFE

// Prefix is what a file's first bytes say.
type Prefix struct {
	Layout     format.Layout // LayoutUnknown only for an empty file
	Empty      bool          // size 0: a new database
	TornHeader bool          // size < 8, a prefix of the v1 header: cut to 0
}

// ReadPrefix classifies the file's start. Errors: NOT_A_DATABASE, UNSUPPORTED_VERSION,
// RECORD_TOO_LARGE (a legacy first record over maxRecord), and read errors.
func ReadPrefix(ctx context.Context, r io.ReaderAt, size int64, maxRecord uint32) (Prefix, error) {
	if size == 0 {
		return Prefix{Empty: true}, nil
	}
	var head [format.FileHeaderSize]byte
	n := min(size, format.FileHeaderSize)
	if err := walerr.ReadFullContext(ctx, r, head[:n], 0); err != nil {
		return Prefix{}, err
	}
	if n < format.FileHeaderSize {
		if string(head[:n]) == string(format.FileHeader[:n]) {
			return Prefix{Layout: format.LayoutV1, TornHeader: true}, nil
		}
		return Prefix{}, notADatabase(fmt.Sprintf("a %d-byte file that is not the start of a database header", size))
	}
	if string(head[:4]) == string(format.FileHeader[:4]) {
		if v := uint16(head[4])<<8 | uint16(head[5]); v != format.Version {
			return Prefix{}, walerr.New(walerr.UnsupportedVersion, 4,
				fmt.Sprintf("file format version %d; this build reads version %d", v, format.Version)).
				WithHint("open it with a newer release; the file is untouched")
		}
		return Prefix{Layout: format.LayoutV1}, nil
	}
	// No magic: a legacy file iff its first record is verifiable and well-formed.
	h := format.DecodeLegacyHeader(head[:])
	if h.Length == 0 || int64(h.Length) > size-format.LegacyHeaderSize {
		return Prefix{}, notADatabase("no LRDB magic, and the bytes are not a legacy record either")
	}
	sc := newScanner(ctx, r, size)
	ok, err := sc.crcMatches(format.LegacyHeaderSize, h.Length, h.PayloadCRC)
	if err != nil {
		return Prefix{}, err
	}
	if ok && h.Length > maxRecord {
		return Prefix{Layout: format.LayoutLegacy}, tooLarge(0, h.Length, maxRecord)
	}
	if ok {
		ok, err = sc.wellFormed(format.LegacyHeaderSize, h.Length)
		if err != nil {
			return Prefix{}, err
		}
	}
	if !ok {
		return Prefix{}, notADatabase("no LRDB magic, and the first bytes are not a valid legacy record")
	}
	return Prefix{Layout: format.LayoutLegacy}, nil
}

func notADatabase(detail string) error {
	return walerr.New(walerr.NotADatabase, 0, detail).WithHint("the file is untouched")
}

func tooLarge(off int64, n, maxRecord uint32) error {
	return walerr.New(walerr.RecordTooLarge, off,
		fmt.Sprintf("a %d-byte record; the maximum record size is %d", n, maxRecord)).
		WithHint("the record is real: raise the maximum record size option; the file is untouched")
}

// Trouble is what stopped the record loop at an offset.
type Trouble uint8

const (
	// Short: fewer bytes than a record header are left. A torn tail, no search.
	Short Trouble = iota + 1
	// Torn: a v1 header whose self-checksum holds declares a non-zero payload that runs past
	// the end. Decide reads the length itself: at most the maximum record size, a torn tail
	// with no search (the header proves its extent); over it, a search for evidence (an erased
	// 0xFF header checks out with length 0xFFFFFFFF).
	Torn
	// Damaged: a header or payload that fails its checks in any other way.
	Damaged
	// Malformed: the payload's CRC holds but it does not parse. Written whole: corrupt.
	Malformed
	// TooLarge: a v1 header whose self-checksum holds declares more than the maximum record size.
	TooLarge
	// LegacyOversize: a legacy header declares more than the maximum record size within the file;
	// its CRC (computed streaming) decides between TooLarge and Damaged.
	LegacyOversize
)

// Damage describes the record at Offset that the loop could not replay.
type Damage struct {
	Offset  int64
	Trouble Trouble
	Detail  string // for a person: "payload checksum mismatch", ...
}

// Config is what Decide needs besides the file.
type Config struct {
	Layout    format.Layout
	MaxRecord uint32
	Mode      Mode
}

// Decide turns damage at d.Offset into a truncation or a refusal, by the rule of evidence and
// the mode. The records before d.Offset are good and have been replayed; d.Offset > 0.
//
// It returns (t, nil) for a cut to make (a tail, or corruption in point-in-time mode),
// (nil, err) for a refusal or a read error, and, in strict mode only, (t, err) with both set:
// err is TAIL_DAMAGE and t is the tail truncation strict mode refused (Reason torn_tail or
// damaged_tail, which err's Detail names too), so that a caller can report what the default
// mode would cut without running recovery again. A caller must never carry out a truncation
// returned together with an error.
func Decide(ctx context.Context, r io.ReaderAt, size int64, cfg Config, d Damage) (*Truncation, error) {
	off := d.Offset
	switch d.Trouble {
	case TooLarge:
		n, err := lengthAt(ctx, r, off)
		if err != nil {
			return nil, err
		}
		return nil, tooLarge(off, n, cfg.MaxRecord)
	case LegacyOversize:
		var hb [format.LegacyHeaderSize]byte
		if err := walerr.ReadFullContext(ctx, r, hb[:], off); err != nil {
			return nil, err
		}
		h := format.DecodeLegacyHeader(hb[:])
		ok, err := newScanner(ctx, r, size).crcMatches(off+format.LegacyHeaderSize, h.Length, h.PayloadCRC)
		if err != nil {
			return nil, err
		}
		if ok {
			return nil, tooLarge(off, h.Length, cfg.MaxRecord)
		}
		d.Trouble, d.Detail = Damaged, "payload checksum mismatch"
	}

	tail := &Truncation{Offset: off, Bytes: size - off, Detail: d.Detail}
	var corrupt string // non-empty: why the damage is not a tail
	switch d.Trouble {
	case Short:
		tail.Reason = TornTail
	case Malformed:
		corrupt = "its checksum holds, so it was written whole, but it does not parse"
	case Torn:
		tail.Reason = TornTail
		search, err := tornNeedsSearch(ctx, r, size, cfg, off)
		if err != nil {
			return nil, err
		}
		if search {
			ev, err := FindEvidence(ctx, r, size, cfg, off, false)
			if err != nil {
				return nil, err
			}
			if ev.Found {
				corrupt = ev.String()
			}
		}
	case Damaged:
		tail.Reason = DamagedTail
		ev, err := FindEvidence(ctx, r, size, cfg, off, true)
		if err != nil {
			return nil, err
		}
		if ev.Found {
			corrupt = ev.String()
		}
	default:
		return nil, walerr.New(walerr.InvalidArgument, off, fmt.Sprintf("classify: unknown trouble %d", d.Trouble))
	}

	switch {
	case corrupt == "" && cfg.Mode == Strict:
		return tail, walerr.New(walerr.TailDamage, off,
			fmt.Sprintf("%s (%s); strict mode keeps the file as it is", d.Detail, tail.Reason)).
			WithHint("the file is untouched; open it in the default mode to cut the tail, or inspect it with walrec verify")
	case corrupt == "":
		return tail, nil
	case cfg.Mode == PointInTime:
		tail.Reason = Corrupt
		tail.Detail = d.Detail + "; " + corrupt
		return tail, nil
	}
	return nil, walerr.New(walerr.CorruptWAL, off, d.Detail+"; "+corrupt).
		WithHint("acknowledged records may follow, so nothing was cut and the file is untouched; " +
			"point-in-time mode salvages the records before this offset")
}

// tornNeedsSearch says whether a torn v1 record at off (its header's self-checksum holds and
// its declared end passes size) needs the search for evidence. A length at most the maximum
// record size does not: the header proves the record's extent, so every byte of [off, size) is
// that append's own unfinished payload, and anything shaped like a record in it is the value
// being written (docs/classification.md, the torn-tail rule). A length over
// the maximum does: an erased 0xFF header checks out with length 0xFFFFFFFF.
//
// The header is read again rather than taken on the source's word, so that this rule is
// decided here, from the bytes, whatever produced the Damage.
func tornNeedsSearch(ctx context.Context, r io.ReaderAt, size int64, cfg Config, off int64) (bool, error) {
	if size-off < format.V1HeaderSize {
		return true, nil // not a torn header at all: let the search decide
	}
	var hb [format.V1HeaderSize]byte
	if err := walerr.ReadFullContext(ctx, r, hb[:], off); err != nil {
		return false, err
	}
	h := format.DecodeV1Header(hb[:])
	proven := cfg.Layout == format.LayoutV1 && h.SelfCheckOK() && h.Length != 0 && h.Length <= cfg.MaxRecord &&
		off+format.V1HeaderSize+int64(h.Length) > size
	return !proven, nil
}

// lengthAt reads the length word at off, for messages only: a failed read says 0, and only a
// done ctx (no read starts then) is an error.
func lengthAt(ctx context.Context, r io.ReaderAt, off int64) (uint32, error) {
	var b [4]byte
	if err := walerr.ReadFullContext(ctx, r, b[:], off); err != nil {
		if walerr.CodeOf(err) == walerr.Canceled {
			return 0, err
		}
		return 0, nil
	}
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}
