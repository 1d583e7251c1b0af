package pipeline_test

// Adversarial tests of the chunked pipeline (review of the TryLock/carry-chain rewrite).
// Tests named TestBug_* fail on the code as reviewed: each documents one defect.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/pipeline"
	"github.com/streamwal/recovery/walerr"
)

type readerAt interface {
	ReadAt([]byte, int64) (int, error)
}

// runL drives pipeline.Run for either layout, the way recovery.Recover sets up the Stage.
func runL(ctx context.Context, size int64, layout format.Layout, r readerAt, cfg pipeline.Config, app apply.Applier) (*apply.Stage, pipeline.Stats, error) {
	if cfg.MaxRecord == 0 {
		cfg.MaxRecord = classify.DefaultMaxRecord
	}
	st := &apply.Stage{
		Applier: app, Layout: layout, File: r, Size: size,
		Classify: classify.Config{Layout: layout, MaxRecord: cfg.MaxRecord},
		Stats:    apply.Stats{End: layout.FirstRecord()},
	}
	stats, err := pipeline.Run(ctx, r, size, cfg, st)
	return st, stats, err
}

// summary is everything a run decided, for comparisons between configurations.
type summary struct {
	code              walerr.Code
	off               int64
	msg               string
	records, ops, end int64
	trunc             string
	digest            uint32 // CRC of every (offset, payload) the Applier saw, in order
}

func (s summary) String() string {
	return fmt.Sprintf("{%s@%d %q rec=%d ops=%d end=%d trunc=%s digest=%08x}", s.code, s.off, s.msg, s.records, s.ops, s.end, s.trunc, s.digest)
}

// summarize runs the pipeline and checks the two promises of every exit (buffers back, no
// goroutine left), then returns what it decided.
func summarize(t *testing.T, data []byte, layout format.Layout, r readerAt, cfg pipeline.Config) summary {
	t.Helper()
	return summarizeFail(t, data, layout, r, cfg, -1)
}

