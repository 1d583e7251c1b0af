package main

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"

	"github.com/streamwal/recovery/format"
)

// opHeader is the size of a set op's framing around an 8-byte key:
// tag (1) + keyLen (4) + key (8) + valLen (4).
const (
	keySize  = 8
	opHeader = 1 + 4 + keySize + 4
	// MinPayload leaves room for the 8-byte record number the value starts with and 8 more bytes.
	MinPayload = opHeader + 16
)

// Workload is the logical log every system writes: Records payloads of exactly Size bytes.
//
// Every payload is one set op in this project's op encoding (format.AppendSet):
//
//	0x01 | keyLen=8 | key (8 B, big-endian record number mod Keys) | valLen | value
//
// and the very same bytes are handed to every system as its record/entry payload, so that each
// system stores and returns byte-identical payloads. value begins with the record number
// (8 bytes, big-endian) followed by pseudo-random bytes taken from a fixed-seed pool.
type Workload struct {
	Size    int // payload bytes per record
	Records int
	Keys    int // key space: key = record number mod Keys
}

// PayloadBytes is the logical payload volume of the workload.
func (w Workload) PayloadBytes() int64 { return int64(w.Size) * int64(w.Records) }

func (w Workload) check() error {
	switch {
	case w.Size < MinPayload:
		return fmt.Errorf("payload size %d < %d", w.Size, MinPayload)
	case w.Records < 1:
		return fmt.Errorf("records %d < 1", w.Records)
	case w.Keys < 1:
		return fmt.Errorf("keys %d < 1", w.Keys)
	}
	return nil
}

// pool is the source of the pseudo-random bytes: 1 MiB + 64 KiB from a fixed-seed PCG.
var pool = func() []byte {
	const n = 1<<20 + 64<<10
	r := rand.New(rand.NewPCG(0x5eed, 0x0f_1e_57))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}()

// Payload appends record i's payload to dst.
func (w Workload) Payload(dst []byte, i int) []byte {
	var key [keySize]byte
	binary.BigEndian.PutUint64(key[:], uint64(i%w.Keys))
	vlen := w.Size - opHeader
	dst = append(dst, byte(format.OpSet))
	dst = binary.BigEndian.AppendUint32(dst, keySize)
	dst = append(dst, key[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(vlen))
	dst = binary.BigEndian.AppendUint64(dst, uint64(i))
	// A pseudo-random window of the pool, different for each record.
	h := uint64(i)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019
	h ^= h >> 29
	off := int(h % uint64(len(pool)-(vlen-8)))
	return append(dst, pool[off:off+vlen-8]...)
}

// Expected replays the workload through a sink without any log in between: the digest and
// counts every system's replay must reproduce.
func (w Workload) Expected(mode Mode) *Sink {
	s := NewSink(mode)
	var buf []byte
	for i := range w.Records {
		buf = w.Payload(buf[:0], i)
		s.Payload(buf)
	}
	return s
}

// Mode is what a replay does with each record.
type Mode string

const (
	// Discard touches every payload (see Sink.Op) and keeps nothing.
	Discard Mode = "discard"
	// Map touches every payload and also applies it to an in-memory map:
	// m[key] = copy of value.
	Map Mode = "map"
)

// Sink is the one applier every system replays into, so that the per-record work after the
// system hands over a record is identical for all of them.
type Sink struct {
	mode    Mode
	Records int64
	Bytes   int64 // payload bytes (the set op's full encoding: 17 + len(value))
	Digest  uint64
	m       map[uint64][]byte
}

// NewSink returns an empty sink.
func NewSink(mode Mode) *Sink {
	s := &Sink{mode: mode}
	if mode == Map {
		s.m = make(map[uint64][]byte)
	}
	return s
}

// Op takes one decoded set op. It "touches" the payload by folding three 8-byte words into an
// order-sensitive digest: the key, the first 8 bytes of the value and the last 8 bytes of the
// value (plus the value's length). In Map mode it also stores a copy of the value under the key.
func (s *Sink) Op(key, val []byte) {
	if len(key) != keySize || len(val) < 16 {
		panic(fmt.Sprintf("peers: unexpected op: key %d bytes, value %d bytes", len(key), len(val)))
	}
	k := binary.BigEndian.Uint64(key)
	x := k ^ binary.LittleEndian.Uint64(val) ^ binary.LittleEndian.Uint64(val[len(val)-8:]) ^ uint64(len(val))
	s.Digest = (s.Digest ^ x) * 0x100000001B3
	s.Records++
	s.Bytes += int64(opHeader + len(val))
	if s.m != nil {
		s.m[k] = append([]byte(nil), val...)
	}
}

// Payload decodes a raw payload with this project's op iterator (format.Iter, the same decoder
// Record.Ops() uses) and feeds its op to Op. Systems that hand back raw payloads use this.
func (s *Sink) Payload(p []byte) {
	n := 0
	it := format.Iter(p)
	for ; it.Next(); n++ {
		s.Op(it.Key(), it.Value())
	}
	if n != 1 {
		panic(fmt.Sprintf("peers: payload of %d bytes decoded to %d ops, want 1", len(p), n))
	}
}

// MapLen is the number of keys in the map (0 in Discard mode).
func (s *Sink) MapLen() int { return len(s.m) }

// Same reports whether two sinks saw the same records in the same order.
func (s *Sink) Same(o *Sink) error {
	if s.Records != o.Records || s.Bytes != o.Bytes || s.Digest != o.Digest || len(s.m) != len(o.m) {
		return fmt.Errorf("records %d/%d, bytes %d/%d, digest %016x/%016x, map keys %d/%d",
			s.Records, o.Records, s.Bytes, o.Bytes, s.Digest, o.Digest, len(s.m), len(o.m))
	}
	return nil
}
