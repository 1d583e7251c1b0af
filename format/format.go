// Package format is the log's byte layout, in one place, in both directions: the encoder the
// writer uses and the decoders recovery uses. It is the TypeScript LibreDB kernel's layout, byte
// for byte (docs/format.md describes it, with an example taken apart byte by byte).
//
// A v1 file:
//
//	+------+---------+----------+   +-----------+-----------+------------+-------------+
//	| LRDB | ver u16 | rsvd u16 |   | len u32   | crc(len)  | crc(payld) | payload ... |  ...
//	+------+---------+----------+   +-----------+-----------+------------+-------------+
//	 0      4         6         8    record header, 12 bytes               len bytes
//
// A legacy (LibreDB 0.1.x) file has no file header; records start at offset 0 and their header
// is 8 bytes: len u32, crc(payload) u32. All integers are big-endian; the CRC is CRC-32 IEEE.
//
// A payload is one committed transaction: its ops back to back,
//
//	set:    0x01 | keyLen u32 | key | valLen u32 | value
//	delete: 0x00 | keyLen u32 | key
//
// and it is well-formed when it parses to its exact end. A zero-length payload never is.
package format

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/klauspost/crc32"
)

// Sizes of the fixed parts of the layout.
const (
	FileHeaderSize   = 8
	V1HeaderSize     = 12
	LegacyHeaderSize = 8
	// Version is the only file-format version this package reads and writes.
	Version = 1
)

// FileHeader is the v1 file header: magic "LRDB", version 1, reserved zero.
var FileHeader = [FileHeaderSize]byte{'L', 'R', 'D', 'B', 0, 1, 0, 0}

// Layout is one of the two record layouts.
type Layout uint8

const (
	// LayoutUnknown is the zero value: an empty file, or one refused before its layout was known.
	LayoutUnknown Layout = iota
	// LayoutLegacy is the headerless layout of LibreDB 0.1.x: 8-byte record headers from offset 0.
	LayoutLegacy
	// LayoutV1 is the current layout: an 8-byte file header, then 12-byte record headers.
	LayoutV1
)

func (l Layout) String() string {
	switch l {
	case LayoutLegacy:
		return "legacy"
	case LayoutV1:
		return "v1"
	}
	return "unknown"
}

// HeaderSize is the size of one record header in this layout.
func (l Layout) HeaderSize() int {
	if l == LayoutLegacy {
		return LegacyHeaderSize
	}
	return V1HeaderSize
}

// FirstRecord is the offset of the first record in a file of this layout.
func (l Layout) FirstRecord() int64 {
	if l == LayoutV1 {
		return FileHeaderSize
	}
	return 0
}

var ieee = crc32.MakeTable(crc32.IEEE)

// Checksum is CRC-32 IEEE of p (SIMD-accelerated where the CPU allows).
func Checksum(p []byte) uint32 { return crc32.ChecksumIEEE(p) }

// UpdateChecksum extends a running CRC-32 IEEE with p.
func UpdateChecksum(crc uint32, p []byte) uint32 { return crc32.Update(crc, ieee, p) }

// LengthChecksum is the v1 header's self-checksum: CRC-32 IEEE of the 4 big-endian bytes of n.
// It is table-driven and inlined by hand because it runs once per record and, on the failure
// path, once per byte offset of the evidence search.
func LengthChecksum(n uint32) uint32 {
	c := ^uint32(0)
	c = lenTab[byte(c)^byte(n>>24)] ^ (c >> 8)
	c = lenTab[byte(c)^byte(n>>16)] ^ (c >> 8)
	c = lenTab[byte(c)^byte(n>>8)] ^ (c >> 8)
	c = lenTab[byte(c)^byte(n)] ^ (c >> 8)
	return ^c
}

var lenTab = func() (t [256]uint32) {
	for i := range t {
		c := uint32(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ 0xEDB88320
			} else {
				c >>= 1
			}
		}
		t[i] = c
	}
	return t
}()

// V1Header is a decoded v1 record header.
type V1Header struct {
	Length     uint32 // payload length
	LengthCRC  uint32 // crc32 of the length's 4 bytes, as stored
	PayloadCRC uint32 // crc32 of the payload, as stored
}

// DecodeV1Header decodes the first 12 bytes of b, which must hold them.
func DecodeV1Header(b []byte) V1Header {
	_ = b[11]
	return V1Header{
		Length:     binary.BigEndian.Uint32(b[0:]),
		LengthCRC:  binary.BigEndian.Uint32(b[4:]),
		PayloadCRC: binary.BigEndian.Uint32(b[8:]),
	}
}

