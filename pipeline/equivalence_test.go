package pipeline_test

// Every configuration decides what the sequential loop decides: at every parallelism, depth
// and read size (down to 1 byte: headers split across chunks, records larger than a read,
// records ending on a chunk boundary), on clean and damaged logs of both layouts, with a
// Preparer in the run and with readers that deliver fewer bytes than asked with a nil error;
// on every Result field the pipeline owns, errors included, and (where the layouts agree) as
// tests/oracle decides.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"slices"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/pipeline"
	"github.com/streamwal/recovery/tests/oracle"
	"github.com/streamwal/recovery/walerr"
)

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
	stats, err := runL(context.Background(), int64(len(data)), layout, r, cfg, apply.Func(func(rec apply.Record) error {
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
	s.records, s.ops, s.end = stats.Records, stats.Ops, stats.End
	if tr := stats.Truncation; tr != nil {
		s.trunc = fmt.Sprintf("%d+%d:%s", tr.Offset, tr.Bytes, tr.Reason)
	}
	s.digest = d.Sum32()
	return s
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

// dribbling is a reader over b that delivers a pseudo-random number of bytes (at least one) of
// every read with a nil error, as io.ReaderAt allows only with an error but some readers do
// anyway, the same for the same read on every goroutine (faults.Rule.Dribble).
func dribbling(b []byte) *faults.Reader { return faults.Bytes(b, faults.Always().Dribble()) }

// fullResult is everything a run decides, for comparisons between configurations.
type fullResult struct {
	code                 walerr.Code
	off                  int64
	msg                  string
	records, ops, bytes_ int64
	end, largest         int64
	trunc                string
	digest               uint32 // (offset, payload, prepared words) of every record applied, in order
}

func (s fullResult) String() string {
	return fmt.Sprintf("{%s@%d %q rec=%d ops=%d bytes=%d end=%d largest=%d trunc=%s digest=%08x}",
		s.code, s.off, s.msg, s.records, s.ops, s.bytes_, s.end, s.largest, s.trunc, s.digest)
}

// prepWords is what the test's Preparer returns for a record: its offset, payload length and
// the CRC of its payload, so the Applier can check it got the words of its own record.
func prepWords(r apply.Record) []uint64 {
	return []uint64{uint64(r.Offset), uint64(len(r.Payload)), uint64(crc32.ChecksumIEEE(r.Payload)), uint64(r.NumOps())}
}

// runFull runs the pipeline with a Preparer and checks, on every exit, the invariants of the
// Result fields against what the Applier received: Records, Ops, Bytes, End and LargestRecord
// are exactly the sums over the records applied, every buffer is back, and the workers that
// ran are 1 for the loop and min(parallelism, chunks) otherwise.
func runFull(t *testing.T, data []byte, layout format.Layout, r readerAt, cfg pipeline.Config) fullResult {
	t.Helper()
	if cfg.MaxRecord == 0 {
		cfg.MaxRecord = classify.DefaultMaxRecord
	}
	hdr := int64(layout.HeaderSize())
	var s fullResult
	d := crc32.NewIEEE()
	var w [8]byte
	var applied, ops, nbytes, largest int64
	end := layout.FirstRecord()
	cfg.Preparer = apply.PrepareFunc(func(r apply.Record, dst []uint64) []uint64 { return append(dst, prepWords(r)...) })
	app := apply.Func(func(rec apply.Record) error {
		want := data[rec.Offset+hdr:][:len(rec.Payload)]
		if !bytes.Equal(rec.Payload, want) {
			return fmt.Errorf("payload at %d differs from the file", rec.Offset)
		}
		if !slices.Equal(rec.Prepared, prepWords(rec)) {
			return fmt.Errorf("record at %d: prepared %v, want %v", rec.Offset, rec.Prepared, prepWords(rec))
		}
		for _, x := range append([]uint64{uint64(rec.Offset)}, rec.Prepared...) {
			binary.BigEndian.PutUint64(w[:], x)
			d.Write(w[:])
		}
		d.Write(rec.Payload)
		applied++
		ops += int64(rec.NumOps())
		nbytes += hdr + int64(len(rec.Payload))
		largest = max(largest, int64(len(rec.Payload)))
		end = rec.Offset + hdr + int64(len(rec.Payload))
		return nil
	})
	stats, err := pipeline.Run(context.Background(), r, int64(len(data)), layout, app, cfg)
	what := fmt.Sprintf("%v %+v", layout, cfg)
	if stats.Out > stats.Stragglers {
		t.Fatalf("%s: %d buffers still out, %d straggler(s)", what, stats.Out, stats.Stragglers)
	}
	chunks := (int64(len(data)) - layout.FirstRecord() + int64(cfg.ReadSize) - 1) / int64(cfg.ReadSize)
	workers := 1
	if cfg.Parallelism > 1 && chunks > 1 {
		workers = int(min(int64(cfg.Parallelism), chunks))
	}
	if stats.Workers != workers {
		t.Fatalf("%s: %d workers reported, %d ran", what, stats.Workers, workers)
	}
	if got := stats.Replayed; got.Records != applied || got.Ops != ops || got.Bytes != nbytes || got.LargestRecord != largest || got.End != end {
		t.Fatalf("%s: stats %+v, the Applier saw records=%d ops=%d bytes=%d largest=%d end=%d (err %v)", what, got, applied, ops, nbytes, largest, end, err)
	}
	if err != nil {
		var we *walerr.Error
		if !errors.As(err, &we) {
			t.Fatalf("%s: untyped error %v", what, err)
		}
		s.code, s.off, s.msg = we.Code, we.Offset, err.Error()
	}
	s.records, s.ops, s.bytes_, s.end, s.largest = applied, ops, nbytes, end, largest
	if tr := stats.Truncation; tr != nil {
		s.trunc = fmt.Sprintf("%d+%d:%s", tr.Offset, tr.Bytes, tr.Reason)
	}
	s.digest = d.Sum32()
	return s
}

// agreesWithOracle compares a run with the oracle's verdict on the same bytes (the pipeline is
// given the layout; the oracle finds it, so only files whose prefix it accepts as that layout
// are compared).
func agreesWithOracle(data []byte, layout format.Layout, maxRec uint32, g fullResult) (string, bool) {
	o := oracle.Recover(data, oracle.Options{MaxRecord: maxRec}, nil)
	if o.Layout != map[format.Layout]string{format.LayoutV1: oracle.LayoutV1, format.LayoutLegacy: oracle.LayoutLegacy}[layout] || o.Code == oracle.CodeNotADatabase {
		return "", false
	}
	trunc := ""
	if o.Truncate {
		trunc = fmt.Sprintf("%d+%d:%s", o.TruncOffset, o.TruncBytes, o.Reason)
	}
	off := o.ErrOffset
	if o.Code == "" {
		off = 0
	}
	if string(g.code) != o.Code || g.off != off || g.trunc != trunc || g.records != o.Records || g.ops != o.Ops || g.end != o.End {
		return fmt.Sprintf("oracle: code=%q@%d trunc=%s records=%d ops=%d end=%d", o.Code, o.ErrOffset, trunc, o.Records, o.Ops, o.End), true
	}
	return "", true
}

// TestPreparedDribbledReadsEqualSequential: with a Preparer in the run and readers that
// return short counts with a nil error, every parallelism, depth and read size (1 byte up:
// headers split across chunks, records larger than a read, records ending on a chunk
// boundary) decides what the sequential loop decides with a plain reader and what the oracle
// decides, on clean, torn, flipped, lying, zero- and 0xFF-filled logs of both layouts; the
// Applier gets each record's own prepared words; Bytes and LargestRecord are right too.
func TestPreparedDribbledReadsEqualSequential(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 71))
	sizes := []int{1, 5, 12, 13, 64, 300}
	par := []struct{ p, d int }{{1, 1}, {2, 2}, {4, 3}, {8, 16}}
	compared := 0
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		l := advLog(layout, uint64(layout)+21, 1200)
		cases := mutations(l, rng)
		cases["erased-tail"] = append(bytes.Clone(l.Bytes[:l.Offsets[len(l.Offsets)-3]]), bytes.Repeat([]byte{0xFF}, 500)...)
		cases["zeroed-tail"] = append(bytes.Clone(l.Bytes[:l.Offsets[len(l.Offsets)-3]]), make([]byte, 500)...)
		for name, data := range cases {
			for _, maxRec := range []uint32{1 << 30, 600} {
				ref := runFull(t, data, layout, bytes.NewReader(data), pipeline.Config{Parallelism: 1, ReadSize: 4 << 10, MaxRecord: maxRec})
				if diff, ok := agreesWithOracle(data, layout, maxRec, ref); ok {
					compared++
					if diff != "" {
						t.Fatalf("%v %s max %d: sequential %v, %s", layout, name, maxRec, ref, diff)
					}
				}
				for _, rs := range sizes {
					for _, pd := range par {
						for _, dribble := range []bool{false, true} {
							var r readerAt = bytes.NewReader(data)
							if dribble {
								r = dribbling(data)
							}
							cfg := pipeline.Config{Parallelism: pd.p, Depth: pd.d, ReadSize: rs, MaxRecord: maxRec}
							if g := runFull(t, data, layout, r, cfg); g != ref {
								t.Fatalf("%v %s max %d %+v dribble=%v:\n got  %v\n want %v", layout, name, maxRec, cfg, dribble, g, ref)
							}
						}
					}
				}
			}
		}
	}
	if compared < 40 {
		t.Fatalf("only %d cases compared with the oracle", compared)
	}
	goleak.VerifyNone(t)
}

