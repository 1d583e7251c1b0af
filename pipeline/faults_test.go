package pipeline_test

// A ReadAt that misbehaves (internal/faults): a read that fails, panics, calls runtime.Goexit,
// fills the buffer and reports an error, or returns other bytes on a re-read is reported as
// the sequential loop reports it, at every parallelism and read size; a read the loop never
// makes (read-ahead past the decision, a chunk inside a record read whole) changes nothing.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
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

func TestReadFailsAtCallK(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			for _, k := range []int64{1, 2, 30} {
				fault := faults.OnCall(k).Fail(faults.ErrInjected)
				stats, err := run(context.Background(), bigLog.Bytes, faults.Bytes(bigLog.Bytes, fault), cfg, apply.Discard)
				what := fmt.Sprintf("%+v read fails at call %d", cfg, k)
				if !errors.Is(err, faults.ErrInjected) || !errors.Is(err, recovery.ErrIO) || fault.Count() != 1 {
					t.Fatalf("%s: err=%v fired=%d", what, err, fault.Count())
				}
				settled(t, what, stats)
			}
		})
	}
}

// TestReadErrorSameEverywhere: a device error on one byte is reported with the same code,
// offset and message at every parallelism and read size, whether the byte is met by a chunk
// read, a header split across chunks or a straddler's read; and a byte the sequential loop
// never reads (inside a record it read whole, or past the decision) is never reported.
func TestReadErrorSameEverywhere(t *testing.T) {
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		l := advLog(layout, 11, 3000)
		data := l.Bytes
		for _, failAt := range []int64{-1, l.Offsets[len(l.Offsets)/3]} { // an Applier failing a third of the way
			var xs []int64
			for x := layout.FirstRecord(); x < int64(len(data)); x += 37 {
				xs = append(xs, x)
			}
			codes := map[walerr.Code]int{}
			for _, x := range xs {
				r := faults.Bytes(data, faults.Touching(x).Fail(errEIO)) // every read of byte x fails
				ref := summarizeFail(t, data, layout, r, pipeline.Config{Parallelism: 1, ReadSize: 64}, failAt)
				codes[ref.code]++
				for _, cfg := range []pipeline.Config{{Parallelism: 2, Depth: 2, ReadSize: 64}, {Parallelism: 4, Depth: 9, ReadSize: 64}, {Parallelism: 8, Depth: 4, ReadSize: 64}} {
					if g := summarizeFail(t, data, layout, r, cfg, failAt); g != ref {
						t.Fatalf("%v fault at %d %+v:\n got  %v\n want %v", layout, x, cfg, g, ref)
					}
				}
			}
			t.Logf("%v applier fails at %d: %d fault offsets, outcomes %v", layout, failAt, len(xs), codes)
		}
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
			stats, err := run(context.Background(), data, r, cfg, apply.Discard)
			what := fmt.Sprintf("%+v bad record 3, read fault past 8 KiB", cfg)
			if !errors.Is(err, recovery.ErrCorruptWAL) || stats.Records != 3 {
				t.Fatalf("%s: want CORRUPT_WAL after 3 records, got %v after %d", what, err, stats.Records)
			}
			settled(t, what, stats)
		})
	}
}

