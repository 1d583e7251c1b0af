package recovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/internal/testdepth"
	"github.com/streamwal/recovery/internal/testlog"
)

// decision is what a recovery said, in the terms a file and a stream share.
type decision struct {
	Layout                            recovery.Layout
	Records, Ops, Bytes, End, Largest int64
	Trunc                             *recovery.Truncation
	Code                              recovery.Code
	Offset                            int64
	State                             string // a digest of what the applier received
}

func digest() (recovery.Applier, *bytes.Buffer) {
	var b bytes.Buffer
	return recovery.ApplyFunc(func(r recovery.Record) error {
		fmt.Fprintf(&b, "%d:%d:%x;", r.Offset, r.NumOps(), format.Checksum(r.Payload))
		return nil
	}), &b
}

func fileDecision(t *testing.T, data []byte, opts ...recovery.Option) decision {
	t.Helper()
	app, b := digest()
	res, err := recovery.Recover(context.Background(), bytes.NewReader(data), app, append(opts, recovery.ReadOnly())...)
	return decisionOf(res, err, b)
}

func streamDecision(t *testing.T, r io.Reader, opts ...recovery.Option) (decision, recovery.Result) {
	t.Helper()
	app, b := digest()
	res, err := recovery.RecoverStream(context.Background(), r, app, opts...)
	return decisionOf(res, err, b), res
}

func decisionOf(res recovery.Result, err error, b *bytes.Buffer) decision {
	d := decision{Layout: res.Layout, Records: res.Records, Ops: res.Ops, Bytes: res.Bytes, End: res.End,
		Largest: res.LargestRecord, Trunc: res.Truncation, Code: recovery.CodeOf(err), Offset: -1, State: b.String()}
	var e *recovery.Error
	if errors.As(err, &e) {
		d.Offset = e.Offset
	}
	if err != nil && d.Code == "" {
		d.Code = "untyped: " + recovery.Code(err.Error())
	}
	return d
}

// damage returns a copy of l's bytes with one kind of damage, chosen by rng.
func damage(rng *rand.Rand, l testlog.Log) ([]byte, string) {
	b := bytes.Clone(l.Bytes)
	rec := l.Offsets[rng.IntN(len(l.Offsets))]
	switch rng.IntN(7) {
	case 0:
		return b, "clean"
	case 1:
		cut := rng.Int64N(int64(len(b)) + 1)
		return b[:cut], fmt.Sprintf("cut at %d", cut)
	case 2:
		at := rec + rng.Int64N(int64(len(b))-rec)
		b[at] ^= byte(1 << rng.IntN(8))
		return b, fmt.Sprintf("bit flip at %d", at)
	case 3:
		at := l.Offsets[len(l.Offsets)-1] + rng.Int64N(int64(len(b))-l.Offsets[len(l.Offsets)-1])
		clear(b[at:])
		return b, fmt.Sprintf("zeros from %d", at)
	case 4:
		return append(b, make([]byte, rng.IntN(100<<10))...), "a zero tail"
	case 5:
		at := rec
		clear(b[at : at+min(int64(len(b))-at, 4)])
		return b, fmt.Sprintf("a zeroed length at %d", at)
	default:
		b[rec+1] = 0xFF // a huge length
		return b, fmt.Sprintf("a huge length at %d", rec)
	}
}

// RecoverStream decides as Recover does on a file of the same bytes: the same layout, records
// replayed (and what the applier received), truncation, error code and offset, over random logs
// of both layouts with every kind of damage, at several parallelisms, pool depths and read sizes,
// through readers that deliver one byte at a time or in odd pieces.
func TestStreamDecidesAsTheFile(t *testing.T) {
	n := testdepth.Pick(100, 1000)
	if testing.Short() {
		n = 30
	}
	for seed := range uint64(n) {
		rng := rand.New(rand.NewPCG(seed, 7))
		layout := format.LayoutV1
		if seed%3 == 0 {
			layout = format.LayoutLegacy
		}
		l := testlog.RandomLog(seed, layout, 1+rng.IntN(40), 6, []int{16, 300, 9000}[rng.IntN(3)])
		data, what := damage(rng, l)
		par, depth, rs := 1+rng.IntN(4), 2+rng.IntN(4), []int{4 << 10, 16 << 10, 1 << 20}[rng.IntN(3)]
		opts := []recovery.Option{recovery.WithParallelism(par), recovery.WithPoolDepth(depth), recovery.WithReadSize(rs)}
		want := fileDecision(t, data)
		var r io.Reader = bytes.NewReader(data)
		switch seed % 4 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		case 3:
			r = iotest.DataErrReader(r)
		}
		got, res := streamDecision(t, r, opts...)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d (%v log, %s, parallelism %d, depth %d, read size %d):\nstream %+v\nfile   %+v", seed, layout, what, par, depth, rs, got, want)
		}
		if res.Truncated {
			t.Fatalf("seed %d: a stream reported as cut", seed)
		}
	}
}