// FuzzTinyReads holds the pipeline at any read size from 1 byte (so that the small inputs a
// fuzzer makes still span many chunks: headers split, straddlers, big records) and any
// parallelism and depth, with a Preparer and with a reader that dribbles, to the sequential
// loop at 4 KiB and to the oracle. The layout is what classify.ReadPrefix finds, as Recover
// does; inputs it refuses are skipped (the tests/ suites cover the prefix).
func FuzzTinyReads(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 50))
	for _, layout := range []format.Layout{format.LayoutV1, format.LayoutLegacy} {
		l := advLog(layout, uint64(layout)+40, 400)
		for _, data := range mutations(l, rng) {
			f.Add(data, uint8(rng.IntN(40)), uint8(rng.IntN(64)), uint16(0))
			f.Add(data, uint8(rng.IntN(40)), uint8(rng.IntN(64)), uint16(300))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, readSize, par uint8, maxRec uint16) {
		max := uint32(classify.DefaultMaxRecord)
		if maxRec != 0 {
			max = uint32(maxRec)
		}
		pre, err := classify.ReadPrefix(context.Background(), bytes.NewReader(data), int64(len(data)), max)
		if err != nil || pre.Empty || pre.TornHeader {
			return
		}
		ref := runFull(t, data, pre.Layout, bytes.NewReader(data), pipeline.Config{Parallelism: 1, ReadSize: 4 << 10, MaxRecord: max})
		if diff, ok := agreesWithOracle(data, pre.Layout, max, ref); ok && diff != "" {
			t.Fatalf("sequential %v, %s", ref, diff)
		}
		cfg := pipeline.Config{Parallelism: 1 + int(par%8), Depth: 2 + int(par/8), ReadSize: 1 + int(readSize), MaxRecord: max}
		for _, r := range []readerAt{bytes.NewReader(data), dribbling(data)} {
			if g := runFull(t, data, pre.Layout, r, cfg); g != ref {
				t.Fatalf("%+v (%T):\n got  %v\n want %v", cfg, r, g, ref)
			}
		}
	})
}
