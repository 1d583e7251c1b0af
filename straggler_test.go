package recovery_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
)

// chunkStaller is a MemFile whose chunk reads (exactly readSize bytes) after the first chunk
// stall until release is closed; the first chunk's read waits until one of them has started
// (stalled), so that read-ahead is under way before anything is decided.
type chunkStaller struct {
	*testlog.MemFile
	readSize int
	release  chan struct{}
	once     sync.Once
	stalled  chan struct{}
}

func (f *chunkStaller) ReadAt(p []byte, off int64) (int, error) {
	switch {
	case len(p) != f.readSize: // the carver's and the classification's reads
	case off == format.FileHeaderSize: // chunk 0
		select {
		case <-f.stalled:
		case <-time.After(time.Minute):
			return 0, errors.New("setup: no read-ahead started")
		}
	default:
		f.once.Do(func() { close(f.stalled) })
		<-f.release
	}
	return f.MemFile.ReadAt(p, off)
}

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
	f := &chunkStaller{MemFile: testlog.NewMemFile(data), readSize: rs, release: make(chan struct{}), stalled: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(f.release) }) }
	defer release()
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
	release()
	goleak.VerifyNone(t)
	if n := f.Size(); n != at || f.Truncates != 1 {
		t.Fatalf("after the stalled reads returned: %d bytes, %d cuts", n, f.Truncates)
	}
}
