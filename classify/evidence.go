package classify

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/walerr"
)

// Evidence is the answer of the search: does [off, S) prove that a later append began?
type Evidence struct {
	Found     bool
	Rule      string // which rule found it: "1a", "1b", "2", "2-verified", "3", or "budget"
	At        int64  // where
	Exhausted bool   // the work budget ran out first; treated as evidence (the safe answer)
}

func (e Evidence) String() string {
	switch {
	case !e.Found:
		return "no evidence of a later write"
	case e.Exhausted:
		return fmt.Sprintf("the search for evidence of a later write ran out of its work budget at offset %d, so the bytes cannot be proven to be debris", e.At)
	}
	what := map[string]string{
		"1a":         "the damaged record's own header is intact and bytes follow its declared end",
		"1b":         "the damaged record's payload matches its checksum (only its header rotted)",
		"2":          "a record header with a valid self-checksum",
		"2-verified": "a whole verifiable record",
		"3":          "a whole record in the 8-byte legacy framing",
	}[e.Rule]
	return fmt.Sprintf("evidence of a later write: %s at offset %d", what, e.At)
}

// Budget returns the work budget for a search of [off, size): 4 units per byte plus 1 MiB.
func Budget(size, off int64) int64 { return 4*(size-off) + 1<<20 }

// FindEvidence searches [off, size) for evidence of a later write (docs/classification.md).
// damaged is true for a damaged record (rule 1 applies), false for a torn one.
func FindEvidence(ctx context.Context, r io.ReaderAt, size int64, cfg Config, off int64, damaged bool) (Evidence, error) {
	sc := newScanner(ctx, r, size, Budget(size, off))
	ev, err := sc.search(cfg, off, damaged)
	if errors.Is(err, errExhausted) {
		return Evidence{Found: true, Rule: "budget", At: sc.at, Exhausted: true}, nil
	}
	return ev, err
}

func (sc *scanner) search(cfg Config, off int64, damaged bool) (Evidence, error) {
	v1 := cfg.Layout == format.LayoutV1
	size := sc.size
	if v1 && damaged && size-off >= format.V1HeaderSize {
		hb, err := sc.bytesAt(off, format.V1HeaderSize)
		if err != nil {
			return Evidence{}, err
		}
		h := format.DecodeV1Header(hb)
		end := off + format.V1HeaderSize + int64(h.Length)
		if h.SelfCheckOK() && end < size {
			return Evidence{Found: true, Rule: "1a", At: off}, nil
		}
		if !h.SelfCheckOK() && h.Length != 0 && end <= size {
			sc.at = off
			if err := sc.charge(int64(h.Length)); err != nil {
				return Evidence{}, err
			}
			ok, err := sc.crcMatches(off+format.V1HeaderSize, h.Length, h.PayloadCRC)
			if err != nil || ok {
				return Evidence{Found: ok, Rule: "1b", At: off}, err
			}
		}
	}

	w := &sc.win
	for p := off; p+8 <= size; p++ {
		if p+12 > w.base+int64(w.n) && w.base+int64(w.n) < size || p < w.base {
			if err := w.fill(sc, p); err != nil {
				return Evidence{}, err
			}
		}
		b := w.buf[p-w.base : w.n]
		sc.at = p
		l := binary.BigEndian.Uint32(b)
		if l == 0 {
			// No record has length 0, in either layout: no candidate starts where its four
			// length bytes are zero. In a run of zeros (a preallocated or sparse tail) the
			// next candidate is at most three bytes before the next non-zero byte: go there a
			// word at a time instead of a byte at a time.
			p += int64(zeroRun(b)) - 4 // the loop adds one: p+z-3, the first that can be
			continue
		}
		if v1 && p > off && format.LengthChecksum(l) == binary.BigEndian.Uint32(b[4:]) {
			if l <= cfg.MaxRecord {
				return Evidence{Found: true, Rule: "2", At: p}, nil
			}
			if int64(l) <= size-p-format.V1HeaderSize {
				if err := sc.charge(int64(l)); err != nil {
					return Evidence{}, err
				}
				want := binary.BigEndian.Uint32(b[8:])
				ok, err := sc.crcMatches(p+format.V1HeaderSize, l, want)
				if err != nil || ok {
					return Evidence{Found: ok, Rule: "2-verified", At: p}, err
				}
				b = w.buf[p-w.base : w.n] // only the loop refills win; b is still valid
			}
		}
		if (v1 || p > off) && int64(l) <= size-p-format.LegacyHeaderSize {
			want := binary.BigEndian.Uint32(b[4:])
			ok, err := sc.wellFormed(p+format.LegacyHeaderSize, l)
			if err == nil && ok {
				if err = sc.charge(int64(l)); err == nil {
					ok, err = sc.crcMatches(p+format.LegacyHeaderSize, l, want)
				}
			}
			if err != nil || ok {
				return Evidence{Found: ok, Rule: "3", At: p}, err
			}
		}
	}
	return Evidence{}, nil
}

