package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/internal/testlog"
)

// expect checks a case against the oracle and against what the issue states it must be.
func expect(t *testing.T, name string, data []byte, code recovery.Code, cutAt int64, reason recovery.Reason) outcome {
	t.Helper()
	w := check(t, name, data, modeOpt{}, wide)
	if w.Code != string(code) {
		t.Fatalf("%s: want code %q, got %v", name, code, w)
	}
	if cutAt >= 0 && (!w.Truncate || w.TruncOffset != cutAt || w.Reason != string(reason)) {
		t.Fatalf("%s: want a cut at %d (%s), got %v", name, cutAt, reason, w)
	}
	if cutAt < 0 && w.Truncate {
		t.Fatalf("%s: want no cut, got %v", name, w)
	}
	return w
}

func TestCrashDebris(t *testing.T) {
	for _, lay := range layouts {
		l := testlog.RandomLog(3, lay, 8, 3, 40)
		n := len(l.Offsets)
		lastOff := l.Offsets[n-1]

		t.Run(lay.String()+"/last append zeroed", func(t *testing.T) {
			data := bytes.Clone(l.Bytes)
			clear(data[lastOff:])
			w := expect(t, "zeroed last append", data, "", lastOff, recovery.ReasonDamagedTail)
			if w.Records != int64(n-1) {
				t.Fatalf("want %d records, got %v", n-1, w)
			}
		})
		t.Run(lay.String()+"/zeros after a clean log", func(t *testing.T) {
			data := append(bytes.Clone(l.Bytes), make([]byte, 4096)...)
			expect(t, "zeros after", data, "", int64(len(l.Bytes)), recovery.ReasonDamagedTail)
		})
		t.Run(lay.String()+"/random bytes after a clean log", func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 7))
			junk := make([]byte, 4096)
			for i := range junk {
				junk[i] = byte(rng.Uint32())
			}
			data := append(bytes.Clone(l.Bytes), junk...)
			expect(t, "garbage after", data, "", int64(len(l.Bytes)), recovery.ReasonDamagedTail)
		})
	}

	v1 := testlog.RandomLog(4, format.LayoutV1, 8, 3, 40)
	n := len(v1.Offsets)
	t.Run("damaged record then the first bytes of a later append", func(t *testing.T) {
		// Record n-2's payload is damaged, and record n-1 (the later append) is torn after its
		// header: the later append proves n-2 was acknowledged.
		data := bytes.Clone(v1.Bytes[:v1.Offsets[n-1]+format.V1HeaderSize+1])
		data[v1.Offsets[n-2]+format.V1HeaderSize] ^= 0x40
		expect(t, "payload damage", data, recovery.CodeCorruptWAL, -1, "")
		// The same with the damage in record n-2's length: the later header is the evidence.
		data = bytes.Clone(v1.Bytes[:v1.Offsets[n-1]+format.V1HeaderSize+1])
		data[v1.Offsets[n-2]+3] ^= 0x01
		expect(t, "length damage", data, recovery.CodeCorruptWAL, -1, "")
	})
	t.Run("last record with only its header checksum damaged", func(t *testing.T) {
		data := bytes.Clone(v1.Bytes)
		data[v1.Offsets[n-1]+5] ^= 0x10 // the self-checksum word
		w := expect(t, "self-checksum damage", data, recovery.CodeCorruptWAL, -1, "")
		if w.ErrOffset != v1.Offsets[n-1] {
			t.Fatalf("want the error at %d, got %v", v1.Offsets[n-1], w)
		}
	})
	t.Run("8-byte framing record after a v1 log", func(t *testing.T) {
		data := format.AppendRecord(bytes.Clone(v1.Bytes), format.LayoutLegacy, format.AppendSet(nil, []byte("k"), []byte("v")))
		expect(t, "8-byte framing", data, recovery.CodeCorruptWAL, -1, "")
	})
}

