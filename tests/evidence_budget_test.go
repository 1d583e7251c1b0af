package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/internal/testlog"
)

// hostileTail is a tail that makes the evidence search examine many candidates.
type hostileTail struct {
	name string
	m    modeOpt
	tail func(size int) []byte
}

func repeatTo(unit []byte, size int) []byte {
	return bytes.Repeat(unit, size/len(unit)+1)[:size]
}

func hostileTails() []hostileTail {
	// The unit: a legacy-framed record of 5 bytes (a delete of the empty key, so it is
	// well-formed) with a bad CRC, repeated: every 13 bytes a candidate to walk and checksum.
	unit13 := []byte{0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0}

	// Long-key chains: legacy-framed records with a bad CRC whose payloads are deletes of
	// 4000-byte zero keys. Each op header is also a candidate whose length reaches ~1 MiB
	// across the zeros, each walk of which skips key after key.
	chain := func(size int) []byte {
		var payload []byte
		for range 64 {
			payload = format.AppendDelete(payload, make([]byte, 4000))
		}
		block := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
		block = binary.BigEndian.AppendUint32(block, 0xBADC0DE)
		return repeatTo(append(block, payload...), size)
	}

	// Random long keys: deletes and sets of random keys up to 16 KiB, framed with bad CRCs.
	randomChain := func(size int) []byte {
		rng := rand.New(rand.NewPCG(17, 17))
		var b []byte
		for len(b) < size {
			var payload []byte
			for range 1 + rng.IntN(8) {
				key := make([]byte, rng.IntN(16<<10))
				for i := range key {
					key[i] = byte(rng.IntN(3)) // mostly tags and short lengths
				}
				payload = format.AppendSet(payload, key, key[:len(key)/3])
			}
			b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
			b = binary.BigEndian.AppendUint32(b, 0xBADC0DE)
			b = append(b, payload...)
		}
		return b[:size]
	}

	// After a zero-length record (damaged), v1 headers over the maximum (1000 here) that fit,
	// back to back: each costs a checksum of 1500 bytes to rule out.
	overMax := func(size int) []byte {
		return append(make([]byte, 12), repeatTo(v1Header(1500, 0xBADC0DE), size-12)...)
	}

	return []hostileTail{
		{"13-byte legacy units", modeOpt{}, func(size int) []byte { return repeatTo(unit13, size) }},
		{"long-key chains", modeOpt{}, chain},
		{"random long keys", modeOpt{}, randomChain},
		{"0xFF run", modeOpt{}, func(size int) []byte { return bytes.Repeat([]byte{0xFF}, size) }},
		{"repeated v1 headers over the maximum", modeOpt{maxRecord: 1000}, overMax},
	}
}

// readFactor bounds the bytes one recovery may ask of the file, as a multiple of its size, on
// top of a fixed allowance for the read-ahead and the search's windows.
const (
	readFactor    = 8
	readAllowance = 4 << 20
)