// zeroRun is how many of b's leading bytes are zero (at least 4: the caller saw four).
func zeroRun(b []byte) int {
	i := 4
	for i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == 0 {
		i += 8
	}
	for i < len(b) && b[i] == 0 {
		i++
	}
	return i
}

var errExhausted = errors.New("classify: evidence search budget exhausted")

// scanner reads the file through three small fixed windows, whatever the file holds:
//
//   - win slides forward over the offsets being examined (the search loop refills it at p when
//     p's 12 bytes run past it);
//   - next holds the bytes just past win ([end of win - 16, + its size)), loaded once per
//     position of win, so that candidates near the end of win that read a little past it
//     (a length field straddling it, a short payload) share one read;
//   - far holds anything else a candidate's walk or checksum asks for, loaded at the offset
//     asked for.
//
// A byte is read from the file only when no window holds it, and no window is ever dropped.
// Whatever reaches far lies at least about 16 KiB past the candidate's own start, so the walk
// or checksum that asks for it has been charged for that distance: the bytes read are bounded
// by 1.34 times the bytes examined plus 1.25 times the work units charged (docs/classification.md,
// "Bytes read"), so the budget that bounds the work bounds the reads too.
type scanner struct {
	ctx    context.Context
	r      io.ReaderAt
	size   int64
	budget int64 // < 0: unlimited
	used   int64
	at     int64 // offset being examined, for the exhausted report
	win    window
	next   window
	far    window
	read   int64 // bytes asked of r
}

const (
	winSize  = 48 << 10
	sideSize = 16 << 10 // next and far each
	// nextBack is how far before the end of win next starts: enough for any read the search
	// makes at an offset win holds (at most a 12-byte header) to fit in next.
	nextBack = 16
)

func newScanner(ctx context.Context, r io.ReaderAt, size int64, budget ...int64) *scanner {
	sc := &scanner{ctx: ctx, r: r, size: size, budget: -1}
	if len(budget) == 1 {
		sc.budget = budget[0]
	}
	// Small files get small windows; large ones never more than winSize + 2*sideSize.
	sc.win.buf = make([]byte, min(winSize, max(size, 16)))
	sc.next.buf = make([]byte, min(sideSize, max(size, 16)))
	sc.far.buf = make([]byte, min(sideSize, max(size, 16)))
	return sc
}

func (sc *scanner) charge(units int64) error {
	if sc.budget < 0 {
		return nil
	}
	if sc.used+units > sc.budget {
		return errExhausted
	}
	sc.used += units
	return nil
}

type window struct {
	buf  []byte
	base int64
	n    int
}

func (w *window) end() int64 { return w.base + int64(w.n) }

// holds reports whether the window holds [off, off+n).
func (w *window) holds(off, n int64) bool { return off >= w.base && off+n <= w.end() }

// fill loads the window with the bytes at off (as many as fit and the file has).
func (w *window) fill(sc *scanner, off int64) error {
	if err := sc.ctx.Err(); err != nil {
		return walerr.Wrap(walerr.Canceled, off, err, "while searching for evidence")
	}
	n := int(min(int64(len(w.buf)), sc.size-off))
	sc.read += int64(n)
	if err := walerr.ReadFullContext(sc.ctx, sc.r, w.buf[:n], off); err != nil {
		w.n = 0
		return err
	}
	w.base, w.n = off, n
	return nil
}

// window returns a window holding [off, off+n) (n <= nextBack, or n = 1 to find the window
// for the first byte of a span), loading next or far when none holds it.
func (sc *scanner) window(off, n int64) (*window, error) {
	if sc.win.holds(off, n) {
		return &sc.win, nil
	}
	if sc.win.n > 0 && sc.win.end() < sc.size {
		base := max(sc.win.base, sc.win.end()-nextBack)
		if off >= base && off+n <= base+int64(len(sc.next.buf)) {
			if sc.next.base != base || sc.next.n == 0 {
				if err := sc.next.fill(sc, base); err != nil {
					return nil, err
				}
			}
			if sc.next.holds(off, n) {
				return &sc.next, nil
			}
		}
	}
	if !sc.far.holds(off, n) {
		if err := sc.far.fill(sc, off); err != nil {
			return nil, err
		}
	}
	return &sc.far, nil
}

