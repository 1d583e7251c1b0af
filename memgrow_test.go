package recovery_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sort"
	"sync"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
)

// synthLog is a v1 log of one-set records whose values are all 'x', made up as it is read:
// its hundreds of MiB never sit in the test's memory, so what recovery holds is what moves.
type synthLog struct {
	size int64
	recs []synthRec
}

type synthRec struct {
	off   int64
	head  []byte // the record header and the op's bytes before the value
	total int64  // header and payload
}

var xs = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = 'x'
	}
	return b
}()

// newSynthLog is a log of records of the given payload sizes (each at least 10 bytes).
func newSynthLog(payloads ...int) *synthLog {
	l := &synthLog{size: format.FileHeaderSize}
	for _, p := range payloads {
		op := format.AppendSet(nil, []byte("k"), nil)[:10] // tag, key length, "k", value length
		op[6], op[7], op[8], op[9] = byte((p-10)>>24), byte((p-10)>>16), byte((p-10)>>8), byte(p-10)
		crc := format.UpdateChecksum(0, op)
		for left := p - 10; left > 0; left -= min(left, len(xs)) {
			crc = format.UpdateChecksum(crc, xs[:min(left, len(xs))])
		}
		head := make([]byte, format.V1HeaderSize, format.V1HeaderSize+len(op))
		format.PutHeader(head, format.LayoutV1, uint32(p), crc)
		head = append(head, op...)
		l.recs = append(l.recs, synthRec{off: l.size, head: head, total: int64(format.V1HeaderSize + p)})
		l.size += int64(format.V1HeaderSize + p)
	}
	return l
}

func (l *synthLog) Size() int64 { return l.size }

func (l *synthLog) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		o := off + int64(n)
		if o >= l.size {
			return n, io.EOF
		}
		var src []byte
		if o < format.FileHeaderSize {
			src = format.FileHeader[o:]
		} else {
			i := sort.Search(len(l.recs), func(i int) bool { return l.recs[i].off+l.recs[i].total > o })
			r := &l.recs[i]
			if in := o - r.off; in < int64(len(r.head)) {
				src = r.head[in:]
			} else {
				src = xs[:min(int64(len(xs)), r.total-in)]
			}
		}
		n += copy(p[n:], src)
	}
	return n, nil
}

// held is the memory the process holds for recovery's buffers, as the allocator counts it: the
// heap's object bytes (live or not yet freed), which is what the accounting follows (a replaced
// buffer counts until the collector frees it).
func held() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// TestGrowingLargeRecordsStayWithinTheBound: records of 8, 16, 32 and 64 MiB with 1 MiB reads,
// each larger than all before it, so the one buffer for large records grows three times. The
// memory really held (measured by the allocators, at every record and every chunk) stays
// within what Recover reports (PeakBuffered), and that within the documented bound: the
// pool's buffers, plus the largest record once, plus the replaced buffers the collector has
// not freed yet (which it counts).
// Before, a replaced buffer stayed resident beside its replacement, uncounted: the memory
// held grew by about 8+16+32+64 MiB while PeakBuffered said 65 MiB.
func TestGrowingLargeRecordsStayWithinTheBound(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 120 MiB of records; skipped with -short")
	}
	sizes := []int{8 << 20, 16 << 20, 32 << 20, 64 << 20}
	l := newSynthLog(sizes...)
	const rs = 1 << 20
	for _, par := range []int{1, 4} {
		t.Run(fmt.Sprintf("par=%d", par), func(t *testing.T) {
			depth := par + 3
			if par == 1 {
				depth = 1
			}
			runtime.GC()
			debug.FreeOSMemory() // every free heap page back to the kernel: the baseline is what is held
			base := held()
			var mu sync.Mutex
			peak := base
			sample := func() {
				h := held()
				mu.Lock()
				peak = max(peak, h)
				mu.Unlock()
			}
			res, err := recovery.Recover(context.Background(), l, recovery.ApplyFunc(func(r recovery.Record) error {
				sample()
				return nil
			}), recovery.WithParallelism(par), recovery.WithReadSize(rs), recovery.WithProgress(func(int64, int64) { sample() }), recovery.ReadOnly())
			sample()
			if err != nil || res.Records != int64(len(sizes)) {
				t.Fatalf("%v after %d records", err, res.Records)
			}
			largest := format.V1HeaderSize + sizes[len(sizes)-1]
			bound := int64(depth) * int64(rs+min(rs, largest)+4*(rs/9+2))
			var replaced int64 // the replaced buffers may all still be counted
			for _, s := range sizes[:len(sizes)-1] {
				replaced += int64(format.V1HeaderSize + s)
			}
			bound += int64(largest) + replaced
			// Slack: the heap's own small allocations (goroutines, sampling), garbage up to
			// twice the runtime's smallest heap goal (4 MiB). The fault this test finds is the
			// size of the buffers replaced.
			slack := int64(8 << 20)
			growth := peak - base
			t.Logf("memory held grew by %.1f MiB; PeakBuffered %.1f MiB; documented bound %.1f MiB",
				float64(growth)/(1<<20), float64(res.PeakBuffered)/(1<<20), float64(bound)/(1<<20))
			if growth > res.PeakBuffered+slack {
				t.Fatalf("the memory held grew by %d bytes, more than the %d PeakBuffered reports (+%d slack)", growth, res.PeakBuffered, slack)
			}
			if res.PeakBuffered > bound {
				t.Fatalf("PeakBuffered %d over the documented bound %d", res.PeakBuffered, bound)
			}
		})
	}
}