// TestSkippedChunkReadErrorIgnored: chunks wholly inside a record read whole are read ahead
// in parallel but never needed; a read error there (at the chunk's own start, a read the
// sequential loop never makes) must not be reported.
func TestSkippedChunkReadErrorIgnored(t *testing.T) {
	const rs = 4 << 10
	rng := rand.New(rand.NewPCG(3, 3))
	l := testlog.Build(format.LayoutV1)
	for range 40 {
		l.Append(testlog.SizedTx(rng, 200, 8))
	}
	bigAt := len(l.Offsets)
	l.Append(testlog.SizedTx(rng, 7*rs+123, 8))
	for range 40 {
		l.Append(testlog.SizedTx(rng, 200, 8))
	}
	first := format.LayoutV1.FirstRecord()
	var at []int64
	bigStart, bigEnd := l.Offsets[bigAt], l.Offsets[bigAt+1]
	for k := int64(0); first+k*rs < int64(len(l.Bytes)); k++ {
		if s := first + k*rs; s > bigStart && s+rs <= bigEnd {
			at = append(at, s) // a chunk wholly inside the big record
		}
	}
	if len(at) < 5 {
		t.Fatalf("setup: only %d covered chunks", len(at))
	}
	for _, cfg := range []pipeline.Config{{Parallelism: 1, ReadSize: rs}, {Parallelism: 2, Depth: 3, ReadSize: rs}, {Parallelism: 8, Depth: 16, ReadSize: rs}} {
		fired := int64(0)
		for range 5 {
			fault := faults.StartingAt(at...).Fail(errEIO) // every read that starts a covered chunk
			s := summarize(t, l.Bytes, format.LayoutV1, faults.Bytes(l.Bytes, fault), cfg)
			if s.code != "" || s.records != int64(len(l.Offsets)) {
				t.Fatalf("%+v: %v (read errors fired in skipped chunks: %d)", cfg, s, fault.Count())
			}
			fired += fault.Count()
		}
		t.Logf("%+v: %d read errors fired in skipped chunks over 5 runs, none reported", cfg, fired)
	}
}

// TestFullReadWithErrorIsNotGood: a read that fills the buffer but reports an error is an I/O
// error, never a reason to cut (before: zeros came back with EIO and the tail was cut).
func TestFullReadWithErrorIsNotGood(t *testing.T) {
	for _, cfg := range configs {
		t.Run(cfgName(cfg), func(t *testing.T) {
			// Every read of the last 100 bytes returns zeros, a full count and EIO.
			r := faults.Bytes(bigLog.Bytes, faults.Past(int64(len(bigLog.Bytes))-100).Lie(errEIO))
			stats, err := run(context.Background(), bigLog.Bytes, r, cfg, apply.Discard)
			if !errors.Is(err, recovery.ErrIO) || !errors.Is(err, errEIO) || stats.Truncation != nil {
				t.Fatalf("%+v: want IO_ERROR and no cut, got %v, cut %v", cfg, err, stats.Truncation)
			}
			settled(t, "full read with error", stats)
		})
	}
}

// TestStraddlerReadDifferentlyIsIOError: the carver validates a straddling record's header,
// then reads the record again, header included; the walk trusts the length in that second
// copy. When the second read returns a different header (a device that flips a bit on a
// re-read, a file rewritten under us), recovery fails with a typed I/O error at the record,
// at every parallelism (before: a slice-bounds panic from bad input).
func TestStraddlerReadDifferentlyIsIOError(t *testing.T) {
	const rs = 4 << 10
	rng := rand.New(rand.NewPCG(6, 6))
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		for _, big := range []bool{false, true} {
			l := testlog.Build(layout)
			for range 30 {
				l.Append(testlog.SizedTx(rng, 300, 8)) // the 14th or so runs past the first chunk
			}
			if big {
				l.Append(testlog.SizedTx(rng, 3*rs, 8))
			}
			for range 10 {
				l.Append(testlog.SizedTx(rng, 300, 8))
			}
			// The first record that runs past a chunk boundary (and, if big, the large one).
			var at int64 = -1
			for i, o := range l.Offsets[:len(l.Offsets)-1] {
				end := l.Offsets[i+1]
				chunkEnd := layout.FirstRecord() + ((o-layout.FirstRecord())/rs+1)*rs
				if end > chunkEnd && (!big || end-o > rs) {
					at = o
					break
				}
			}
			if at < 0 {
				t.Fatal("setup: no straddler")
			}
			for _, par := range []int{1, 3} {
				t.Run(fmt.Sprintf("%v/big=%v/par=%d", layout, big, par), func(t *testing.T) {
					defer func() {
						if p := panicValue(recover()); p != nil {
							t.Fatalf("panic: %v", p)
						}
					}()
					// A read that starts exactly at the straddler (the carver's second read of it,
					// header included) sees its length field raised by 1000: storage that returns
					// different bytes on a re-read, or a file overwritten during recovery.
					r := faults.Bytes(l.Bytes, faults.StartingAt(at).Corrupt(func(b []byte, _ faults.Call) {
						if len(b) >= 4 {
							binary.BigEndian.PutUint32(b, binary.BigEndian.Uint32(b)+1000)
						}
					}))
					stats, err := runL(context.Background(), int64(len(l.Bytes)), layout, r, pipeline.Config{Parallelism: par, Depth: 4, ReadSize: rs}, apply.Discard)
					if walerr.CodeOf(err) == "" {
						t.Fatalf("want a typed error for a record that changed between two reads, got %v", err)
					}
					settled(t, "reread", stats)
				})
			}
		}
	}
}

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