// TestEvidenceSearchReadsBounded (issue 10, bug 5): whatever the tail holds, the evidence
// search reads each byte a small bounded number of times: a recovery asks of the file at most
// readFactor times its size (plus a fixed allowance), in both layouts, at parallelism 1 and 4;
// and its answer is still the oracle's (a cut, or CORRUPT_WAL where the budget runs out).
// Before the fix the side buffer was dropped after every candidate checksum and refilled
// uncharged: a 1 MiB tail of 13-byte units asked for over 1 GiB.
func TestEvidenceSearchReadsBounded(t *testing.T) {
	const tailSize = 1 << 20
	for _, lay := range layouts {
		base := testlog.RandomLog(18, lay, 20, 3, 60)
		for _, h := range hostileTails() {
			t.Run(lay.String()+"/"+h.name, func(t *testing.T) {
				data := append(bytes.Clone(base.Bytes), h.tail(tailSize)...)
				w := want(data, h.m)
				if w.Records != int64(len(base.Offsets)) {
					t.Fatalf("the oracle stops at record %d, not at the tail: %v", w.Records, w)
				}
				for _, c := range tornConfigs {
					f := faults.Bytes(data) // counts the calls and the bytes asked
					st := map[string]string{}
					opts := append(c.opts(), recovery.ReadOnly())
					if h.m.maxRecord > 0 {
						opts = append(opts, recovery.WithMaxRecordSize(h.m.maxRecord))
					}
					res, err := recovery.Recover(context.Background(), f, mapApplier(st), opts...)
					g := outcomeOf(res, err, st)
					if diff := same(g, w); diff != "" {
						t.Fatalf("%v: differs from the oracle: %s\n got  %v\n want %v", c, diff, g, w)
					}
					read, limit := f.Asked(), int64(readFactor*len(data)+readAllowance)
					t.Logf("%v: %s; read %d bytes in %d calls for a %d-byte file (%.2fx)",
						c, class(g), read, f.Calls(), len(data), float64(read)/float64(len(data)))
					if read > limit {
						t.Fatalf("%v: read %d bytes in %d calls for a %d-byte file (limit %d)", c, read, f.Calls(), len(data), limit)
					}
				}
			})
		}
	}
}

// outcomeOf puts a recovery's result in the oracle's terms (as got does, for any File).
func outcomeOf(res recovery.Result, err error, st map[string]string) outcome {
	o := outcome{State: st}
	o.Layout = res.Layout.String()
	if res.Layout == recovery.LayoutUnknown {
		o.Layout = ""
	}
	o.ErrOffset = -1
	if re, ok := err.(*recovery.Error); ok {
		o.Code, o.ErrOffset = string(re.Code), re.Offset
	} else if err != nil {
		o.Code = fmt.Sprintf("untyped error: %v", err)
	}
	if tr := res.Truncation; tr != nil && err == nil {
		o.Truncate, o.TruncOffset, o.TruncBytes, o.Reason = true, tr.Offset, tr.Bytes, string(tr.Reason)
	}
	o.Records, o.Ops, o.End = res.Records, res.Ops, res.End
	return o
}

// BenchmarkHostileTail times a read-only recovery at parallelism 1 of an 8 MiB file, from
// memory (counting the bytes asked of it: metric read-x, bytes read per file byte) and from an
// OS file, for a clean log and for a log whose tail is the 13-byte units: the
// baseline and the search's cost measured in one run.
func BenchmarkHostileTail(b *testing.B) {
	const size = 8 << 20
	unit := []byte{0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0}
	for _, lay := range layouts {
		rng := rand.New(rand.NewPCG(5, 5))
		clean := testlog.Build(lay)
		for len(clean.Bytes) < size {
			clean.Append(testlog.RandomTx(rng, 3, 60))
		}
		base := testlog.RandomLog(18, lay, 20, 3, 60)
		hostile := append(bytes.Clone(base.Bytes), repeatTo(unit, size-len(base.Bytes))...)
		for _, c := range []struct {
			name string
			data []byte
		}{{"clean", clean.Bytes}, {"13-byte-units", hostile}} {
			b.Run(lay.String()+"/"+c.name+"/memory", func(b *testing.B) {
				b.SetBytes(int64(len(c.data)))
				var read int64
				for b.Loop() {
					f := faults.Bytes(c.data)
					if _, err := recovery.Recover(context.Background(), f, nil, recovery.ReadOnly(), recovery.WithParallelism(1)); err != nil {
						b.Fatal(err)
					}
					read = f.Asked()
				}
				b.ReportMetric(float64(read)/float64(len(c.data)), "read-x")
			})
			b.Run(lay.String()+"/"+c.name+"/osfile", func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "log")
				if err := os.WriteFile(path, c.data, 0o644); err != nil {
					b.Fatal(err)
				}
				of, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				defer of.Close()
				f, err := recovery.OSFile(of)
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(c.data)))
				for b.Loop() {
					if _, err := recovery.Recover(context.Background(), f, nil, recovery.ReadOnly(), recovery.WithParallelism(1)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
