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
	"github.com/streamwal/recovery/format"
)

func TestApplierFailsAtRecordK(t *testing.T) {
	boom := errors.New("store full")
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			for _, k := range []int64{0, 5, 9999} {
				n := int64(0)
				stats, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(r apply.Record) error {
					if n == k {
						return boom
					}
					n++
					return nil
				}))
				what := fmt.Sprintf("%+v applier fails at %d", cfg, k)
				if !errors.Is(err, boom) || stats.Records != k {
					t.Fatalf("%s: err=%v records=%d", what, err, stats.Records)
				}
				settled(t, what, stats)
			}
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
				stats, err := run(context.Background(), data, bytes.NewReader(data), cfg, apply.Func(func(apply.Record) error { applied++; return nil }))
				what := fmt.Sprintf("%+v bad record %d", cfg, k)
				var re *recovery.Error
				if !errors.As(err, &re) || re.Code != recovery.CodeCorruptWAL || re.Offset != bigLog.Offsets[k] {
					t.Fatalf("%s: want CORRUPT_WAL at %d, got %v", what, bigLog.Offsets[k], err)
				}
				if applied != k || stats.Records != int64(k) {
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
			stats, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(func(r apply.Record) error {
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
	_, err := run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), configs[0], apply.Func(func(apply.Record) error {
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