// A stream whose bytes after a bad record are more than the spool is refused (CORRUPT_WAL at
// the bad record), never taken for a torn tail; with room, it decides as the file does.
func TestStreamSpool(t *testing.T) {
	l := testlog.RandomLog(1, format.LayoutV1, 20, 4, 100)
	data := bytes.Clone(l.Bytes)
	at := l.Offsets[len(l.Offsets)-1]
	data[at+2] ^= 0xFF                            // the last record's header
	data = append(data, make([]byte, 256<<10)...) // and zeros after it
	want := fileDecision(t, data)
	if want.Trunc == nil {
		t.Fatalf("the file recovery: %+v", want)
	}
	got, _ := streamDecision(t, bytes.NewReader(data))
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stream %+v\nfile %+v", got, want)
	}
	got, _ = streamDecision(t, bytes.NewReader(data), recovery.WithStreamSpool(64<<10))
	if got.Code != recovery.CodeCorruptWAL || got.Offset != at {
		t.Fatalf("over the spool: %+v, want CORRUPT_WAL at %d", got, at)
	}
	// The records before the bad one are replayed as the file replays them, whatever the
	// classification then says.
	if got.Records != want.Records || got.State != want.State {
		t.Fatalf("over the spool: %d records replayed, the file replays %d", got.Records, want.Records)
	}
}

// A stream refused for want of spool, or for a read error while its bytes after a bad record
// are gathered, has replayed the records before the bad one first, as a file's recovery has:
// the same records reach the Applier, and an Applier's error on one of them is what comes
// back (APPLY_FAILED at its record), since it comes first in file order.
func TestStreamReplaysTheRecordsBeforeTheBadOne(t *testing.T) {
	l := testlog.RandomLog(2, format.LayoutV1, 40, 4, 100)
	bad := l.Offsets[30]
	data := bytes.Clone(l.Bytes)
	data[bad+format.V1HeaderSize] ^= 0xFF // record 30's payload: its CRC fails
	data = append(data, make([]byte, 256<<10)...)
	fails := l.Offsets[29]
	for _, c := range []struct {
		name string
		r    func() io.Reader
	}{
		{"over the spool", func() io.Reader { return bytes.NewReader(data) }},
		{"a read error after the bad record", func() io.Reader {
			return io.MultiReader(bytes.NewReader(data[:bad+4096]), iotest.ErrReader(errors.New("disk on fire")))
		}},
	} {
		for _, par := range []int{1, 3} {
			opts := []recovery.Option{recovery.WithParallelism(par), recovery.WithStreamSpool(8 << 10), recovery.WithReadSize(64 << 10)}
			got, _ := streamDecision(t, c.r(), opts...)
			if got.Code == "" || got.Records != 30 {
				t.Fatalf("%s, parallelism %d: %+v; want a refusal after the 30 records before the bad one", c.name, par, got)
			}
			var applied int
			res, err := recovery.RecoverStream(context.Background(), c.r(), recovery.ApplyFunc(func(r recovery.Record) error {
				if r.Offset == fails {
					return errors.New("store full")
				}
				applied++
				return nil
			}), opts...)
			var e *recovery.Error
			if !errors.As(err, &e) || e.Code != recovery.CodeApplyFailed || e.Offset != fails || applied != 29 || res.Records != 29 {
				t.Fatalf("%s, parallelism %d: %v after %d records (%d applied); want APPLY_FAILED at %d after 29", c.name, par, err, res.Records, applied, fails)
			}
		}
	}
}

// The kernel's own files, as streams, replay to what the file path replays.
func TestStreamOfEmptyAndShortInputs(t *testing.T) {
	for _, data := range [][]byte{nil, format.FileHeader[:3], format.FileHeader[:], []byte("not a database at all")} {
		want := fileDecision(t, data)
		got, _ := streamDecision(t, bytes.NewReader(data))
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: stream %+v\nfile %+v", data, got, want)
		}
	}
}

// A canceled recovery of a stream whose reader blocks returns CANCELED at once; the source,
// left in the Read, exits when the Read returns and leaves nothing behind.
func TestStreamCancelWhileTheReaderBlocks(t *testing.T) {
	l := testlog.RandomLog(3, format.LayoutV1, 50, 4, 1000)
	// The stream delivers the log, then its next Read blocks until the gate is released.
	gate := faults.NewGate()
	defer gate.Release()
	stall := faults.StartingFrom(int64(len(l.Bytes))).Stall(gate.C())
	r := faults.NewStream(bytes.NewReader(l.Bytes), stall)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-stall.Fired(); cancel() }()
	_, err := recovery.RecoverStream(ctx, r, nil, recovery.WithParallelism(3), recovery.WithReadSize(4<<10))
	if !errors.Is(err, recovery.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want CANCELED", err)
	}
	gate.Release()
	goleak.VerifyNone(t)
}

type panicReader struct{ n int }

func (p *panicReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		panic("the reader broke")
	}
	p.n--
	return copy(b, format.FileHeader[:]), nil
}

// A panic in the caller's Read comes back on the caller's goroutine as a *recovery.Panic
// with the Read's stack, and nothing is left behind.
func TestStreamReaderPanic(t *testing.T) {
	defer goleak.VerifyNone(t)
	defer func() {
		p, ok := recover().(*recovery.Panic)
		if !ok || p.Value != "the reader broke" || !bytes.Contains(p.Stack, []byte("panicReader).Read")) {
			t.Fatalf("recovered %v", p)
		}
	}()
	recovery.RecoverStream(context.Background(), &panicReader{n: 1}, nil, recovery.WithParallelism(2))
	t.Fatal("RecoverStream returned")
}

