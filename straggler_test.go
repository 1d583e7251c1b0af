package recovery_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/internal/testlog"
)

// stalledFile is a MemFile whose reads go through r.
type stalledFile struct {
	*testlog.MemFile
	r *faults.Reader
}

func (f stalledFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }

// TestRecoverCutsBesideAStalledRead: a damaged header at offset 354 followed by zeros is a
// damaged tail, decided in the first chunk; read-ahead of the later chunks stalls. Recover
// decides, cuts the file and returns while the read-ahead is still stalled (before, it waited for it); the stalled reads then
// return on the cut file (short reads past its new end) and their results are dropped:
// nothing changes, nothing is left (goleak).
func TestRecoverCutsBesideAStalledRead(t *testing.T) {
	l := testlog.Build(format.LayoutV1, format.AppendSet(nil, []byte("key"), bytes.Repeat([]byte{'v'}, 52)))
	for len(l.Bytes) < 128<<10 {
		l.Append(format.AppendSet(nil, []byte("key"), bytes.Repeat([]byte{'v'}, 30)))
	}
	const at = 354
	data := bytes.Clone(l.Bytes)
	if !slices.Contains(l.Offsets, at) {
		t.Fatalf("setup: no record starts at %d", at)
	}
	data[at+4] ^= 0xFF                   // its self-checksum fails
	clear(data[at+format.V1HeaderSize:]) // and nothing but zeros follows: a damaged tail
	const rs = 4 << 10
	// The chunk reads (exactly rs bytes; not the carver's or the classification's) after the
	// first chunk stall until the gate is released; the first chunk's read waits until one of
	// them has begun, so that read-ahead is under way before anything is decided.
	gate := faults.NewGate()
	defer gate.Release()
	isChunk := func(c faults.Call) bool { return c.Len == rs }
	stall := faults.Where(func(c faults.Call) bool { return isChunk(c) && c.Off != format.FileHeaderSize }).Stall(gate.C())
	chunk0 := faults.Where(func(c faults.Call) bool { return isChunk(c) && c.Off == format.FileHeaderSize }).
		Await(stall.Fired(), time.Minute, errors.New("setup: no read-ahead started"))
	mem := testlog.NewMemFile(data)
	f := stalledFile{mem, faults.New(mem, chunk0, stall)}
	type result struct {
		res recovery.Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := recovery.Recover(context.Background(), f, recovery.Discard, recovery.WithParallelism(8), recovery.WithPoolDepth(16), recovery.WithReadSize(rs))
		done <- result{res, err}
	}()
	var got result
	select {
	case got = <-done:
	case <-time.After(time.Minute): // a hang detector: the reads are stalled for good
		t.Fatal("Recover did not return while a read it does not need is stalled")
	}
	if got.err != nil || !got.res.Truncated || got.res.Truncation.Offset != at || got.res.Truncation.Reason != recovery.ReasonDamagedTail {
		t.Fatalf("want a damaged tail cut at %d, got %v %+v", at, got.err, got.res.Truncation)
	}
	if n := f.Size(); n != at {
		t.Fatalf("the file is %d bytes after the cut, want %d", n, at)
	}
	gate.Release()
	goleak.VerifyNone(t)
	if n := f.Size(); n != at || mem.Truncates != 1 {
		t.Fatalf("after the stalled reads returned: %d bytes, %d cuts", n, f.Truncates)
	}
}