// SelfCheckOK reports whether the header's length field matches its self-checksum.
func (h V1Header) SelfCheckOK() bool { return LengthChecksum(h.Length) == h.LengthCRC }

// LegacyHeader is a decoded legacy (8-byte) record header.
type LegacyHeader struct {
	Length     uint32
	PayloadCRC uint32
}

// DecodeLegacyHeader decodes the first 8 bytes of b, which must hold them.
func DecodeLegacyHeader(b []byte) LegacyHeader {
	_ = b[7]
	return LegacyHeader{Length: binary.BigEndian.Uint32(b[0:]), PayloadCRC: binary.BigEndian.Uint32(b[4:])}
}

// AppendRecord appends one record holding payload, in the given layout, to dst.
// It does not write the file header; see FileHeader.
func AppendRecord(dst []byte, layout Layout, payload []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, layout.HeaderSize())...)
	PutHeader(dst[n:], layout, uint32(len(payload)), Checksum(payload))
	return append(dst, payload...)
}

// PutHeader writes the header of a record whose payload is n bytes with checksum crc into
// h[:layout.HeaderSize()] (for a writer that gathers the payload in pieces).
func PutHeader(h []byte, layout Layout, n, crc uint32) {
	binary.BigEndian.PutUint32(h, n)
	if layout == LayoutLegacy {
		binary.BigEndian.PutUint32(h[4:], crc)
		return
	}
	binary.BigEndian.PutUint32(h[4:], LengthChecksum(n))
	binary.BigEndian.PutUint32(h[8:], crc)
}

// OpKind is an op's tag byte.
type OpKind uint8

const (
	OpDelete OpKind = 0
	OpSet    OpKind = 1
)

func (k OpKind) String() string {
	if k == OpSet {
		return "set"
	}
	return "delete"
}

// Op is one mutation. Decoded ops alias the payload they came from.
type Op struct {
	Kind  OpKind
	Key   []byte
	Value []byte // nil for a delete
}

// AppendSet appends a set op to a payload.
func AppendSet(dst, key, value []byte) []byte {
	dst = append(dst, byte(OpSet))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(value)))
	return append(dst, value...)
}

// AppendDelete appends a delete op to a payload.
func AppendDelete(dst, key []byte) []byte {
	dst = append(dst, byte(OpDelete))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)))
	return append(dst, key...)
}

// AppendOp appends op to a payload.
func AppendOp(dst []byte, op Op) []byte {
	if op.Kind == OpSet {
		return AppendSet(dst, op.Key, op.Value)
	}
	return AppendDelete(dst, op.Key)
}

// ErrMalformed is returned for a payload that does not parse to its exact end.
var ErrMalformed = errors.New("format: malformed payload")

// MalformedError says where in a payload parsing failed. It unwraps to ErrMalformed.
type MalformedError struct {
	At     int    // byte offset within the payload
	Detail string // what was wrong there
}

func (e *MalformedError) Error() string {
	return fmt.Sprintf("format: malformed payload at byte %d: %s", e.At, e.Detail)
}
func (e *MalformedError) Unwrap() error { return ErrMalformed }

// CountOps walks payload and returns its number of ops, or a *MalformedError.
// It validates exactly what the decoder relies on, so a payload it accepts always decodes.
func CountOps(payload []byte) (int, error) {
	if len(payload) == 0 {
		return 0, &MalformedError{At: 0, Detail: "empty payload (a record holds at least one op)"}
	}
	if uint64(len(payload)) > math.MaxUint32 {
		return 0, &MalformedError{At: 0, Detail: "payload of 4 GiB or more (a record's length is a uint32)"}
	}
	it := Iter(payload)
	n := 0
	for it.Next() {
		n++
	}
	if q := int(it.at >> 32); q < len(payload) { // Next stopped at a malformed op
		return n, &MalformedError{At: q, Detail: whyMalformed(payload, q)}
	}
	return n, nil
}

// whyMalformed says what is wrong with the op at q, which OpIter.Next refused.
func whyMalformed(p []byte, q int) string {
	tag := p[q]
	if tag > byte(OpSet) {
		return fmt.Sprintf("unknown op tag 0x%02x", tag)
	}
	q++
	for field := 0; field <= int(tag); field++ {
		if len(p)-q < 4 {
			return "length field cut off by the end of the payload"
		}
		l := binary.BigEndian.Uint32(p[q:])
		q += 4
		if uint64(l) > uint64(len(p)-q) {
			return fmt.Sprintf("length %d runs past the end of the payload", l)
		}
		q += int(l)
	}
	return "malformed op" // not reached: Next refused it
}

