package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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

// damagedAt354 is a log of small records whose record at offset 354 fails its CRC, followed
// by good records (evidence of later writes: CORRUPT_WAL at 354), 128 KiB in all.
func damagedAt354(t *testing.T) []byte {
	t.Helper()
	l := testlog.Build(format.LayoutV1, format.AppendSet(nil, []byte("key"), bytes.Repeat([]byte{'v'}, 52)))
	for len(l.Bytes) < 128<<10 {
		l.Append(format.AppendSet(nil, []byte("key"), bytes.Repeat([]byte{'v'}, 30)))
	}
	const at = 354
	found := false
	for _, off := range l.Offsets {
		found = found || off == at
	}
	if !found {
		t.Fatalf("setup: no record starts at %d: %v", at, l.Offsets[:12])
	}
	data := bytes.Clone(l.Bytes)
	data[at+format.V1HeaderSize+10] ^= 0xFF // a payload byte: the CRC fails
	return data
}

// TestDecisionDoesNotWaitForReadAhead: a log whose damage at offset 354 decides CORRUPT_WAL,
// with reads past 64 KiB stalling (a network filesystem, a failing disk). Parallelism 1 never
// makes those reads. In parallel, read-ahead does (the Applier holds the decision back until
// one has stalled), and Run must return the decision at once, the same as the loop's, leaving
// only the stalled reads behind (each holding its buffer), which finish on their own once
// released: then nothing is left (goleak). Before, Run returned only when the stalled reads
// did, never if they never do; this test released them only after Run returned, so it hung.
// Meanwhile a second recovery runs to the end: the straggler's pooled memory is not handed on
// to it while the straggler may still write into it (the race detector would see that).
func TestDecisionDoesNotWaitForReadAhead(t *testing.T) {
	data := damagedAt354(t)
	_, want := run(context.Background(), data, bytes.NewReader(data), pipeline.Config{Parallelism: 1, Depth: 1, ReadSize: 4 << 10}, apply.Discard)
	var we *recovery.Error
	if !errors.As(want, &we) || we.Code != recovery.CodeCorruptWAL || we.Offset != 354 {
		t.Fatalf("setup: parallelism 1 gives %v, want CORRUPT_WAL at 354", want)
	}
	for _, cfg := range []pipeline.Config{{Parallelism: 2, Depth: 17, ReadSize: 4 << 10}, {Parallelism: 8, Depth: 16, ReadSize: 4 << 10}} {
		t.Run(fmt.Sprintf("par=%d", cfg.Parallelism), func(t *testing.T) {
			// Every read of a byte past 64 KiB stalls until the gate is released (deferred too, so
			// that a failing test leaves no read stalled).
			gate := faults.NewGate()
			defer gate.Release()
			stall := faults.Past(64 << 10).Stall(gate.C())
			r := faults.Bytes(data, stall)
			first := true
			app := apply.Func(func(apply.Record) error {
				if first { // hold the decision until read-ahead has stalled
					first = false
					select {
					case <-stall.Fired():
					case <-time.After(time.Minute):
						return errors.New("setup: no read-ahead reached 64 KiB")
					}
				}
				return nil
			})
			type result struct {
				stats pipeline.Stats
				err   error
			}
			done := make(chan result, 1)
			go func() {
				stats, err := run(context.Background(), data, r, cfg, app)
				done <- result{stats, err}
			}()
			var res result
			select {
			case res = <-done:
			case <-time.After(time.Minute): // a hang detector: the reads are stalled for good
				t.Fatal("Run did not return while a read it does not need is stalled")
			}
			if res.err == nil || res.err.Error() != want.Error() {
				t.Fatalf("got %v, want parallelism 1's %v", res.err, want)
			}
			if res.stats.Stragglers < 1 || res.stats.Out > res.stats.Stragglers {
				t.Fatalf("%d straggler(s) holding %d buffer(s): want at least the stalled read, each with at most its buffer", res.stats.Stragglers, res.stats.Out)
			}
			// Another recovery, while the straggler holds its buffer.
			other := testlog.RandomLog(7, format.LayoutV1, 3000, 3, 40)
			stats, err := run(context.Background(), other.Bytes, bytes.NewReader(other.Bytes), cfg, apply.Discard)
			if err != nil || stats.Records != int64(len(other.Offsets)) {
				t.Fatalf("a recovery beside the straggler: %v after %d records", err, stats.Records)
			}
			gate.Release()
			goleak.VerifyNone(t)
		})
	}
}

// TestContextEndsAStalledDecision: the evidence search after the damaged header at 354 (zeros
// up to 128 KiB) stalls in a read past 64 KiB, on the applier itself, and so does read-ahead. The
// context ends (canceled once the search's read has stalled, or its deadline passes): Run
// returns CANCELED at once, matching the context's error, while the reads stay stalled; once
// they are released nothing is left. Before, it waited for the stalled reads, deadline or not.
func TestContextEndsAStalledDecision(t *testing.T) {
	data := damagedAt354(t)
	data[354+4] ^= 0xFF                   // the header's self-checksum fails too: a search follows
	clear(data[354+format.V1HeaderSize:]) // through nothing but zeros
	for _, how := range []string{"cancel", "deadline"} {
		for _, cfg := range []pipeline.Config{{Parallelism: 2, Depth: 4, ReadSize: 4 << 10}, {Parallelism: 8, Depth: 16, ReadSize: 4 << 10}} {
			t.Run(fmt.Sprintf("%s/par=%d", how, cfg.Parallelism), func(t *testing.T) {
				// Every read of a byte past 64 KiB stalls until the gate is released; stalls gets
				// the length of each.
				gate := faults.NewGate()
				defer gate.Release()
				stalls := make(chan int, 1<<16)
				r := faults.Bytes(data, faults.Past(64<<10).Do(func(c faults.Call) { stalls <- c.Len }).Stall(gate.C()))
				quit := make(chan struct{})
				defer close(quit)
				var ctx context.Context
				var cancel context.CancelFunc
				cause := context.Canceled
				if how == "deadline" {
					ctx, cancel = context.WithTimeout(context.Background(), 20*time.Millisecond)
					cause = context.DeadlineExceeded
				} else {
					ctx, cancel = context.WithCancel(context.Background())
					go func() { // cancel once the search's own read (longer than a chunk's) stalls
						for {
							select {
							case n := <-stalls:
								if n > cfg.ReadSize {
									cancel()
									return
								}
							case <-quit:
								return
							}
						}
					}()
				}
				defer cancel()
				done := make(chan error, 1)
				var stats pipeline.Stats
				go func() {
					var err error
					stats, err = run(ctx, data, r, cfg, apply.Discard)
					done <- err
				}()
				var err error
				select {
				case err = <-done:
				case <-time.After(time.Minute): // a hang detector: the reads are stalled for good
					t.Fatal("Run did not return after its context ended")
				}
				if !errors.Is(err, recovery.ErrCanceled) || !errors.Is(err, cause) {
					t.Fatalf("want CANCELED (%v), got %v", cause, err)
				}
				if stats.Out > stats.Stragglers || how == "cancel" && stats.Stragglers < 1 {
					t.Fatalf("%d buffer(s) out, %d straggler(s): want at most one each, and in the search's stalled read at least the applier", stats.Out, stats.Stragglers)
				}
				gate.Release()
				goleak.VerifyNone(t)
			})
		}
	}
}
