package pipeline_test

// What the caller's code may do from inside a run: an Applier, a Preparer or a ReadAt that
// calls runtime.Goexit (as t.Fatal does), an Applier that returns a context error of its own
// or appends to the payload it was given.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/pipeline"
)

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
				stats, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(r apply.Record) error {
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
			_, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(r apply.Record) error {
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
			app := apply.Func(func(rec apply.Record) error {
				if cfg.Parallelism > 1 {
					select { // hold the decision until read-ahead has prepared past it
					case <-reached:
					case <-time.After(time.Minute):
						return errors.New("setup: read-ahead never reached chunk 3")
					}
				}
				return boom
			})
			cfg.Preparer = apply.PrepareFunc(func(r apply.Record, dst []uint64) []uint64 {
				if r.Offset >= past {
					once.Do(func() { close(reached) })
					runtime.Goexit()
				}
				return dst
			})
			cfg.MaxRecord = classify.DefaultMaxRecord
			out := make(chan string, 1)
			go func() {
				got := "goexit" // unless Run returns
				defer func() { out <- got }()
				_, err := pipeline.Run(context.Background(), bytes.NewReader(bigLog.Bytes), int64(len(bigLog.Bytes)), format.LayoutV1, app, cfg)
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
