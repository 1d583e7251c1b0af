package pipeline_test

// Who holds the memory: the one shared large-record buffer passed from worker to worker (and
// held by an Applier that fails), and recoveries side by side on the pool's size classes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/pipeline"
	"github.com/streamwal/recovery/walerr"
)

// TestBigTokenHandOff: many consecutive records larger than a read, at depth 2 to 16 and up to
// 8 workers, each waiting in Carve for the one shared buffer while its holder awaits apply:
// no deadlock, every payload intact for the whole of its Apply call (nobody writes the shared
// buffer while the Applier reads it), every buffer back.
func TestBigTokenHandOff(t *testing.T) {
	const rs = 4 << 10
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		l := bigRecordLog(5, layout, rs, 120)
		hdr := int64(layout.HeaderSize())
		for _, cfg := range []pipeline.Config{{Parallelism: 2, Depth: 2, ReadSize: rs}, {Parallelism: 8, Depth: 2, ReadSize: rs}, {Parallelism: 3, Depth: 4, ReadSize: rs}, {Parallelism: 8, Depth: 16, ReadSize: rs}} {
			i := 0
			stats, err := runL(context.Background(), int64(len(l.Bytes)), layout, bytes.NewReader(l.Bytes), cfg, apply.Func(func(rec apply.Record) error {
				want := l.Bytes[l.Offsets[i]+hdr : l.Offsets[i]+hdr+int64(len(rec.Payload))]
				if rec.Offset != l.Offsets[i] || !bytes.Equal(rec.Payload, want) {
					return fmt.Errorf("record %d wrong on entry", i)
				}
				for range 3 {
					runtime.Gosched() // let the other workers carve (and read) meanwhile
				}
				if !bytes.Equal(rec.Payload, want) {
					return fmt.Errorf("record %d changed during Apply", i)
				}
				i++
				return nil
			}))
			if err != nil || stats.Records != int64(len(l.Offsets)) || stats.Truncation != nil {
				t.Fatalf("%v %+v: %v after %d records", layout, cfg, err, stats.Records)
			}
			settled(t, fmt.Sprintf("%v %+v", layout, cfg), stats)
		}
	}
}

// TestApplierFaultWhileHoldingBig: the Applier panics, Goexits or fails on a record held in the
// shared large-record buffer while later workers wait in Carve for that buffer: nobody hangs,
// the token and every buffer come back.
func TestApplierFaultWhileHoldingBig(t *testing.T) {
	const rs = 4 << 10
	l := bigRecordLog(12, format.LayoutV1, rs, 60)
	hdr := format.LayoutV1.HeaderSize()
	for _, cfg := range []pipeline.Config{{Parallelism: 2, Depth: 2, ReadSize: rs}, {Parallelism: 8, Depth: 5, ReadSize: rs}} {
		for _, how := range []string{"panic", "goexit", "error"} {
			for _, at := range []int{0, 7, 31} {
				if len(l.Bytes[l.Offsets[at]:l.Offsets[at+1]]) <= rs {
					continue
				}
				done := make(chan string, 1)
				go func() {
					out := "goexit"
					defer func() {
						if p := panicValue(recover()); p != nil {
							out = fmt.Sprint("panic ", p)
						}
						done <- out
					}()
					stats, err := runL(context.Background(), int64(len(l.Bytes)), format.LayoutV1, bytes.NewReader(l.Bytes), cfg, apply.Func(func(rec apply.Record) error {
						if rec.Offset == l.Offsets[at] && len(rec.Payload)+hdr > rs {
							switch how {
							case "panic":
								panic("big")
							case "goexit":
								runtime.Goexit()
							}
							return errors.New("big")
						}
						return nil
					}))
					out = fmt.Sprintf("returned %v out=%d", walerr.CodeOf(err), max(0, stats.Out-stats.Stragglers))
				}()
				var got string
				select {
				case got = <-done:
				case <-time.After(time.Minute):
					t.Fatalf("%+v %s at record %d: hang", cfg, how, at)
				}
				want := map[string]string{"panic": "panic big", "goexit": "goexit", "error": "returned APPLY_FAILED out=0"}[how]
				if got != want {
					t.Fatalf("%+v %s at record %d: %s, want %s", cfg, how, at, got, want)
				}
				goleak.VerifyNone(t)
			}
		}
	}
}

// TestConcurrentRecoveriesStayApart: recoveries running at the same time in one process (the
// pool's size classes recycle memory between them) each see only their own file's bytes, for
// the whole of each Apply call.
func TestConcurrentRecoveriesStayApart(t *testing.T) {
	const rs = 4 << 10
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for g := range 6 {
		wg.Go(func() {
			l := testlog.RandomLog(uint64(100+g), format.LayoutV1, 3000, 3, 60)
			for range 3 {
				i := 0
				stats, err := runL(context.Background(), int64(len(l.Bytes)), format.LayoutV1, bytes.NewReader(l.Bytes),
					pipeline.Config{Parallelism: 1 + g%3*3, Depth: 2 + g, ReadSize: rs}, apply.Func(func(rec apply.Record) error {
						want := l.Bytes[l.Offsets[i]+12:][:len(rec.Payload)]
						if !bytes.Equal(rec.Payload, want) {
							return fmt.Errorf("recovery %d record %d: foreign bytes on entry", g, i)
						}
						runtime.Gosched()
						if !bytes.Equal(rec.Payload, want) {
							return fmt.Errorf("recovery %d record %d: bytes changed during Apply", g, i)
						}
						i++
						return nil
					}))
				if err != nil || stats.Records != int64(len(l.Offsets)) || stats.Out > stats.Stragglers {
					errs <- fmt.Errorf("recovery %d: %v, %d records, %d out", g, err, stats.Records, stats.Out)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