// summarizeFail is summarize with an Applier that fails on the record at failAt.
func summarizeFail(t *testing.T, data []byte, layout format.Layout, r readerAt, cfg pipeline.Config, failAt int64) summary {
	t.Helper()
	var s summary
	d := crc32.NewIEEE()
	var ob [8]byte
	st, stats, err := runL(context.Background(), int64(len(data)), layout, r, cfg, apply.Func(func(rec apply.Record) error {
		if rec.Offset == failAt {
			return errBoom
		}
		want := data[rec.Offset+int64(layout.HeaderSize()):][:len(rec.Payload)]
		if !bytes.Equal(rec.Payload, want) {
			return fmt.Errorf("payload at %d differs from the file", rec.Offset)
		}
		binary.BigEndian.PutUint64(ob[:], uint64(rec.Offset))
		d.Write(ob[:])
		d.Write(rec.Payload)
		return nil
	}))
	if stats.Out > stats.Stragglers {
		t.Fatalf("%+v: %d buffers still out, %d straggler(s)", cfg, stats.Out, stats.Stragglers)
	}
	if err != nil {
		var we *walerr.Error
		if !errors.As(err, &we) {
			t.Fatalf("%+v: untyped error %v", cfg, err)
		}
		s.code, s.off, s.msg = we.Code, we.Offset, err.Error()
	}
	s.records, s.ops, s.end = st.Stats.Records, st.Stats.Ops, st.Stats.End
	if tr := st.Truncation; tr != nil {
		s.trunc = fmt.Sprintf("%d+%d:%s", tr.Offset, tr.Bytes, tr.Reason)
	}
	s.digest = d.Sum32()
	return s
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

// TestTinyReadsEqualSequential: at read sizes of 1 to 64 bytes (headers split across up to 12
// chunks, every record larger than a read, records ending exactly on chunk boundaries), with
// damaged logs of both layouts, every parallelism decides exactly what the sequential loop
// decides at a 4 KiB read: same error (code, offset, message), same cut, same records replayed.
// The maximum record size is set small enough that some lying lengths are over it.
func TestTinyReadsEqualSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	sizes := []int{1, 2, 3, 5, 7, 8, 9, 11, 12, 13, 16, 17, 31, 64}
	par := []struct{ p, d int }{{1, 1}, {2, 2}, {3, 5}, {8, 3}, {8, 16}}
	classes := map[string]int{}
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		l := advLog(layout, uint64(layout)+3, 1500)
		for name, data := range mutations(l, rng) {
			for _, maxRec := range []uint32{1 << 30, 600} {
				ref := summarize(t, data, layout, bytes.NewReader(data), pipeline.Config{Parallelism: 1, ReadSize: 4 << 10, MaxRecord: maxRec})
				if ref.trunc != "" {
					classes["cut"]++
				} else {
					classes[string(ref.code)]++
				}
				for _, rs := range sizes {
					for _, pd := range par {
						cfg := pipeline.Config{Parallelism: pd.p, Depth: pd.d, ReadSize: rs, MaxRecord: maxRec}
						if g := summarize(t, data, layout, bytes.NewReader(data), cfg); g != ref {
							t.Fatalf("%v %s max %d %+v:\n got  %v\n want %v", layout, name, maxRec, cfg, g, ref)
						}
					}
				}
			}
		}
	}
	t.Logf("reference outcomes (\"\": clean): %v", classes)
	if len(classes) < 4 {
		t.Fatalf("the mutations reach too few outcomes: %v", classes)
	}
	goleak.VerifyNone(t)
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
			st, stats, err := runL(context.Background(), int64(len(l.Bytes)), layout, bytes.NewReader(l.Bytes), cfg, apply.Func(func(rec apply.Record) error {
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
			if err != nil || st.Stats.Records != int64(len(l.Offsets)) || st.Truncation != nil {
				t.Fatalf("%v %+v: %v after %d records", layout, cfg, err, st.Stats.Records)
			}
			settled(t, fmt.Sprintf("%v %+v", layout, cfg), stats)
		}
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
					_, stats, err := runL(context.Background(), int64(len(l.Bytes)), format.LayoutV1, bytes.NewReader(l.Bytes), cfg, apply.Func(func(rec apply.Record) error {
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
				st, stats, err := runL(ctx, int64(len(l.Bytes)), layout, r, cfg, apply.Discard)
				cancel()
				what := fmt.Sprintf("%v %+v cancel at call %d", layout, cfg, k)
				if err != nil && walerr.CodeOf(err) != walerr.Canceled {
					t.Fatalf("%s: %v", what, err)
				}
				if err == nil && st.Stats.Records != int64(len(l.Offsets)) {
					t.Fatalf("%s: no error after %d records", what, st.Stats.Records)
				}
				if r.Calls() < k && err != nil {
					t.Fatalf("%s: canceled though the cancel never fired: %v", what, err)
				}
				settled(t, what, stats)
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
				st, stats, err := runL(context.Background(), int64(len(l.Bytes)), format.LayoutV1, bytes.NewReader(l.Bytes),
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
				if err != nil || st.Stats.Records != int64(len(l.Offsets)) || stats.Out > stats.Stragglers {
					errs <- fmt.Errorf("recovery %d: %v, %d records, %d out", g, err, st.Stats.Records, stats.Out)
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

// TestBug_ReadAheadFaultOverridesDecision: the stream is decided in chunk 0 (the Applier fails
// on record 0, or record 1 is larger than the maximum record size); the sequential loop never
// reads past chunk 1 and returns that decision. The parallel pipeline reads ahead; a panic (or
// Goexit) in ReadAt for a chunk the sequential loop never reads is re-raised on the caller
// instead of the decision, contrary to Run's doc ("as the sequential loop would raise them").
// Which one the caller gets depends on scheduling; the test holds the Applier on record 0
// until the read-ahead has faulted, to make it deterministic.
// TestReadAheadFaultKeepsDecision: a panic in a ReadAt of read-ahead (a read the sequential
// loop never makes, past the chunk that decides the stream) does not replace the decision.
// A runtime.Goexit cannot be caught: it ends the recovery wherever it happens, at any
// parallelism past 1 (documented on pipeline.Run).
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
						_, _, err := runL(context.Background(), int64(len(c.data)), format.LayoutV1, r, cfg, apply.Func(func(rec apply.Record) error {
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

// TestRunRefusesSizeBeforeFirstRecord: pipeline.Run (exported: its callers can pass
// anything) refuses a size before the layout's first record with INVALID_ARGUMENT (before: a
// negative buffer length panicked).
func TestRunRefusesSizeBeforeFirstRecord(t *testing.T) {
	for _, size := range []int64{-1, 0, 4, 7} {
		for _, par := range []int{1, 3} {
			t.Run(fmt.Sprintf("size=%d/par=%d", size, par), func(t *testing.T) {
				defer func() {
					if p := panicValue(recover()); p != nil {
						t.Fatalf("panic: %v", p)
					}
				}()
				data := format.FileHeader[:max(0, size)]
				_, _, err := runL(context.Background(), size, format.LayoutV1, bytes.NewReader(data), pipeline.Config{Parallelism: par, Depth: 4, ReadSize: 4 << 10}, apply.Discard)
				if walerr.CodeOf(err) != walerr.InvalidArgument {
					t.Fatalf("want INVALID_ARGUMENT, got %v", err)
				}
			})
		}
	}
}

var errBoom = errors.New("boom")

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
					_, stats, err := runL(context.Background(), int64(len(l.Bytes)), layout, r, pipeline.Config{Parallelism: par, Depth: 4, ReadSize: rs}, apply.Discard)
					if walerr.CodeOf(err) == "" {
						t.Fatalf("want a typed error for a record that changed between two reads, got %v", err)
					}
					settled(t, "reread", stats)
				})
			}
		}
	}
}
