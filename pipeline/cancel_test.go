package pipeline_test

// Cancellation at any record, at any read call, amid thousands of tiny chunks, while a large
// legacy record's CRC streams, and with every worker inside a read: CANCELED (or the decision
// already made), never a hang, a goroutine left, a buffer out or a read begun after the cancel.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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
	"github.com/streamwal/recovery/walerr"
)

func TestCancelMidRecovery(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			for _, at := range []int64{0, 1, 777, 15000} {
				ctx, cancel := context.WithCancel(context.Background())
				n := int64(0)
				stats, err := run(ctx, bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(apply.Record) error {
					if n == at {
						cancel()
					}
					n++
					return nil
				}))
				cancel()
				what := fmt.Sprintf("%+v cancel at record %d", cfg, at)
				if !errors.Is(err, context.Canceled) || !errors.Is(err, recovery.ErrCanceled) {
					t.Fatalf("%s: want a cancellation error, got %v", what, err)
				}
				if stats.Records >= int64(len(bigLog.Offsets)) {
					t.Fatalf("%s: ran to the end (%d records) despite cancellation", what, stats.Records)
				}
				settled(t, what, stats)
			}
		})
	}
}

// cancelOnCall is a reader over b that calls cancel at read call k, then reads.
func cancelOnCall(b []byte, k int64, cancel context.CancelFunc) *faults.Reader {
	return faults.Bytes(b, faults.OnCall(k).Do(func(faults.Call) { cancel() }))
}

// TestCancelAtEveryReadCall: a cancellation at any read call (also while a worker waits in
// Carve for the shared buffer, or streams a legacy CRC) ends in a CANCELED error or in the
// decision already made, never a hang, a leak or a buffer left out.
func TestCancelAtEveryReadCall(t *testing.T) {
	const rs = 4 << 10
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		l := bigRecordLog(21, layout, rs, 40)
		for _, cfg := range []pipeline.Config{{Parallelism: 1, ReadSize: rs}, {Parallelism: 3, Depth: 2, ReadSize: rs}, {Parallelism: 8, Depth: 10, ReadSize: rs}} {
			for k := int64(1); k < 200; k += 3 {
				ctx, cancel := context.WithCancel(context.Background())
				r := cancelOnCall(l.Bytes, k, cancel)
				stats, err := runL(ctx, int64(len(l.Bytes)), layout, r, cfg, apply.Discard)
				cancel()
				what := fmt.Sprintf("%v %+v cancel at call %d", layout, cfg, k)
				if err != nil && walerr.CodeOf(err) != walerr.Canceled {
					t.Fatalf("%s: %v", what, err)
				}
				if err == nil && stats.Records != int64(len(l.Offsets)) {
					t.Fatalf("%s: no error after %d records", what, stats.Records)
				}
				if r.Calls() < k && err != nil {
					t.Fatalf("%s: canceled though the cancel never fired: %v", what, err)
				}
				settled(t, what, stats)
			}
		}
	}
}

// TestCancelAmidTinyChunks: with reads of a few bytes (thousands of chunks, every worker
// waiting on a carry most of the time, in the spin or parked) a cancellation at any read call
// or any record ends every run with CANCELED or with the decision already made, never a hang,
// a goroutine left or a buffer out; a run that returns no error replayed the whole log.
func TestCancelAmidTinyChunks(t *testing.T) {
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		l := advLog(layout, uint64(layout)+61, 2500)
		data := l.Bytes
		rng := rand.New(rand.NewPCG(uint64(layout), 61))
		outcomes := map[string]int{}
		for i := range 60 {
			cfg := pipeline.Config{Parallelism: 2 + rng.IntN(7), Depth: 2 + rng.IntN(15), ReadSize: 1 + rng.IntN(64)}
			ctx, cancel := context.WithCancel(context.Background())
			k := int64(1 + rng.IntN(300))
			var r readerAt = bytes.NewReader(data)
			var app apply.Applier = apply.Discard
			if i%2 == 0 {
				r = cancelOnCall(data, k, cancel)
			} else {
				n := int64(0)
				app = apply.Func(func(apply.Record) error {
					if n++; n == k%int64(len(l.Offsets)) {
						cancel()
					}
					return nil
				})
			}
			done := make(chan struct{})
			var (
				stats pipeline.Stats
				err   error
			)
			go func() {
				defer close(done)
				stats, err = runL(ctx, int64(len(data)), layout, r, cfg, app)
			}()
			select {
			case <-done:
			case <-time.After(time.Minute): // a hang detector, not a timing assertion
				t.Fatalf("%v %+v cancel %d at %d: hang", layout, cfg, i%2, k)
			}
			cancel()
			what := fmt.Sprintf("%v %+v cancel %d at %d", layout, cfg, i%2, k)
			switch {
			case err == nil && stats.Records != int64(len(l.Offsets)):
				t.Fatalf("%s: no error after %d of %d records", what, stats.Records, len(l.Offsets))
			case err != nil && walerr.CodeOf(err) != walerr.Canceled:
				t.Fatalf("%s: %v", what, err)
			case err != nil && !errors.Is(err, context.Canceled):
				t.Fatalf("%s: a CANCELED error that is not context.Canceled: %v", what, err)
			}
			outcomes[string(walerr.CodeOf(err))]++
			settled(t, what, stats)
		}
		if outcomes[string(walerr.Canceled)] == 0 {
			t.Fatalf("%v: no run was canceled: %v", layout, outcomes)
		}
		t.Logf("%v: %v", layout, outcomes)
	}
}

// TestCancelDuringLargeLegacyRecord: cancelling while the source streams the CRC of a legacy
// record larger than a read stops it promptly: it reads at most a few more chunks, not the
// rest of the 8 MiB record (before, the stream ignored the context).
func TestCancelDuringLargeLegacyRecord(t *testing.T) {
	big := format.AppendSet(nil, []byte("k"), bytes.Repeat([]byte{7}, 8<<20))
	l := testlog.Build(format.LayoutLegacy, format.AppendSet(nil, []byte("a"), []byte("b")), big)
	for _, par := range []int{1, 2, 4} {
		var canceled atomic.Bool
		// Every read sleeps 200 µs first; those that end their sleep after the cancel are kept.
		r := faults.Bytes(l.Bytes, faults.Always().Delay(200*time.Microsecond), faults.When(canceled.Load).Record())
		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan struct{})
		go func() {
			defer close(stopped)
			time.Sleep(5 * time.Millisecond)
			canceled.Store(true)
			cancel()
		}()
		_, err := pipeline.Run(ctx, r, int64(len(l.Bytes)), format.LayoutLegacy, apply.Discard, pipeline.Config{Parallelism: par, Depth: par + 3, ReadSize: 4 << 10, MaxRecord: 1 << 30})
		<-stopped
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("par %d: want a cancellation, got %v", par, err)
		}
		after := 0
		for _, c := range r.Log() {
			after += c.Len
		}
		if after > (par+4)*(4<<10) {
			t.Fatalf("par %d: %d bytes read after the cancel", par, after)
		}
		goleak.VerifyNone(t)
	}
}

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
					stats, err := run(ctx, c.data, r, cfg, apply.Discard)
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