// OpIter decodes the ops of a payload that CountOps accepted, without allocating.
// The op it yields aliases the payload and is replaced by the next call to Next.
//
// The idiom, in a hot loop, is
//
//	it := format.Iter(payload) // or r.Ops() for a recovered Record
//	for it.Next() {
//		use(it.Kind(), it.Key(), it.Value())
//	}
//
// An OpIter is 32 bytes, small enough for the compiler to keep it in registers; it.Kind, Key and
// Value hand out one part each. Larger values (an Op is 56 bytes; so was the iterator, and
// `for it := ...; it.Next(); {}` copies its variable at every iteration) are copied through
// memory as blocks just after being stored field by field, which stalls the CPU: those copies
// were a third of the ordered applier's time per record (BenchmarkApplyBatch in internal/replay).
type OpIter struct {
	p  []byte // the payload from the current op on (before the first Next: all of it)
	at uint64 // offset of p in the payload << 32 | length of the current op (0: none yet)
}

// Iter returns an iterator over payload's ops. A payload of 4 GiB or more (which no record can
// hold: its length is a uint32) yields no op.
func Iter(payload []byte) OpIter {
	if uint64(len(payload)) > math.MaxUint32 {
		return OpIter{}
	}
	return OpIter{p: payload}
}

// Next decodes the next op in one pass, the one check of an op's framing there is (CountOps
// counts with it); it returns false at the end, or at a malformed op (a tag that is not an op's,
// a length field cut off or running past the end), where it stays: no op is current, and Next
// keeps returning false.
func (it *OpIter) Next() bool {
	cur := int(it.at & math.MaxUint32)
	p := it.p[cur:]
	base := it.at>>32 + uint64(cur)
	var kl, vl uint32
	n := 5
	if len(p) < 5 || p[0] > byte(OpSet) {
		goto stop
	}
	kl = binary.BigEndian.Uint32(p[1:])
	if uint64(kl) > uint64(len(p)-n) {
		goto stop
	}
	n += int(kl)
	if p[0] == byte(OpSet) {
		if len(p)-n < 4 {
			goto stop
		}
		vl = binary.BigEndian.Uint32(p[n:])
		if uint64(vl) > uint64(len(p)-n-4) {
			goto stop
		}
		n += 4 + int(vl)
	}
	it.p, it.at = p, base<<32|uint64(n)
	return true
stop:
	it.p, it.at = p, base<<32
	return false
}

// cur is the current op's bytes, nil before the first Next and after the last.
func (it *OpIter) cur() []byte {
	n := int(it.at & math.MaxUint32)
	return it.p[:n:n]
}

// Kind is the kind of the op decoded by the last call to Next.
func (it *OpIter) Kind() OpKind {
	if c := it.cur(); len(c) > 0 {
		return OpKind(c[0])
	}
	return OpDelete
}

// Key is the key of the op decoded by the last call to Next (aliasing the payload, capacity
// capped).
func (it *OpIter) Key() []byte {
	c := it.cur()
	if len(c) == 0 {
		return nil
	}
	e := 5 + int(binary.BigEndian.Uint32(c[1:]))
	return c[5:e:e]
}

// Value is the value of the op decoded by the last call to Next: a set's value (aliasing the
// payload, capacity capped), nil for a delete.
func (it *OpIter) Value() []byte {
	c := it.cur()
	if len(c) == 0 || c[0] != byte(OpSet) {
		return nil
	}
	return c[9+int(binary.BigEndian.Uint32(c[1:])):]
}

// KeyOffset is the offset in the payload of the key of the op decoded by the last call to Next.
func (it *OpIter) KeyOffset() int {
	if len(it.cur()) < 5 {
		return 0
	}
	return int(it.at>>32) + 5
}

// ValueOffset is the offset in the payload of the value of the op decoded by the last call to
// Next (a set: where a store can find it again in the file).
func (it *OpIter) ValueOffset() int {
	c := it.cur()
	if len(c) < 5 {
		return 0
	}
	return int(it.at>>32) + 9 + int(binary.BigEndian.Uint32(c[1:]))
}

// Op returns the op decoded by the last call to Next (Kind, Key and Value: cheaper one at a
// time in a hot loop).
func (it *OpIter) Op() Op {
	return Op{Kind: it.Kind(), Key: it.Key(), Value: it.Value()}
}

// AppendOps decodes payload's ops onto dst. The ops alias payload.
func AppendOps(dst []Op, payload []byte) ([]Op, error) {
	if _, err := CountOps(payload); err != nil {
		return dst, err
	}
	it := Iter(payload)
	for it.Next() {
		dst = append(dst, it.Op())
	}
	return dst, nil
}