// outcomeOf runs cfg over r and says what came back: the panic's value, or the decision.
func outcomeOf(t *testing.T, data []byte, layout format.Layout, r readerAt, cfg pipeline.Config) (out string) {
	t.Helper()
	defer func() {
		if p := panicValue(recover()); p != nil {
			out = fmt.Sprint("panic: ", p)
		}
		goleak.VerifyNone(t)
	}()
	return runFull(t, data, layout, r, cfg).String()
}

// TestReaderPanicByOffsetSameEverywhere: a ReadAt that panics on every read touching one
// byte (a chunk read, a header split across chunks, a straddler, a record larger than a read,
// the streamed CRC of a legacy length, the evidence search after damage) gives, at every
// parallelism and depth, what the sequential loop gives at the same read size: the same panic
// where the loop reads that byte, the same decision where it never does (the read-ahead met it
// and dropped it). Damage sits a little past the middle, so the evidence search reads after it.
func TestReaderPanicByOffsetSameEverywhere(t *testing.T) {
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		const rs = 512
		l := bigRecordLog(31, layout, rs, 64) // about 60 KiB: the search's windows (16-48 KiB) end well before it does
		data := bytes.Clone(l.Bytes)
		data[l.Offsets[15]+int64(layout.HeaderSize())+3] ^= 0x10 // a payload flip: damage, then the search
		kinds := map[bool]int{}
		for x := layout.FirstRecord(); x < int64(len(data)); x += 211 {
			r := faults.Bytes(data, faults.Touching(x).Panic(fmt.Sprintf("byte %d unreadable", x))) // every read of byte x
			ref := outcomeOf(t, data, layout, r, pipeline.Config{Parallelism: 1, ReadSize: rs})
			kinds[len(ref) > 6 && ref[:6] == "panic:"]++
			for _, cfg := range []pipeline.Config{{Parallelism: 2, Depth: 2, ReadSize: rs}, {Parallelism: 3, Depth: 7, ReadSize: rs}, {Parallelism: 8, Depth: 16, ReadSize: rs}} {
				for range 2 {
					if g := outcomeOf(t, data, layout, r, cfg); g != ref {
						t.Fatalf("%v byte %d %+v:\n got  %s\n want %s", layout, x, cfg, g, ref)
					}
				}
			}
		}
		if kinds[true] == 0 || kinds[false] == 0 {
			t.Fatalf("%v: the offsets reach only one kind of outcome (panic: %d, decided: %d)", layout, kinds[true], kinds[false])
		}
		t.Logf("%v: %d offsets where the loop panics, %d where it decides first", layout, kinds[true], kinds[false])
	}
}

