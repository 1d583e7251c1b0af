package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/pipeline"
)

// TestNoReadStartsAfterCancel: once the context is done, no read starts: not the carver's read
// of a header that crosses its chunk's end, not its read of a record that runs past it, not a
// read-ahead of a later chunk, not a read of the classification that follows. The reader holds
// the reads in flight (every worker is inside one) while the test cancels, then lets them
// finish: every read the reader sees after that started after the cancel. Before, the carver
// read the straddling record or header (two reads after the cancel at parallelism 1 and 4 in
// the run) and the classification its torn header, and parallel workers went on to
// read ahead.
func TestNoReadStartsAfterCancel(t *testing.T) {
	const rs = 4 << 10
	// straddle: records of 3,000 bytes, so chunk 0 ends inside its second record.
	straddle := testlog.Build(format.LayoutV1)
	for range 30 {
		straddle.Append(format.AppendSet(nil, []byte("k"), bytes.Repeat([]byte{1}, 3000-format.V1HeaderSize-10)))
	}
	// header: a first record of 4,090 bytes puts the second header at 4,098, across the end of
	// chunk 0 ([8, 4104)).
	header := testlog.Build(format.LayoutV1, format.AppendSet(nil, []byte("k"), bytes.Repeat([]byte{2}, 4090-format.V1HeaderSize-10)))
	for range 30 {
		header.Append(format.AppendSet(nil, []byte("k"), bytes.Repeat([]byte{3}, 3000-format.V1HeaderSize-10)))
	}
	if h := header.Offsets[1]; h >= 8+rs || h+format.V1HeaderSize <= 8+rs {
		t.Fatalf("setup: the second header [%d, %d) does not cross the chunk end %d", h, h+format.V1HeaderSize, 8+rs)
	}
	// torn: one chunk whose last record is torn: classification reads its header again.
	torn := testlog.RandomLog(5, format.LayoutV1, 20, 2, 40)
	torn.Bytes = append(torn.Bytes, format.AppendRecord(nil, format.LayoutV1, format.AppendSet(nil, []byte("k"), []byte("torn value")))[:20]...)
	if len(torn.Bytes) > 8+rs {
		t.Fatalf("setup: the torn log is %d bytes, more than one chunk", len(torn.Bytes))
	}
	for _, c := range []struct {
		name string
		data []byte
	}{{"straddle", straddle.Bytes}, {"header", header.Bytes}, {"torn", torn.Bytes}} {
		for _, cfg := range []pipeline.Config{{Parallelism: 1, Depth: 1, ReadSize: rs}, {Parallelism: 4, Depth: 7, ReadSize: rs}} {
			t.Run(fmt.Sprintf("%s/par=%d", c.name, cfg.Parallelism), func(t *testing.T) {
				// Every read is held until the gate is released (entered is told of each); those
				// that begin once canceled is set are recorded.
				var canceled atomic.Bool
				entered := make(chan struct{}, 1<<16)
				gate := faults.NewGate()
				defer gate.Release()
				r := faults.Bytes(c.data, faults.When(canceled.Load).Record(),
					faults.Always().Do(func(faults.Call) { entered <- struct{}{} }).Stall(gate.C()))
				chunks := (int64(len(c.data)) - 8 + rs - 1) / rs
				inFlight := int(min(int64(cfg.Parallelism), chunks)) // every worker is inside a read
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				type result struct {
					err   error
					stats pipeline.Stats
				}
				done := make(chan result, 1)
				go func() {
					_, stats, err := run(ctx, c.data, r, cfg, apply.Discard)
					done <- result{err, stats}
				}()
				for range inFlight {
					<-entered
				}
				cancel()
				at := time.Now()
				canceled.Store(true)
				gate.Release()
				var res result
				select {
				case res = <-done:
				case <-time.After(time.Minute): // a hang detector, not a timing assertion
					t.Fatal("Run did not return after the cancel")
				}
				goleak.VerifyNone(t) // every read has returned: nothing more can start
				if after := r.Log(); len(after) > 0 {
					var reads []string
					for _, c := range after {
						reads = append(reads, fmt.Sprintf("%d bytes at %d, %v after the cancel", c.Len, c.Off, c.At.Sub(at)))
					}
					t.Fatalf("%d read(s) started after the cancel: %v", len(after), reads)
				}
				if !errors.Is(res.err, context.Canceled) || !errors.Is(res.err, recovery.ErrCanceled) {
					t.Fatalf("want CANCELED, got %v", res.err)
				}
			})
		}
	}
}
