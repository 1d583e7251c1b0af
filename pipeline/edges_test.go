package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/pipeline"
)

// diskOnFire is a reader over b whose every read of a byte at or past at panics.
func diskOnFire(b []byte, at int64) *faults.Reader {
	return faults.Bytes(b, faults.Past(at).Panic("disk on fire"))
}

// TestReaderPanicReachesTheCaller: a panic in the caller's ReadAt comes back on the caller's
// goroutine at every parallelism (before, a parallel recovery crashed the process), after
// every goroutine has stopped and every buffer is back.
func TestReaderPanicReachesTheCaller(t *testing.T) {
	for _, cfg := range configs {
		t.Run(fmt.Sprintf("par=%d", cfg.Parallelism), func(t *testing.T) {
			var got any
			func() {
				defer func() { got = panicValue(recover()) }()
				run(context.Background(), bigLog.Bytes, diskOnFire(bigLog.Bytes, 20<<10), cfg, apply.Discard)
			}()
			if got != "disk on fire" {
				t.Fatalf("want the reader's panic, got %#v", got)
			}
			goleak.VerifyNone(t)
		})
	}
}

// TestGoexitDoesNotHang: an Applier (or a ReadAt) that calls runtime.Goexit, as t.Fatal does,
// ends the caller's goroutine at every parallelism, as the sequential loop would; before, a
// parallel recovery waited forever.
func TestGoexitDoesNotHang(t *testing.T) {
	for _, where := range []string{"applier", "reader"} {
		for _, cfg := range configs {
			t.Run(fmt.Sprintf("%s/par=%d", where, cfg.Parallelism), func(t *testing.T) {
				exited := make(chan bool)
				go func() {
					returned := false
					defer func() { exited <- returned }()
					var r io.ReaderAt = bytes.NewReader(bigLog.Bytes)
					var app apply.Applier = apply.Func(func(rec apply.Record) error {
						if rec.Offset > 30<<10 {
							runtime.Goexit()
						}
						return nil
					})
					if where == "reader" {
						r, app = faults.Bytes(bigLog.Bytes, faults.StartingFrom(30<<10+1).Goexit()), apply.Discard
					}
					run(context.Background(), bigLog.Bytes, r, cfg, app)
					returned = true
				}()
				select {
				case returned := <-exited:
					if returned {
						t.Fatal("Run returned: the Goexit was swallowed")
					}
				case <-time.After(time.Minute): // a hang detector, not a timing assertion
					t.Fatal("Run did not end after a Goexit")
				}
				goleak.VerifyNone(t)
			})
		}
	}
}

// TestApplierContextErrorIsTheSameEverywhere: an Applier that returns context.Canceled (its
// own, not the recovery's) gets the same typed error, code and offset at every parallelism.
func TestApplierContextErrorIsTheSameEverywhere(t *testing.T) {
	for _, cause := range []error{context.Canceled, context.DeadlineExceeded} {
		var first string
		for _, cfg := range configs {
			t.Run(cfgName(cfg), func(t *testing.T) {
				_, stats, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(r apply.Record) error {
					if r.Offset >= int64(bigLog.Offsets[777]) {
						return cause
					}
					return nil
				}))
				var re *recovery.Error
				if !errors.As(err, &re) || re.Code != recovery.CodeApplyFailed || re.Offset != int64(bigLog.Offsets[777]) || !errors.Is(err, cause) {
					t.Fatalf("%+v: want APPLY_FAILED at %d wrapping %v, got %v", cfg, bigLog.Offsets[777], cause, err)
				}
				if first == "" {
					first = err.Error()
				} else if err.Error() != first {
					t.Fatalf("%+v: %q differs from parallelism 1's %q", cfg, err, first)
				}
				settled(t, "applier context error", stats)
			})
		}
	}
}

// TestPayloadCannotReachTheNextRecord: an Applier that appends to the payload it was given
// cannot overwrite the records after it (before, they were then replayed unverified).
func TestPayloadCannotReachTheNextRecord(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			i := 0
			_, _, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(r apply.Record) error {
				want := bigLog.Bytes[bigLog.Offsets[i]+format.V1HeaderSize:][:len(r.Payload)]
				if r.Offset != int64(bigLog.Offsets[i]) || !bytes.Equal(r.Payload, want) {
					return fmt.Errorf("record %d at %d differs from the file", i, r.Offset)
				}
				if cap(r.Payload) != len(r.Payload) {
					return fmt.Errorf("record %d: payload capacity %d runs past its length %d", i, cap(r.Payload), len(r.Payload))
				}
				_ = append(r.Payload, bytes.Repeat([]byte{0xEE}, 64)...)
				i++
				return nil
			}))
			if err != nil || i != len(bigLog.Offsets) {
				t.Fatalf("%+v: %v after %d records", cfg, err, i)
			}
		})
	}
}

var errEIO = errors.New("EIO")

// TestFullReadWithErrorIsNotGood: a read that fills the buffer but reports an error is an I/O
// error, never a reason to cut (before: zeros came back with EIO and the tail was cut).
func TestFullReadWithErrorIsNotGood(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			// Every read of the last 100 bytes returns zeros, a full count and EIO.
			r := faults.Bytes(bigLog.Bytes, faults.Past(int64(len(bigLog.Bytes))-100).Lie(errEIO))
			st, stats, err := run(context.Background(), bigLog.Bytes, r, cfg, apply.Discard)
			if !errors.Is(err, recovery.ErrIO) || !errors.Is(err, errEIO) || st.Truncation != nil {
				t.Fatalf("%+v: want IO_ERROR and no cut, got %v, cut %v", cfg, err, st.Truncation)
			}
			settled(t, "full read with error", stats)
		})
	}
}