// bytesAt returns the n bytes at off (n <= nextBack, off+n <= size).
func (sc *scanner) bytesAt(off int64, n int) ([]byte, error) {
	if off < 0 || n > nextBack || off+int64(n) > sc.size {
		return nil, walerr.New(walerr.InvalidArgument, off, fmt.Sprintf("classify: %d bytes at %d are outside a %d-byte file", n, off, sc.size))
	}
	w, err := sc.window(off, int64(n))
	if err != nil {
		return nil, err
	}
	return w.buf[off-w.base : off-w.base+int64(n)], nil
}

// span returns the first bytes (at least one, at most n) of [off, off+n), 0 <= off < size:
// as many as the window holding off holds.
func (sc *scanner) span(off, n int64) ([]byte, error) {
	w, err := sc.window(off, 1)
	if err != nil {
		return nil, err
	}
	i := off - w.base
	return w.buf[i : i+min(n, int64(w.n)-i)], nil
}

// crcMatches streams CRC-32 over [start, start+n) (within the file) and compares it with want,
// reading only what no window holds.
func (sc *scanner) crcMatches(start int64, n uint32, want uint32) (bool, error) {
	if start < 0 || start+int64(n) > sc.size {
		return false, nil // a payload that does not fit cannot match
	}
	var crc uint32
	for off, left := start, int64(n); left > 0; {
		b, err := sc.span(off, left)
		if err != nil {
			return false, err
		}
		crc = format.UpdateChecksum(crc, b)
		off, left = off+int64(len(b)), left-int64(len(b))
	}
	return crc == want, nil
}

// ChecksumMatches streams CRC-32 IEEE over [off, off+n) of r through scratch, whatever n is,
// and compares it with want. It is how a length that nothing vouches for yet (a legacy
// header's, a damaged header's) gets checked without sizing any buffer by it. An empty scratch
// (which could never make progress) or a negative extent is INVALID_ARGUMENT.
func ChecksumMatches(ctx context.Context, r io.ReaderAt, scratch []byte, off, n int64, want uint32) (bool, error) {
	if n < 0 || off < 0 || n > 0 && len(scratch) == 0 {
		return false, walerr.New(walerr.InvalidArgument, off,
			fmt.Sprintf("classify: checksum of %d bytes at %d through a %d-byte scratch", n, off, len(scratch)))
	}
	var crc uint32
	for n > 0 {
		if err := ctx.Err(); err != nil {
			return false, walerr.Wrap(walerr.Canceled, off, err, "while checking a record's checksum")
		}
		k := min(int64(len(scratch)), n)
		if err := walerr.ReadFullContext(ctx, r, scratch[:k], off); err != nil {
			return false, err
		}
		crc = format.UpdateChecksum(crc, scratch[:k])
		off, n = off+k, n-k
	}
	return crc == want, nil
}

// wellFormed walks the payload [start, start+n) as format.CountOps would, reading only op
// headers, charging 8 units for each tag byte it reads and l units for each key or value of
// length l it skips.
func (sc *scanner) wellFormed(start int64, n uint32) (bool, error) {
	q, end := start, start+int64(n)
	for q < end {
		if err := sc.charge(8); err != nil {
			return false, err
		}
		tb, err := sc.bytesAt(q, 1)
		if err != nil {
			return false, err
		}
		tag := tb[0]
		if tag > byte(format.OpSet) {
			return false, nil
		}
		q++
		for field := 0; field <= int(tag); field++ {
			if end-q < 4 {
				return false, nil
			}
			lb, err := sc.bytesAt(q, 4)
			if err != nil {
				return false, err
			}
			l := int64(binary.BigEndian.Uint32(lb))
			q += 4
			if l > end-q {
				return false, nil
			}
			// Skipping l bytes is charged l units: the window refills that a long skip
			// causes are then paid for, so the bytes read stay proportional to the budget.
			if err := sc.charge(l); err != nil {
				return false, err
			}
			q += l
		}
	}
	return n > 0, nil
}