// TestHostileInput: lengths, zeros, garbage, limits and faulty readers get the right error or
// recovery, never a panic, and never a read or allocation sized by an unchecked length.
func TestHostileInput(t *testing.T) {
	v1 := testlog.RandomLog(5, format.LayoutV1, 6, 2, 30)
	legacy := testlog.RandomLog(5, format.LayoutLegacy, 6, 2, 30)

	t.Run("length 0xFFFFFFFF", func(t *testing.T) {
		for _, l := range []testlog.Log{v1, legacy} {
			hdr := binary.BigEndian.AppendUint32(nil, 0xFFFFFFFF)
			hdr = binary.BigEndian.AppendUint32(hdr, 0xFFFFFFFF) // v1: a valid self-checksum
			hdr = binary.BigEndian.AppendUint32(hdr, 0x12345678)
			data := append(append(bytes.Clone(l.Bytes), hdr...), bytes.Repeat([]byte{0xAB}, 3000)...)
			reason := recovery.ReasonTornTail
			if l.Layout == format.LayoutLegacy {
				reason = recovery.ReasonDamagedTail
			}
			expect(t, l.Layout.String()+" 4 GiB length", data, "", int64(len(l.Bytes)), reason)
			assertBounded(t, data, 4<<10)
			// At the start of a legacy file it is not a database at all.
			expect(t, "4 GiB length first", hdr, recovery.CodeNotADatabase, -1, "")
		}
	})
	t.Run("a 1 GiB record declared in a 1 MiB file", func(t *testing.T) {
		data := bytes.Clone(v1.Bytes)
		data = binary.BigEndian.AppendUint32(data, 1<<30)
		data = binary.BigEndian.AppendUint32(data, format.LengthChecksum(1<<30))
		data = append(data, make([]byte, 1<<20)...)
		expect(t, "1 GiB declared", data, "", int64(len(v1.Bytes)), recovery.ReasonTornTail)
		assertBounded(t, data, 64<<10)
	})
	t.Run("zeros, garbage, bare header", func(t *testing.T) {
		expect(t, "zeros", make([]byte, 1<<16), recovery.CodeNotADatabase, -1, "")
		rng := rand.New(rand.NewPCG(9, 9))
		junk := make([]byte, 1<<16)
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		expect(t, "garbage", junk, recovery.CodeNotADatabase, -1, "")
		expect(t, "text", []byte("hello, this is not a database\n"), recovery.CodeNotADatabase, -1, "")
		w := expect(t, "bare header", format.FileHeader[:], "", -1, "")
		if w.Records != 0 || w.Layout != "v1" {
			t.Fatalf("bare header: %v", w)
		}
		bad := bytes.Clone(format.FileHeader[:])
		bad[5] = 2
		expect(t, "version 2", bad, recovery.CodeUnsupportedVersion, -1, "")
	})
	t.Run("record at the maximum size and one byte over", func(t *testing.T) {
		const maxRec = 5000
		for _, lay := range layouts {
			at := testlog.Build(lay, testlog.SizedTx(rand.New(rand.NewPCG(1, 1)), maxRec, 4))
			over := testlog.Build(lay, testlog.SizedTx(rand.New(rand.NewPCG(1, 1)), maxRec+1, 4))
			m := modeOpt{maxRecord: maxRec}
			if w := check(t, "at max", at.Bytes, m, wide); w.Code != "" || w.Records != 1 {
				t.Fatalf("%v at max: %v", lay, w)
			}
			if w := check(t, "over max", over.Bytes, m, wide); w.Code != string(recovery.CodeRecordTooLarge) {
				t.Fatalf("%v over max: %v", lay, w)
			}
			// Never buffered: no read larger than the read size.
			r := faults.Bytes(over.Bytes)
			_, err := recovery.Recover(context.Background(), r, nil, recovery.ReadOnly(), recovery.WithMaxRecordSize(maxRec), recovery.WithReadSize(4096))
			if !errors.Is(err, recovery.ErrRecordTooLarge) || r.MaxLen() > 64<<10 {
				t.Fatalf("%v over max: err=%v largest read %d", lay, err, r.MaxLen())
			}
		}
	})
	t.Run("short read mid-file", func(t *testing.T) {
		big := testlog.RandomLog(6, format.LayoutV1, 3000, 3, 60)
		for _, c := range wide {
			for call := int64(2); call <= 4; call++ {
				short := faults.OnCall(call).Half(io.EOF) // half the bytes, and the end of the file
				_, err := recovery.Recover(context.Background(), faults.Bytes(big.Bytes, short), nil, append(c.opts(), recovery.WithReadSize(16<<10))...)
				if !errors.Is(err, recovery.ErrIncompleteRead) || short.Count() != 1 {
					t.Fatalf("%v short read at call %d: want INCOMPLETE_READ, got %v (fired %d)", c, call, err, short.Count())
				}
				f := faults.Bytes(big.Bytes, faults.OnCall(call).Fail(faults.ErrInjected))
				_, err = recovery.Recover(context.Background(), f, nil, append(c.opts(), recovery.WithReadSize(16<<10))...)
				if !errors.Is(err, recovery.ErrIO) || !errors.Is(err, faults.ErrInjected) {
					t.Fatalf("%v read fault at call %d: want IO_ERROR wrapping the cause, got %v", c, call, err)
				}
			}
		}
	})
	t.Run("reads delivered in small chunks", func(t *testing.T) {
		w := want(v1.Bytes, modeOpt{})
		for _, c := range wide {
			r := faults.Bytes(v1.Bytes, faults.Always().Short(7, nil)) // 7 bytes a call, nil error
			st := map[string]string{}
			res, err := recovery.Recover(context.Background(), r, mapApplier(st), c.opts()...)
			if err != nil || res.Records != w.Records || len(st) != len(w.State) {
				t.Fatalf("%v chunked: %v %+v", c, err, res)
			}
		}
	})
}

