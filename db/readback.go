package db

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/walerr"
)

// readBack fills items[i] with the pair of entry order[i] (entries in file order): its key,
// and its value, read from f through a window. Each record holding a value is read whole and
// checked against its header (length and CRC) again, once however many of its values it gives.
func (l *loader) readBack(ctx context.Context, f interface {
	ReadAt([]byte, int64) (int, error)
}, size int64, order []int32, items []item) error {
	var total int64 // what the pairs arena will hold: pairs of at least bigItem are allocated alone
	for _, i := range order {
		if n := int(l.ix.tab[i].klen) + int(l.ix.tab[i].vlen); n < bigItem {
			total += int64(n)
		}
	}
	pairs := newArenaFor(total)
	rb := recordReader{f: f, size: size, hdr: l.hdr}
	for n := 0; n < len(order); {
		e := &l.ix.tab[order[n]]
		start := l.recordOf(e)
		end := start + int64(l.hdr) + int64(e.plen)
		m := n // the entries of this record: [n, m)
		for ; m < len(order) && l.recordOf(&l.ix.tab[order[m]]) == start; m++ {
			e := &l.ix.tab[order[m]]
			key := l.ix.keyOf(e)
			kv := pairs.alloc(len(key) + int(e.vlen)) // the store keeps it
			copy(kv, key)
			items[m] = item{kv: kv, klen: uint32(len(key))}
		}
		reach := end                // when the window must move: how far to read, the records after this one
		if !rb.covers(start, end) { // included while the gaps between them are small
			for j := m; j < len(order); j++ {
				next := l.recordOf(&l.ix.tab[order[j]])
				nextEnd := next + int64(l.hdr) + int64(l.ix.tab[order[j]].plen)
				if next-reach > readGap || nextEnd-start > readWindow {
					break
				}
				reach = max(reach, nextEnd)
			}
		}
		// b: the file's bytes at off; from: the first value of the record not yet complete
		from, same := n, true
		if err := rb.read(ctx, start, end, reach, func(off int64, b []byte) {
			if same {
				var done int
				done, same = fillValues(l.ix.tab, order[from:m], items[from:m], off, b)
				from += done
			}
		}); err != nil {
			return err
		}
		if !same {
			return fileChanged(start, "ops")
		}
		n = m
	}
	// Each part sorts its own pairs by key, in parallel; finish merges the sorted parts.
	slices.SortFunc(items, func(a, b item) int { return bytes.Compare(a.key(), b.key()) })
	return nil
}

// fillValues copies b, the file's bytes at off, into the values of the entries order[i]
// (items[i].value()), which are in file order, and returns how many of them, from the first,
// are complete once b is copied. The pieces of a record come in file order, so the caller
// starts the next piece at the first value not complete: each piece visits only the values it
// reaches, and a record of v values streamed in p pieces costs v+p visits, not v*p (a 22 MiB
// record of 400,000 values took 1.4 s to read back, quadratically more as it grew).
//
// It also checks, in the bytes of b, that each value is still preceded by the op that set it
// (a set's tag, the key's length, the key, the value's length), and reports false when one is
// not: the record was rewritten since replay with one of the same length and a valid checksum
// (a writer that cut a failed append and wrote another in its place while a read-only open was
// between replay and read-back), and the value would be served under another op's key.
func fillValues(tab []entry, order []int32, items []item, off int64, b []byte) (done int, ok bool) {
	end := off + int64(len(b))
	for i, j := range order {
		e, it := &tab[j], items[i]
		v := it.value()
		if !opBefore(e.voff, it.key(), len(v), off, b) {
			return done, false
		}
		if lo, hi := max(off, e.voff), min(end, e.voff+int64(len(v))); lo < hi {
			copy(v[lo-e.voff:], b[lo-off:hi-off])
		}
		if e.voff+int64(len(v)) > end { // it goes on past b (and the values after it start past b)
			break
		}
		done = i + 1
	}
	return done, true
}

// opBefore reports whether b, the file's bytes at off, agree with a set op of key whose value
// of vlen bytes starts at file offset voff, wherever the two overlap (the op's framing and key
// come just before its value: tag 1, the key's length, the key, the value's length).
func opBefore(voff int64, key []byte, vlen int, off int64, b []byte) bool {
	var frame [9]byte
	frame[0] = byte(format.OpSet)
	binary.BigEndian.PutUint32(frame[1:], uint32(len(key)))
	binary.BigEndian.PutUint32(frame[5:], uint32(vlen))
	kat := voff - 4 - int64(len(key)) // where the key starts
	return agree(b, off, kat-5, frame[:5]) && agree(b, off, kat, key) && agree(b, off, voff-4, frame[5:])
}