// A stream's memory is its pool, its largest record and nothing in proportion to its length:
// the same PeakBuffered for a log 16 times longer.
func TestStreamMemoryIsFlatInLength(t *testing.T) {
	peak := func(n int) int64 {
		l := testlog.RandomLog(5, format.LayoutV1, n, 4, 2000)
		res, err := recovery.RecoverStream(context.Background(), bytes.NewReader(l.Bytes), nil,
			recovery.WithParallelism(2), recovery.WithPoolDepth(4), recovery.WithReadSize(16<<10))
		if err != nil {
			t.Fatal(err)
		}
		return res.PeakBuffered
	}
	small, big := peak(200), peak(3200)
	// Whether the read-ahead is full at the peak depends on scheduling: both within the
	// bound, whatever the length, is what flat means here.
	// The pool of 4 x 16 KiB, a 16 KiB read-ahead, and each buffer's record table (4 bytes a
	// record, a record at least 9 bytes).
	if bound := int64(5*16<<10 + 4*4*(16<<10/9+2)); small > bound || big > bound {
		t.Fatalf("peak %d bytes for 200 records, %d for 3,200: over the bound of %d", small, big, bound)
	}
}

// A stream's peak counts its buffers' record tables and the Preparer's words, as a file's
// pool does: with tiny records and 16 words prepared for each, the words of one buffer alone
// outweigh the buffers and the read-ahead.
func TestStreamCountsItsRecordTables(t *testing.T) {
	var log []byte
	log = append(log, format.FileHeader[:]...)
	for i := range 20000 {
		log = format.AppendRecord(log, format.LayoutV1, format.AppendSet(nil, []byte{byte(i)}, []byte{1}))
	}
	const rs = 64 << 10
	perRecord := format.V1HeaderSize + len(format.AppendSet(nil, []byte{0}, []byte{1}))
	words := int64(rs/perRecord) * (16*8 + 4 + 4) // a buffer's records: 16 words, their end, their op count
	prep := recovery.PrepareFunc(func(r recovery.Record, dst []uint64) []uint64 {
		return append(dst, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)
	})
	for _, par := range []int{1, 2} {
		res, err := recovery.RecoverStream(context.Background(), bytes.NewReader(log), nil, recovery.WithPrepare(prep),
			recovery.WithParallelism(par), recovery.WithPoolDepth(2), recovery.WithReadSize(rs))
		if err != nil || res.Records != 20000 {
			t.Fatalf("parallelism %d: %v after %d records", par, err, res.Records)
		}
		if res.PeakBuffered < words {
			t.Fatalf("parallelism %d: peak %d bytes, less than one buffer's prepared words and tables (%d)", par, res.PeakBuffered, words)
		}
	}
}

// WithVerifiedBytes hands over exactly the bytes of the records replayed, in order, with no
// gap: from a file and from a stream, at any parallelism, they are the log's bytes from its
// first record to Result.End.
func TestVerifiedBytesAreTheReplayedRecords(t *testing.T) {
	for seed := range uint64(testdepth.Pick(30, 300)) {
		rng := rand.New(rand.NewPCG(seed, 11))
		layout := format.LayoutV1
		if seed%2 == 0 {
			layout = format.LayoutLegacy
		}
		l := testlog.RandomLog(seed, layout, 1+rng.IntN(60), 5, []int{30, 3000, 70000}[rng.IntN(3)])
		data, what := damage(rng, l)
		for _, stream := range []bool{false, true} {
			var got []byte
			next := layout.FirstRecord()
			opts := []recovery.Option{recovery.WithParallelism(1 + rng.IntN(4)), recovery.WithReadSize(4 << 10),
				recovery.WithVerifiedBytes(func(off int64, b []byte) error {
					if off != next {
						return fmt.Errorf("bytes at %d, want %d", off, next)
					}
					got, next = append(got, b...), off+int64(len(b))
					return nil
				})}
			var res recovery.Result
			var err error
			if stream {
				res, err = recovery.RecoverStream(context.Background(), bytes.NewReader(data), nil, opts...)
			} else {
				res, err = recovery.Recover(context.Background(), bytes.NewReader(data), nil, append(opts, recovery.ReadOnly())...)
			}
			if recovery.CodeOf(err) == recovery.CodeApplyFailed {
				t.Fatalf("seed %d (%s, stream %v): %v", seed, what, stream, err)
			}
			if res.Records == 0 {
				if len(got) != 0 {
					t.Fatalf("seed %d: %d bytes handed over, no record replayed", seed, len(got))
				}
				continue
			}
			if want := data[layout.FirstRecord():res.End]; !bytes.Equal(got, want) {
				t.Fatalf("seed %d (%s, stream %v): %d bytes handed over, want the %d bytes up to End %d", seed, what, stream, len(got), len(want), res.End)
			}
		}
	}
}
