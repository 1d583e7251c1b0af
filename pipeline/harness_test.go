package pipeline_test

// The harness the pipeline's suites share: pipeline.Run driven as recovery.Recover drives it,
// the two promises every exit keeps, and the logs the suites run on.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var configs = []pipeline.Config{
	{Parallelism: 1, Depth: 1, ReadSize: 4 << 10},
	{Parallelism: 2, Depth: 2, ReadSize: 4 << 10},
	{Parallelism: 3, Depth: 5, ReadSize: 8 << 10},
	{Parallelism: 8, Depth: 16, ReadSize: 4 << 10},
}

// bigLog has many batches in flight at any moment.
var bigLog = testlog.RandomLog(99, format.LayoutV1, 20000, 3, 40)

type readerAt interface {
	ReadAt([]byte, int64) (int, error)
}

// run drives pipeline.Run directly, so the test sees the pool's own accounting.
func run(ctx context.Context, data []byte, r readerAt, cfg pipeline.Config, app apply.Applier) (pipeline.Stats, error) {
	return runL(ctx, int64(len(data)), format.LayoutV1, r, cfg, app)
}

// runL drives pipeline.Run for either layout, as recovery.Recover does.
func runL(ctx context.Context, size int64, layout format.Layout, r readerAt, cfg pipeline.Config, app apply.Applier) (pipeline.Stats, error) {
	if cfg.MaxRecord == 0 {
		cfg.MaxRecord = classify.DefaultMaxRecord
	}
	return pipeline.Run(ctx, r, size, layout, app, cfg)
}

// settled checks the two promises every exit keeps: every buffer is back but those of the
// workers still inside a read when Run returned (at most one each), and every goroutine is
// gone once those reads have returned.
func settled(t *testing.T, what string, stats pipeline.Stats) {
	t.Helper()
	if stats.Out > stats.Stragglers {
		t.Fatalf("%s: %d buffer(s) still out of the pool, %d straggler(s)", what, stats.Out, stats.Stragglers)
	}
	goleak.VerifyNone(t)
}

func cfgName(c pipeline.Config) string {
	return fmt.Sprintf("par=%d/depth=%d/read=%d", c.Parallelism, c.Depth, c.ReadSize)
}

// panicValue is what was passed to panic, under the *recovery.Panic that carries it with its
// stack (Recover raises every panic of the caller's code as one, at every parallelism).
func panicValue(p any) any {
	if r, ok := p.(*recovery.Panic); ok {
		return r.Value
	}
	return p
}

// advLog is a small log whose records fall on every alignment: tiny records (5-byte payloads),
// records that end exactly on 4 KiB boundaries, and records several reads long.
func advLog(layout format.Layout, seed uint64, size int) testlog.Log {
	rng := rand.New(rand.NewPCG(seed, 77))
	l := testlog.Build(layout)
	hdr := layout.HeaderSize()
	for len(l.Bytes) < size {
		switch rng.IntN(6) {
		case 0:
			l.Append(format.AppendDelete(nil, nil)) // 5 bytes: the smallest valid payload
		case 1: // end exactly on the next 64-byte (and, sometimes, 4 KiB) boundary
			room := 64 - (len(l.Bytes)+hdr)%64
			if room < 14 {
				room += 64
			}
			l.Append(testlog.SizedTx(rng, room, 8))
		case 2:
			l.Append(testlog.SizedTx(rng, 14+rng.IntN(300), 8))
		case 3:
			l.Append(testlog.SizedTx(rng, 100+rng.IntN(3*size/4+1), 8)) // several tiny reads long
		default:
			l.Append(testlog.RandomTx(rng, 3, 20))
		}
	}
	return l
}

// mutations returns damaged variants of l: truncations, flipped bytes, lengths that lie.
func mutations(l testlog.Log, rng *rand.Rand) map[string][]byte {
	m := map[string][]byte{"clean": bytes.Clone(l.Bytes)}
	hdr := int64(l.Layout.HeaderSize())
	pick := func() int64 { return l.Offsets[1+rng.IntN(len(l.Offsets)-1)] }
	for i := range 4 {
		o := pick()
		m[fmt.Sprintf("cut-in-header-%d", i)] = bytes.Clone(l.Bytes[:o+1+int64(rng.IntN(int(hdr-1)))])
		o = pick()
		m[fmt.Sprintf("cut-in-payload-%d", i)] = bytes.Clone(l.Bytes[:o+hdr+1])
		b := bytes.Clone(l.Bytes)
		o = pick()
		b[o+hdr+int64(rng.IntN(4))] ^= 0x40
		m[fmt.Sprintf("flip-payload-%d", i)] = b
		b = bytes.Clone(l.Bytes)
		o = pick()
		b[o+int64(rng.IntN(int(hdr)))] ^= 1 << rng.IntN(8)
		m[fmt.Sprintf("flip-header-%d", i)] = b
		// A length that claims (almost) the rest of the file, and one far past it.
		b = bytes.Clone(l.Bytes)
		o = pick()
		binary.BigEndian.PutUint32(b[o:], uint32(int64(len(b))-o-hdr-int64(rng.IntN(3))))
		if l.Layout == format.LayoutV1 { // make it check out: a header that proves a wrong extent
			binary.BigEndian.PutUint32(b[o+4:], format.LengthChecksum(binary.BigEndian.Uint32(b[o:])))
		}
		m[fmt.Sprintf("length-to-end-%d", i)] = b
		b = bytes.Clone(l.Bytes)
		o = pick()
		binary.BigEndian.PutUint32(b[o:], 0xFFFFFF00)
		if l.Layout == format.LayoutV1 {
			binary.BigEndian.PutUint32(b[o+4:], format.LengthChecksum(0xFFFFFF00))
		}
		m[fmt.Sprintf("length-huge-%d", i)] = b
	}
	m["zeros-after"] = append(bytes.Clone(l.Bytes), make([]byte, 700)...)
	m["ff-after"] = append(bytes.Clone(l.Bytes), bytes.Repeat([]byte{0xFF}, 300)...)
	m["short-tail"] = append(bytes.Clone(l.Bytes), 0, 0, 1)
	return m
}

// bigRecordLog is a log of records of 1 to 5 reads each, with small ones between: every chunk
// boundary falls in a record that needs the shared large-record buffer.
func bigRecordLog(seed uint64, layout format.Layout, rs, n int) testlog.Log {
	rng := rand.New(rand.NewPCG(seed, 9))
	l := testlog.Build(layout)
	for range n {
		if rng.IntN(3) == 0 {
			l.Append(testlog.SizedTx(rng, 14+rng.IntN(100), 8))
		} else {
			l.Append(testlog.SizedTx(rng, rs/2+rng.IntN(5*rs), 8))
		}
	}
	return l
}

// errBoom (an Applier's) and errEIO (a device's) are the errors the suites inject.
var (
	errBoom = errors.New("boom")
	errEIO  = errors.New("EIO")
)
