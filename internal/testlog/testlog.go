// Package testlog builds logs and files for tests and benchmarks: random transactions in
// either layout and an in-memory WritableFile that counts writes. Readers that fail, lie,
// stall or panic on command are internal/faults'. It uses the project's encoder (format); the
// oracle in tests/oracle does not.
package testlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/streamwal/recovery/format"
)

// Log is an encoded log and where its records start.
type Log struct {
	Layout  format.Layout
	Bytes   []byte
	Offsets []int64 // offset of each record
}

// Build encodes payloads as a log in layout (v1 gets its file header).
func Build(layout format.Layout, payloads ...[]byte) Log {
	l := Log{Layout: layout}
	if layout == format.LayoutV1 {
		l.Bytes = append(l.Bytes, format.FileHeader[:]...)
	}
	for _, p := range payloads {
		l.Offsets = append(l.Offsets, int64(len(l.Bytes)))
		l.Bytes = format.AppendRecord(l.Bytes, layout, p)
	}
	return l
}

// Append adds one record.
func (l *Log) Append(payload []byte) {
	l.Offsets = append(l.Offsets, int64(len(l.Bytes)))
	l.Bytes = format.AppendRecord(l.Bytes, l.Layout, payload)
}

// RandomTx returns a well-formed payload of 1..maxOps ops over a small key space, with values
// of up to maxValue bytes.
func RandomTx(rng *rand.Rand, maxOps, maxValue int) []byte {
	var p []byte
	for range 1 + rng.IntN(maxOps) {
		key := fmt.Appendf(nil, "k%03d", rng.IntN(64))
		if rng.IntN(4) == 0 {
			p = format.AppendDelete(p, key)
			continue
		}
		v := make([]byte, rng.IntN(maxValue+1))
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		p = format.AppendSet(p, key, v)
	}
	return p
}

// SizedTx returns a one-set payload of exactly size bytes (size >= 13) with key "k%04d"
// over nkeys keys: the shape benchmarks use.
func SizedTx(rng *rand.Rand, size, nkeys int) []byte {
	key := fmt.Appendf(nil, "k%04d", rng.IntN(nkeys))
	v := make([]byte, size-9-len(key))
	for i := 0; i+8 <= len(v); i += 8 {
		binary.LittleEndian.PutUint64(v[i:], rng.Uint64())
	}
	return format.AppendSet(nil, key, v)
}

// RandomLog is a log of n random transactions.
func RandomLog(seed uint64, layout format.Layout, n, maxOps, maxValue int) Log {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	l := Build(layout)
	for range n {
		l.Append(RandomTx(rng, maxOps, maxValue))
	}
	return l
}

// MemFile is an in-memory recovery.WritableFile that records what was done to it.
type MemFile struct {
	mu        sync.Mutex
	Data      []byte
	Truncates int
	Syncs     int
}

// NewMemFile returns a MemFile holding a copy of b.
func NewMemFile(b []byte) *MemFile { return &MemFile{Data: append([]byte(nil), b...)} }

func (f *MemFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(f.Data)) {
		return 0, io.EOF
	}
	n := copy(p, f.Data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *MemFile) Size() int64 { f.mu.Lock(); defer f.mu.Unlock(); return int64(len(f.Data)) }

func (f *MemFile) Truncate(n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Truncates++
	if n < int64(len(f.Data)) {
		f.Data = f.Data[:n]
	}
	return nil
}

func (f *MemFile) Sync() error { f.mu.Lock(); defer f.mu.Unlock(); f.Syncs++; return nil }

// Reader is a recovery.File over b that can misbehave: fail call FailAt (1-based), or every
// read from offset FailFrom on, with Err;
// return a short read (half the bytes and io.EOF) at call ShortAt, deliver at most Chunk bytes
// per call with a nil error, and record the largest read it was asked for.
//
// Deprecated: use internal/faults (faults.OnCall(n).Fail, StartingFrom(x).Fail,
// OnCall(n).Half(io.EOF), Always().Short(n, nil), Reader.MaxLen). Kept only for
// cmd/walrec's TestReadFaults, until that suite moves to faults.
type Reader struct {
	B        []byte
	FailAt   int64
	FailFrom int64 // if > 0, every read at or past this offset fails with Err
	Err      error
	ShortAt  int64
	Chunk    int

	Calls   atomic.Int64
	MaxRead atomic.Int64
	Fired   atomic.Int64 // faults that fired
}

func (r *Reader) Size() int64 { return int64(len(r.B)) }

func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	call := r.Calls.Add(1)
	for {
		m := r.MaxRead.Load()
		if int64(len(p)) <= m || r.MaxRead.CompareAndSwap(m, int64(len(p))) {
			break
		}
	}
	if call == r.FailAt || r.FailFrom > 0 && off >= r.FailFrom {
		r.Fired.Add(1)
		err := r.Err
		if err == nil {
			err = ErrInjected
		}
		return 0, err
	}
	if off >= int64(len(r.B)) {
		return 0, io.EOF
	}
	want := p
	if r.Chunk > 0 && len(want) > r.Chunk {
		want = want[:r.Chunk]
	}
	if call == r.ShortAt && len(want) > 1 {
		r.Fired.Add(1)
		n := copy(want[:len(want)/2], r.B[off:])
		return n, io.EOF
	}
	n := copy(want, r.B[off:])
	if n < len(p) && off+int64(n) >= int64(len(r.B)) {
		return n, io.EOF
	}
	return n, nil
}

// ErrInjected is the default injected read error.
var ErrInjected = errors.New("testlog: injected read fault")
