package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/bufpool"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
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

// run drives pipeline.Run directly, so the test sees the pool's own accounting.
func run(ctx context.Context, data []byte, r interface {
	ReadAt([]byte, int64) (int, error)
}, cfg pipeline.Config, app apply.Applier) (*apply.Stage, pipeline.Stats, error) {
	cfg.MaxRecord = classify.DefaultMaxRecord
	st := &apply.Stage{
		Applier: app, Layout: format.LayoutV1, File: r, Size: int64(len(data)),
		Classify: classify.Config{Layout: format.LayoutV1, MaxRecord: cfg.MaxRecord},
	}
	stats, err := pipeline.Run(ctx, r, int64(len(data)), cfg, st)
	return st, stats, err
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

func TestCancelMidRecovery(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			for _, at := range []int64{0, 1, 777, 15000} {
				ctx, cancel := context.WithCancel(context.Background())
				n := int64(0)
				st, stats, err := run(ctx, bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(apply.Record) error {
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
				if st.Stats.Records >= int64(len(bigLog.Offsets)) {
					t.Fatalf("%s: ran to the end (%d records) despite cancellation", what, st.Stats.Records)
				}
				settled(t, what, stats)
			}
		})
	}
}

func TestApplierFailsAtRecordK(t *testing.T) {
	boom := errors.New("store full")
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			for _, k := range []int64{0, 5, 9999} {
				n := int64(0)
				st, stats, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(r apply.Record) error {
					if n == k {
						return boom
					}
					n++
					return nil
				}))
				what := fmt.Sprintf("%+v applier fails at %d", cfg, k)
				if !errors.Is(err, boom) || st.Stats.Records != k {
					t.Fatalf("%s: err=%v records=%d", what, err, st.Stats.Records)
				}
				settled(t, what, stats)
			}
		})
	}
}

func TestReadFailsAtCallK(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			for _, k := range []int64{1, 2, 30} {
				fault := faults.OnCall(k).Fail(faults.ErrInjected)
				_, stats, err := run(context.Background(), bigLog.Bytes, faults.Bytes(bigLog.Bytes, fault), cfg, apply.Discard)
				what := fmt.Sprintf("%+v read fails at call %d", cfg, k)
				if !errors.Is(err, faults.ErrInjected) || !errors.Is(err, recovery.ErrIO) || fault.Count() != 1 {
					t.Fatalf("%s: err=%v fired=%d", what, err, fault.Count())
				}
				settled(t, what, stats)
			}
		})
	}
}

// TestEarlyDamageBeforeReadFault: damage in an early batch is decided before a read fault the
// read-ahead met later, exactly as the sequential loop (which never makes that read) decides.
// The fault is placed by offset (past the first read), not by call count: how many reads the
// read-ahead made first is the scheduler's business.
func TestEarlyDamageBeforeReadFault(t *testing.T) {
	data := bytes.Clone(bigLog.Bytes)
	data[bigLog.Offsets[3]+format.V1HeaderSize] ^= 1
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			r := faults.Bytes(data, faults.StartingFrom(8<<10).Fail(faults.ErrInjected))
			st, stats, err := run(context.Background(), data, r, cfg, apply.Discard)
			what := fmt.Sprintf("%+v bad record 3, read fault past 8 KiB", cfg)
			if !errors.Is(err, recovery.ErrCorruptWAL) || st.Stats.Records != 3 {
				t.Fatalf("%s: want CORRUPT_WAL after 3 records, got %v after %d", what, err, st.Stats.Records)
			}
			settled(t, what, stats)
		})
	}
}

func TestBadRecordEarlyWithManyInFlight(t *testing.T) {
	for _, k := range []int{0, 3, 500} {
		data := bytes.Clone(bigLog.Bytes)
		data[bigLog.Offsets[k]+format.V1HeaderSize+2] ^= 0x80
		for _, cfg := range configs {
			t.Run(cfgName(cfg), func(t *testing.T) {
				applied := 0
				st, stats, err := run(context.Background(), data, bytes.NewReader(data), cfg, apply.Func(func(apply.Record) error { applied++; return nil }))
				what := fmt.Sprintf("%+v bad record %d", cfg, k)
				var re *recovery.Error
				if !errors.As(err, &re) || re.Code != recovery.CodeCorruptWAL || re.Offset != bigLog.Offsets[k] {
					t.Fatalf("%s: want CORRUPT_WAL at %d, got %v", what, bigLog.Offsets[k], err)
				}
				if applied != k || st.Stats.Records != int64(k) {
					t.Fatalf("%s: applied %d records, want exactly the %d before the bad one", what, applied, k)
				}
				settled(t, what, stats)
			})
		}
	}
}

// TestRecordIsStaleAfterApply: a Record's payload is a view of a pooled buffer; once Apply
// returns it is released, and in test builds poisoned or reused. A test that kept it sees that.
func TestRecordIsStaleAfterApply(t *testing.T) {
	if !bufpool.Debug {
		t.Skip("poisoning is on only with -race or -tags invariants")
	}
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			var kept []byte
			var orig []byte
			_, stats, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(r apply.Record) error {
				if kept == nil {
					kept, orig = r.Payload, bytes.Clone(r.Payload)
				}
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(kept, orig) {
				t.Fatalf("%+v: a payload kept past Apply still reads as valid; it must be stale", cfg)
			}
			settled(t, "stale", stats)
		})
	}
}

// TestSequentialStartsNoGoroutines: parallelism 1 is a plain loop on the caller's goroutine.
func TestSequentialStartsNoGoroutines(t *testing.T) {
	_, _, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), configs[0], apply.Func(func(apply.Record) error {
		goleak.VerifyNone(t) // only this goroutine (and the test runner's) exist, mid-recovery
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// TestApplierPanicReachesTheCaller: a panicking Applier unwinds to the caller of Run at every
// parallelism (as the sequential loop does), after every goroutine has exited.
func TestApplierPanicReachesTheCaller(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			func() {
				defer func() {
					if p := panicValue(recover()); p != "applier bug" {
						t.Fatalf("%+v: recovered %v, want the Applier's panic", cfg, p)
					}
					goleak.VerifyNone(t)
				}()
				n := 0
				run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(apply.Record) error {
					if n++; n == 100 {
						panic("applier bug")
					}
					return nil
				}))
				t.Fatalf("%+v: Run returned although the Applier panicked", cfg)
			}()
		})
	}
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