// TestFaultAtEveryReadCall: a panic, or a runtime.Goexit, at any read call (a chunk read, a
// header split, a straddler, a streamed legacy CRC, the evidence search) stops the pipeline
// without a hang or a leak: the panic reaches the caller, a Goexit ends the caller's goroutine,
// and the pool is closed clean (Close panics if a buffer is out, which would surface as a
// different panic value).
func TestFaultAtEveryReadCall(t *testing.T) {
	const rs = 4 << 10
	l := bigRecordLog(8, format.LayoutLegacy, rs, 30)
	data := bytes.Clone(l.Bytes)
	data[l.Offsets[25]+9] ^= 1 // damage near the end: the evidence search reads too
	// reads is every (offset, length) r was asked for; atK, what call k asked for.
	reads := func(r *faults.Reader, k int64) (all map[[2]int64]bool, atK [2]int64) {
		all = map[[2]int64]bool{}
		for _, c := range r.Log() {
			all[[2]int64{c.Off, int64(c.Len)}] = true
			if c.N == k {
				atK = [2]int64{c.Off, int64(c.Len)}
			}
		}
		return all, atK
	}
	var calls int64
	var loopReads map[[2]int64]bool // what the sequential loop reads
	{
		r := faults.Bytes(data, faults.Always().Record())
		summarize(t, data, format.LayoutLegacy, r, pipeline.Config{Parallelism: 1, ReadSize: rs})
		calls = r.Calls()
		loopReads, _ = reads(r, 0)
	}
	for _, cfg := range []pipeline.Config{{Parallelism: 1, ReadSize: rs}, {Parallelism: 2, Depth: 2, ReadSize: rs}, {Parallelism: 4, Depth: 7, ReadSize: rs}} {
		for k := int64(1); k <= calls+2; k += max(1, calls/40) {
			for _, goexit := range []bool{false, true} {
				fault := faults.OnCall(k).Panic(fmt.Sprintf("read call %d", k))
				if goexit {
					fault = faults.OnCall(k).Goexit()
				}
				r := faults.Bytes(data, faults.Always().Record(), fault)
				type result struct {
					returned bool
					p        any
				}
				ch := make(chan result, 1)
				go func() {
					var res result
					defer func() {
						res.p = panicValue(recover())
						ch <- res
					}()
					runL(context.Background(), int64(len(data)), format.LayoutLegacy, r, cfg, apply.Discard)
					res.returned = true
				}()
				var res result
				select {
				case res = <-ch:
				case <-time.After(time.Minute): // a hang detector, not a timing assertion
					t.Fatalf("%+v fault at call %d (goexit %v): hang", cfg, k, goexit)
				}
				fired := r.Calls() >= k
				_, atK := reads(r, k)
				switch {
				case !fired && (!res.returned || res.p != nil):
					t.Fatalf("%+v call %d: no fault fired, but returned=%v panic=%v", cfg, k, res.returned, res.p)
				case fired && goexit && res.p != nil,
					fired && goexit && loopReads[atK] && res.returned:
					// A Goexit ends the caller's goroutine; only one in a read-ahead the loop never
					// makes, in flight when the decision stopped the run, may instead be dropped
					// with that straggler (pipeline.Run's doc).
					t.Fatalf("%+v Goexit at call %d: returned=%v panic=%v", cfg, k, res.returned, res.p)
				case fired && !goexit && !loopReads[atK] && (!res.returned || res.p != nil):
					// a read-ahead the loop never makes: its panic must not become the outcome
					t.Fatalf("%+v panic at call %d (a read the loop never makes): returned=%v panic=%v", cfg, k, res.returned, res.p)
				case fired && !goexit && loopReads[atK] && res.p != fmt.Sprintf("read call %d", k):
					t.Fatalf("%+v panic at call %d: recovered %#v", cfg, k, res.p)
				}
				goleak.VerifyNone(t)
			}
		}
	}
}

