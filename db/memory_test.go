package db

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testdepth"
)

// TestPreparedWordsPerPayloadByte: the words prepare returns for a record never take more than
// maxPreparedPerByte bytes per payload byte, whatever the keys' lengths (the densest op is a
// delete of a 1-byte key: 6 payload bytes, 3 words). The memory bound of an open rests on it.
func TestPreparedWordsPerPayloadByte(t *testing.T) {
	l := newLoader()
	rng := rand.New(rand.NewPCG(3, 9))
	worst := 0.0
	for range 2000 {
		var p []byte
		for range 1 + rng.IntN(40) {
			key := make([]byte, rng.IntN(40))
			if rng.IntN(2) == 0 {
				p = format.AppendDelete(p, key)
			} else {
				p = format.AppendSet(p, key, make([]byte, rng.IntN(3)))
			}
		}
		words := l.prepare(unprepared(p), nil)
		if got := len(words) * 8; got > maxPreparedPerByte*len(p) {
			t.Fatalf("%d-byte payload: %d bytes of words, over %d per byte", len(p), got, maxPreparedPerByte)
		}
		worst = max(worst, float64(len(words)*8)/float64(len(p)))
	}
	one := format.AppendDelete(nil, []byte{'k'})
	if got := len(l.prepare(unprepared(one), nil)) * 8; got != maxPreparedPerByte*len(one) {
		t.Fatalf("a delete of a 1-byte key: %d bytes of words for %d payload bytes, want exactly %d per byte", got, len(one), maxPreparedPerByte)
	}
	t.Logf("random payloads: at most %.2f bytes of words per payload byte", worst)
}

// TestOpenMemoryWithPreparedWords: an open's recovery, prepare included, never buffers more than
// the documented bound (docs/design.md, "The memory bound"), by the pool's own count, on a log
// built for the worst case: every op a delete of a 1-byte key, 4 bytes of words per payload
// byte. Without the Preparer's term the bound is exceeded, so the term is not slack. The log
// is 16 times the pool's reads (64 times with WALREC_DEEP=1).
func TestOpenMemoryWithPreparedWords(t *testing.T) {
	const readSize, depth, par = 64 << 10, 6, 4
	var p []byte
	for i := 0; len(p) < 4<<10; i++ {
		p = format.AppendDelete(p, []byte{byte(i)})
	}
	data := append([]byte(nil), format.FileHeader[:]...)
	for len(data) < testdepth.Pick(16, 64)*depth*readSize {
		data = format.AppendRecord(data, format.LayoutV1, p)
	}
	largest := len(p) + format.V1HeaderSize
	l := newLoaderFor(int64(len(data)))
	res, err := recovery.Recover(context.Background(), bytes.NewReader(data), l,
		recovery.WithPrepare(recovery.PrepareFunc(l.prepare)), recovery.WithParallelism(par),
		recovery.WithPoolDepth(depth), recovery.WithReadSize(readSize), recovery.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	bound := preparedMemBound(depth, readSize, largest)
	plain := bound - int64(depth*preparedPerBuffer(readSize, largest))
	t.Logf("%d-byte log: pool peak %d bytes; bound %d (without the Preparer's words %d)", len(data), res.PeakBuffered, bound, plain)
	if res.PeakBuffered > bound {
		t.Fatalf("pool peak %d over the bound %d", res.PeakBuffered, bound)
	}
	if res.PeakBuffered <= plain {
		t.Fatalf("pool peak %d within the bound without prepared words (%d): the log does not exercise the term", res.PeakBuffered, plain)
	}
}

// unprepared is payload p as recovery hands it to a Preparer.
func unprepared(p []byte) recovery.Record {
	n, err := format.CountOps(p)
	if err != nil {
		panic(err)
	}
	return recovery.NewRecord(8, format.V1HeaderSize, p, n, nil)
}

// preparedMemBound is docs/design.md's bound on what recovery buffers for an open: per buffer a
// read, the record that runs past it (at most a read), 8 bytes per carved record (op count and
// the end of its words; a carved record is at least 9 bytes) and the prepared words, plus the
// shared buffer for a record larger than a read.
func preparedMemBound(buffers, readSize, largest int) int64 {
	per := readSize + min(readSize, largest) + 8*(readSize/9+2) + preparedPerBuffer(readSize, largest)
	b := int64(buffers) * int64(per)
	if largest > readSize {
		b += int64(largest)
	}
	return b
}

// preparedPerBuffer is the most memory one buffer's prepared words hold: maxPreparedPerByte per
// payload byte of the read and its straddler, at up to twice that as capacity (append's growth).
func preparedPerBuffer(readSize, largest int) int {
	return 2 * maxPreparedPerByte * (readSize + min(readSize, largest))
}