// agree reports whether b (the file's bytes at off) and want (the bytes expected at file
// offset at) are equal where they overlap.
func agree(b []byte, off, at int64, want []byte) bool {
	lo, hi := max(off, at), min(off+int64(len(b)), at+int64(len(want)))
	return lo >= hi || bytes.Equal(b[lo-off:hi-off], want[lo-at:hi-at])
}

// fileChanged is the error of a record at start that no longer matches, in what, the record
// replay verified there.
func fileChanged(start int64, what string) error {
	return walerr.New(walerr.IO, start, fmt.Sprintf(
		"a record read back at open no longer matches its %s as verified during replay: the file changed during open", what)).
		WithHint("reopen; a cut recovery had already made stays, its bytes in the sidecar")
}

// recordOf is the file offset of the record holding e's value.
func (l *loader) recordOf(e *entry) int64 { return e.voff - int64(e.vpos) - int64(l.hdr) }

// recordReader reads records back through a window, checking each against its header.
type recordReader struct {
	f interface {
		ReadAt([]byte, int64) (int, error)
	}
	size   int64
	hdr    int
	win    []byte
	wstart int64 // file offset of win[0]
}

// covers reports whether the window holds [start, end).
func (rb *recordReader) covers(start, end int64) bool {
	return start >= rb.wstart && end <= rb.wstart+int64(len(rb.win))
}

// read reads the record at [start, end) (header included), hands its payload's bytes to use
// (in one or more pieces, in order, each with its file offset) and checks that the header
// still gives the payload's length and CRC, as when the record was verified. When the window
// must move, it reads [start, reach): the records after this one that the caller will ask for.
func (rb *recordReader) read(ctx context.Context, start, end, reach int64, use func(off int64, b []byte)) error {
	hdr := int64(rb.hdr)
	changed := func(what string) error { return fileChanged(start, what) }
	if rb.win == nil {
		rb.win = make([]byte, 0, readWindow) // holds nothing yet
	}
	if end-start <= int64(cap(rb.win)) { // the usual case: the record fits in the window
		if !rb.covers(start, end) {
			if err := ctx.Err(); err != nil { // once per window: a cancel stops the read-back
				return walerr.Wrap(walerr.Canceled, start, err, "open stopped while reading the store back")
			}
			if end > rb.size {
				return changed("extent")
			}
			rb.wstart, rb.win = start, rb.win[:min(int64(cap(rb.win)), rb.size-start, max(reach, end)-start)]
			if err := walerr.ReadFull(rb.f, rb.win, start); err != nil {
				return err
			}
		}
		rec := rb.win[start-rb.wstart : end-rb.wstart]
		if int64(binary.BigEndian.Uint32(rec)) != end-start-hdr {
			return changed("length")
		}
		if format.Checksum(rec[hdr:]) != binary.BigEndian.Uint32(rec[hdr-4:]) {
			return changed("checksum")
		}
		use(start+hdr, rec[hdr:])
		return nil
	}
	// A record larger than the window: streamed through it, checksummed piece by piece, each
	// piece handed on as it is read (so what is kept is exactly what was checked).
	if end > rb.size {
		return changed("extent")
	}
	head := rb.win[:hdr]
	if err := walerr.ReadFull(rb.f, head, start); err != nil {
		return err
	}
	want := binary.BigEndian.Uint32(head[hdr-4:])
	if int64(binary.BigEndian.Uint32(head)) != end-start-hdr {
		return changed("length")
	}
	var crc uint32
	for off := start + hdr; off < end; {
		if err := ctx.Err(); err != nil {
			return walerr.Wrap(walerr.Canceled, off, err, "open stopped while reading the store back")
		}
		piece := rb.win[:min(int64(cap(rb.win)), end-off)]
		if err := walerr.ReadFull(rb.f, piece, off); err != nil {
			return err
		}
		crc = format.UpdateChecksum(crc, piece)
		use(off, piece)
		off += int64(len(piece))
	}
	rb.wstart, rb.win = 0, rb.win[:0] // the window holds none of the file now
	if crc != want {
		return changed("checksum")
	}
	return nil
}