// TestReadAheadFaultKeepsDecision: a panic in a ReadAt of read-ahead (a read the sequential
// loop never makes, past the chunk that decides the stream) does not replace the decision.
// The stream is decided in chunk 0 (the Applier fails on record 0, or record 1 is larger than
// the maximum record size); the sequential loop never reads past chunk 1 and returns that
// decision. The test holds the Applier on record 0 until the read-ahead has faulted, so that
// the fault always comes first. A runtime.Goexit cannot be caught: it ends the recovery
// wherever it happens, at any parallelism past 1 (documented on pipeline.Run).
func TestReadAheadFaultKeepsDecision(t *testing.T) {
	const rs = 4 << 10
	l := testlog.RandomLog(4, format.LayoutV1, 3000, 3, 40)
	tooLarge := bytes.Clone(l.Bytes)
	o := l.Offsets[1]
	binary.BigEndian.PutUint32(tooLarge[o:], 5000) // within the file, over a 4000-byte maximum
	binary.BigEndian.PutUint32(tooLarge[o+4:], format.LengthChecksum(5000))
	boom := errors.New("store full")
	for _, c := range []struct {
		name string
		data []byte
		max  uint32
		fail bool
		at   int64 // the first read that touches a byte at or past this offset faults
		code walerr.Code
	}{
		{"applier-fails", l.Bytes, 1 << 30, true, 3 * rs, walerr.ApplyFailed},
		// The carve of chunk 0 ends the stream, so only chunks claimed before it are read ahead.
		{"record-too-large", tooLarge, 4000, false, format.LayoutV1.FirstRecord() + rs, walerr.RecordTooLarge},
	} {
		for _, goexit := range []bool{false, true} {
			for _, cfg := range []pipeline.Config{{Parallelism: 1, ReadSize: rs}, {Parallelism: 2, Depth: 6, ReadSize: rs}, {Parallelism: 4, Depth: 8, ReadSize: rs}} {
				name := fmt.Sprintf("%s/goexit=%v/par=%d", c.name, goexit, cfg.Parallelism)
				t.Run(name, func(t *testing.T) {
					cfg.MaxRecord = c.max
					// The first read that touches a byte at or past c.at panics (or Goexits).
					fault := faults.Past(c.at).Panic("read-ahead fault")
					if goexit {
						fault = faults.Past(c.at).Goexit()
					}
					rules := []*faults.Rule{fault}
					if !c.fail && cfg.Parallelism > 1 { // chunk 0's read waits for the read-ahead's fault
						// (or 5 s: if it never comes, the test cannot fail)
						rules = append([]*faults.Rule{faults.StartingAt(format.LayoutV1.FirstRecord()).Await(fault.Fired(), 5*time.Second, nil)}, rules...)
					}
					r := faults.Bytes(c.data, rules...)
					out := make(chan string, 1)
					go func() {
						res := "goexit"
						defer func() {
							if p := panicValue(recover()); p != nil {
								res = fmt.Sprint("panic: ", p)
							}
							out <- res
						}()
						_, err := runL(context.Background(), int64(len(c.data)), format.LayoutV1, r, cfg, apply.Func(func(rec apply.Record) error {
							if rec.Offset == l.Offsets[0] && cfg.Parallelism > 1 {
								select { // hold record 0 until the read-ahead faulted
								case <-fault.Fired():
									time.Sleep(10 * time.Millisecond) // let the fault stop the run
								case <-time.After(5 * time.Second): // not reached: the test cannot fail
								}
							}
							if c.fail {
								return boom
							}
							return nil
						}))
						res = "error " + string(walerr.CodeOf(err))
					}()
					var got string
					select {
					case got = <-out:
					case <-time.After(time.Minute):
						t.Fatal("hang")
					}
					want := "error " + string(c.code)
					if goexit && cfg.Parallelism > 1 {
						want = "goexit"
					}
					if got != want {
						t.Fatalf("got %q, want %q: a fault in a read the sequential loop never makes replaced the decision", got, want)
					}
					goleak.VerifyNone(t)
				})
			}
		}
	}
}