// TestTinyReadSizes: a read size smaller than a record header (exported package: callers can
// pass anything) still recovers exactly, and nonsense configurations are refused, not spun on.
func TestTinyReadSizes(t *testing.T) {
	l := testlog.RandomLog(3, format.LayoutV1, 200, 3, 40)
	data := append(bytes.Clone(l.Bytes), 0, 0, 0, 9) // and a short tail
	for _, rs := range []int{1, 5, 11, 12, 13, 100} {
		for _, par := range []int{1, 3} {
			st, stats, err := run(context.Background(), data, bytes.NewReader(data), pipeline.Config{Parallelism: par, Depth: 4, ReadSize: rs}, apply.Discard)
			if err != nil || st.Stats.Records != int64(len(l.Offsets)) || st.Truncation == nil || st.Truncation.Offset != int64(len(l.Bytes)) {
				t.Fatalf("read size %d par %d: %v, %d records, cut %+v", rs, par, err, st.Stats.Records, st.Truncation)
			}
			settled(t, "tiny reads", stats)
		}
	}
	for _, cfg := range []pipeline.Config{
		{Parallelism: 0, Depth: 1, ReadSize: 10, MaxRecord: 100},
		{Parallelism: 2, Depth: 1, ReadSize: 10, MaxRecord: 100},
		{Parallelism: 1, Depth: 1, ReadSize: 0, MaxRecord: 100},
		{Parallelism: pipeline.MaxParallelism + 1, Depth: 4, ReadSize: 10, MaxRecord: 100},
		{Parallelism: 2, Depth: pipeline.MaxDepth + 1, ReadSize: 10, MaxRecord: 100},
		{Parallelism: 1, Depth: 1, ReadSize: 10, MaxRecord: 0},
		{Parallelism: 2, Depth: 4, ReadSize: 10, MaxRecord: math.MaxUint32}, // an erased header's length
	} {
		st := &apply.Stage{Applier: apply.Discard, Layout: format.LayoutV1, File: bytes.NewReader(data), Size: int64(len(data)),
			Classify: classify.Config{Layout: format.LayoutV1, MaxRecord: 100}}
		if _, err := pipeline.Run(context.Background(), bytes.NewReader(data), int64(len(data)), cfg, st); !errors.Is(err, recovery.ErrInvalidArgument) {
			t.Fatalf("%+v: want INVALID_ARGUMENT, got %v", cfg, err)
		}
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
		st := &apply.Stage{Applier: apply.Discard, Layout: format.LayoutLegacy, File: r, Size: int64(len(l.Bytes)),
			Classify: classify.Config{Layout: format.LayoutLegacy, MaxRecord: 1 << 30}}
		_, err := pipeline.Run(ctx, r, int64(len(l.Bytes)), pipeline.Config{Parallelism: par, Depth: par + 3, ReadSize: 4 << 10, MaxRecord: 1 << 30}, st)
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

// TestPreparerGoexitInReadAhead: a runtime.Goexit in the Preparer (t.Fatal in a test's, say)
// on a record past the point where the stream is decided. Parallelism 1 never prepares that
// record and returns its decision (the Applier fails on record 0); in parallel, read-ahead
// prepares it (the Applier holds record 0 until it has), and the Goexit, which cannot be kept
// for later as a panic is, ends the caller's goroutine: what WithPrepare and the Preparer type
// say. Nothing is left behind either way.
func TestPreparerGoexitInReadAhead(t *testing.T) {
	const rs = 4 << 10
	past := format.LayoutV1.FirstRecord() + 3*rs // chunk 3 on: never prepared at parallelism 1
	boom := errors.New("store full")
	for _, cfg := range []pipeline.Config{{Parallelism: 1, Depth: 1, ReadSize: rs}, {Parallelism: 2, Depth: 5, ReadSize: rs}, {Parallelism: 4, Depth: 8, ReadSize: rs}} {
		t.Run(cfgName(cfg), func(t *testing.T) {
			reached := make(chan struct{})
			var once sync.Once
			st := &apply.Stage{
				Applier: apply.Func(func(rec apply.Record) error {
					if cfg.Parallelism > 1 {
						select { // hold the decision until read-ahead has prepared past it
						case <-reached:
						case <-time.After(time.Minute):
							return errors.New("setup: read-ahead never reached chunk 3")
						}
					}
					return boom
				}),
				Preparer: apply.PrepareFunc(func(r apply.Record, dst []uint64) []uint64 {
					if r.Offset >= past {
						once.Do(func() { close(reached) })
						runtime.Goexit()
					}
					return dst
				}),
				Layout: format.LayoutV1, File: bytes.NewReader(bigLog.Bytes), Size: int64(len(bigLog.Bytes)),
				Classify: classify.Config{Layout: format.LayoutV1, MaxRecord: classify.DefaultMaxRecord},
			}
			cfg.MaxRecord = classify.DefaultMaxRecord
			out := make(chan string, 1)
			go func() {
				got := "goexit" // unless Run returns
				defer func() { out <- got }()
				_, err := pipeline.Run(context.Background(), bytes.NewReader(bigLog.Bytes), int64(len(bigLog.Bytes)), cfg, st)
				got = "error " + string(recovery.CodeOf(err))
			}()
			var got string
			select {
			case got = <-out:
			case <-time.After(time.Minute): // a hang detector, not a timing assertion
				t.Fatal("Run did not end")
			}
			want := "error " + string(recovery.CodeApplyFailed)
			if cfg.Parallelism > 1 {
				want = "goexit"
			}
			if got != want {
				t.Fatalf("got %s, want %s", got, want)
			}
			goleak.VerifyNone(t)
		})
	}
}