// assertBounded recovers data read-only and checks that neither a read nor the heap grew with
// the hostile length: the largest read is at most the read size, and the bytes allocated are a
// small multiple of it.
func assertBounded(t *testing.T, data []byte, readSize int) {
	t.Helper()
	for _, c := range []config{{par: 1}, {par: 4, depth: 4}} {
		r := faults.Bytes(data)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res, err := recovery.Recover(context.Background(), r, nil, append(c.opts(), recovery.ReadOnly(), recovery.WithReadSize(readSize))...)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		alloc := after.TotalAlloc - before.TotalAlloc
		limit := uint64(c.par+4)*uint64(readSize) + 512<<10 // pool + evidence-search windows + slack
		if r.MaxLen() > int64(max(readSize, 64<<10)) || res.PeakBuffered > memBound(c.par+3, readSize, readSize) || alloc > limit {
			t.Fatalf("%v: largest read %d, pool peak %d, allocated %d (limit %d)", c, r.MaxLen(), res.PeakBuffered, alloc, limit)
		}
	}
}

// TestLegacyDamagedLengthSizesNothing: a legacy length (no checksum of its own) flipped to a
// large value inside the file must not size a buffer: its payload CRC is checked streaming
// first, so the pool never grows past the read size.
func TestLegacyDamagedLengthSizesNothing(t *testing.T) {
	l := testlog.RandomLog(21, format.LayoutLegacy, 4000, 3, 200)
	data := bytes.Clone(l.Bytes)
	k := 10
	binary.BigEndian.PutUint32(data[l.Offsets[k]:], uint32(len(data))/2) // half the file
	w := check(t, "legacy damaged length", data, modeOpt{}, wide)
	if w.Code != string(recovery.CodeCorruptWAL) || w.Records != int64(k) {
		t.Fatalf("want CORRUPT_WAL after %d records, got %v", k, w)
	}
	for _, c := range []config{{par: 1}, {par: 4, depth: 8}} {
		_, res, _ := got(t, data, modeOpt{}, config{par: c.par, depth: c.depth, readSize: 16 << 10})
		if res.PeakBuffered > memBound(max(c.depth, 1), 16<<10, 16<<10) {
			t.Fatalf("%v: a damaged legacy length grew the pool to %d bytes", c, res.PeakBuffered)
		}
	}
}

// TestEvidenceBudget: the streaming search and the oracle charge the same work and run out of
// budget at the same point. After a damaged record, k valid headers declaring 1 MiB records
// over a 1,000-byte limit each cost a 1 MiB CRC to rule out: two fit in the budget (a damaged
// tail, cut), six do not (budget exhausted: refused, the safe side).
func TestEvidenceBudget(t *testing.T) {
	const l = 1 << 20
	hdr := binary.BigEndian.AppendUint32(nil, l)
	hdr = binary.BigEndian.AppendUint32(hdr, format.LengthChecksum(l))
	hdr = binary.BigEndian.AppendUint32(hdr, 0xFFFFFFFF)
	build := func(k int) []byte {
		b := append(format.FileHeader[:], make([]byte, 12)...) // zero-length record: damaged
		for range k {
			b = append(b, hdr...)
		}
		return append(b, bytes.Repeat([]byte{0xEE}, l)...)
	}
	m := modeOpt{maxRecord: 1000}
	if w := check(t, "2 oversize headers", build(2), m, quick); !w.Truncate || w.Reason != string(recovery.ReasonDamagedTail) {
		t.Fatalf("2 headers: want a damaged tail, got %v", w)
	}
	if w := check(t, "6 oversize headers", build(6), m, quick); w.Code != string(recovery.CodeCorruptWAL) {
		t.Fatalf("6 headers: want CORRUPT_WAL (budget exhausted), got %v", w)
	}
}
