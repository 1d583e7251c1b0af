package classify

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/walerr"
)

func v1Header(n, payloadCRC uint32) []byte {
	h := binary.BigEndian.AppendUint32(nil, n)
	h = binary.BigEndian.AppendUint32(h, format.LengthChecksum(n))
	return binary.BigEndian.AppendUint32(h, payloadCRC)
}

// v1Log is a v1 file of k one-set records.
func v1Log(k int) []byte {
	b := format.FileHeader[:]
	for i := range k {
		b = format.AppendRecord(b, format.LayoutV1, format.AppendSet(nil, []byte{'k', byte(i)}, bytes.Repeat([]byte{byte(i)}, 20)))
	}
	return b
}

var v1Config = Config{Layout: format.LayoutV1, MaxRecord: DefaultMaxRecord}

// TestDecideTornWithinMaximum: a torn v1 record whose header checks out with a length within
// the maximum is a torn tail, cut without a search: its value here is a whole log, full of
// headers and verifiable records, and Decide reads nothing but the header.
func TestDecideTornWithinMaximum(t *testing.T) {
	base := v1Log(3)
	value := v1Log(5) // a whole log file as a value
	rec := format.AppendRecord(nil, format.LayoutV1, format.AppendSet(nil, []byte("v"), value))
	off := int64(len(base))
	for cut := format.V1HeaderSize; cut < len(rec); cut++ {
		data := append(bytes.Clone(base), rec[:cut]...)
		r := faults.Bytes(data) // counts the bytes asked of it
		tr, err := Decide(context.Background(), r, int64(len(data)), v1Config, Damage{Offset: off, Trouble: Torn, Detail: "record runs past the end of the file"})
		if err != nil || tr == nil || tr.Offset != off || tr.Bytes != int64(cut) || tr.Reason != TornTail {
			t.Fatalf("cut %d: want a torn tail at %d, got %+v, %v", cut, off, tr, err)
		}
		if r.Asked() != format.V1HeaderSize {
			t.Fatalf("cut %d: read %d bytes: the header alone decides", cut, r.Asked())
		}
	}
}

// TestDecideTornOverMaximumSearches: over the maximum, the header proves nothing (an erased
// 0xFF header checks out with length 0xFFFFFFFF): the bytes after it are searched.
func TestDecideTornOverMaximumSearches(t *testing.T) {
	base := v1Log(3)
	off := int64(len(base))
	later := v1Log(1)[format.FileHeaderSize:]
	ff := bytes.Repeat([]byte{0xFF}, 100)
	for _, tc := range []struct {
		name    string
		tail    []byte
		cfg     Config
		corrupt bool
	}{
		{"0xFF only", ff, v1Config, false},
		{"0xFF then a record", append(bytes.Clone(ff), later...), v1Config, true},
		{"at the maximum, a record inside", append(v1Header(1000, 0), later...), Config{Layout: format.LayoutV1, MaxRecord: 1000}, false},
		{"over the maximum, a record inside", append(v1Header(1001, 0), later...), Config{Layout: format.LayoutV1, MaxRecord: 1000}, true},
	} {
		data := append(bytes.Clone(base), tc.tail...)
		tr, err := Decide(context.Background(), bytes.NewReader(data), int64(len(data)), tc.cfg, Damage{Offset: off, Trouble: Torn})
		if tc.corrupt != errors.Is(err, walerr.ErrCorruptWAL) || tc.corrupt == (tr != nil) {
			t.Fatalf("%s: corrupt=%v, got %+v, %v", tc.name, tc.corrupt, tr, err)
		}
		if !tc.corrupt && (tr.Reason != TornTail || tr.Offset != off) {
			t.Fatalf("%s: want a torn tail at %d, got %+v", tc.name, off, tr)
		}
	}
}

// TestDecideStrictReturnsTheRefusedTail: strict mode returns the tail it refuses together with
// TAIL_DAMAGE, whose detail names the tail's reason; corruption is still (nil, CORRUPT_WAL).
func TestDecideStrictReturnsTheRefusedTail(t *testing.T) {
	base := v1Log(3)
	off := int64(len(base))
	torn := append(bytes.Clone(base), v1Log(1)[format.FileHeaderSize:][:20]...)
	damaged := append(bytes.Clone(base), make([]byte, 50)...)
	evidence := append(append(bytes.Clone(base), make([]byte, 50)...), v1Log(1)[format.FileHeaderSize:]...)
	strict := Config{Layout: format.LayoutV1, MaxRecord: DefaultMaxRecord, Mode: Strict}
	for _, tc := range []struct {
		name   string
		data   []byte
		d      Damage
		reason Reason
	}{
		{"torn", torn, Damage{Offset: off, Trouble: Torn, Detail: "record runs past the end of the file"}, TornTail},
		{"short", base[:len(base)-3], Damage{Offset: int64(len(base)) - 30, Trouble: Short, Detail: "fewer bytes left than a record header"}, TornTail},
		{"damaged", damaged, Damage{Offset: off, Trouble: Damaged, Detail: "zero-length record"}, DamagedTail},
	} {
		size := int64(len(tc.data))
		if tc.name == "short" {
			tc.d.Offset = size - 10
		}
		tr, err := Decide(context.Background(), bytes.NewReader(tc.data), size, strict, tc.d)
		var we *walerr.Error
		if !errors.As(err, &we) || we.Code != walerr.TailDamage || we.Offset != tc.d.Offset || !strings.Contains(we.Detail, string(tc.reason)) {
			t.Fatalf("%s: want TAIL_DAMAGE at %d naming %s, got %v", tc.name, tc.d.Offset, tc.reason, err)
		}
		if tr == nil || tr.Offset != tc.d.Offset || tr.Bytes != size-tc.d.Offset || tr.Reason != tc.reason {
			t.Fatalf("%s: want the refused tail at %d (%s) with the error, got %+v", tc.name, tc.d.Offset, tc.reason, tr)
		}
		// The default mode cuts exactly that tail.
		cfg := strict
		cfg.Mode = Tolerate
		cut, err := Decide(context.Background(), bytes.NewReader(tc.data), size, cfg, tc.d)
		if err != nil || cut == nil || *cut != *tr {
			t.Fatalf("%s: the default mode cuts %+v (%v), strict refused %+v", tc.name, cut, err, tr)
		}
	}
	tr, err := Decide(context.Background(), bytes.NewReader(evidence), int64(len(evidence)), strict, Damage{Offset: off, Trouble: Damaged, Detail: "zero-length record"})
	if tr != nil || !errors.Is(err, walerr.ErrCorruptWAL) {
		t.Fatalf("evidence in strict mode: want (nil, CORRUPT_WAL), got %+v, %v", tr, err)
	}
}

// hostileTail builds a tail of n bytes out of the shapes that make the search work hardest:
// well-formed legacy units with bad CRCs, zero and 0xFF runs, chains of long keys, v1 headers
// over and within the maximum, whole records, random bytes.
func hostileTail(rng *rand.Rand, n int, maxRec uint32) []byte {
	var b []byte
	for len(b) < n {
		switch rng.IntN(8) {
		case 0:
			b = append(b, bytes.Repeat([]byte{0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0}, 1+rng.IntN(2000))...)
		case 1:
			b = append(b, make([]byte, rng.IntN(20000))...)
		case 2:
			b = append(b, bytes.Repeat([]byte{0xFF}, rng.IntN(20000))...)
		case 3: // a legacy-framed chain of deletes of long zero keys, bad CRC
			var p []byte
			for range 1 + rng.IntN(40) {
				p = format.AppendDelete(p, make([]byte, rng.IntN(8000)))
			}
			b = binary.BigEndian.AppendUint32(b, uint32(len(p)))
			b = binary.BigEndian.AppendUint32(b, rng.Uint32())
			b = append(b, p...)
		case 4: // v1 headers over the maximum, back to back
			for range 1 + rng.IntN(200) {
				b = append(b, v1Header(maxRec+1+uint32(rng.IntN(3000)), rng.Uint32())...)
			}
		case 5: // long keys of tag-like bytes
			k := make([]byte, rng.IntN(30000))
			for i := range k {
				k[i] = byte(rng.IntN(3))
			}
			b = format.AppendRecord(b, format.LayoutLegacy, format.AppendSet(nil, k, k[:len(k)/2]))
			b[len(b)-len(k)-len(k)/2-9-4] ^= 1 // break its CRC
		case 6:
			for range rng.IntN(2000) {
				b = append(b, byte(rng.Uint32()))
			}
		case 7:
			if rng.IntN(10) == 0 { // rarely: real evidence
				b = format.AppendRecord(b, format.LayoutV1, format.AppendSet(nil, []byte("k"), []byte("v")))
			}
		}
	}
	return b[:n]
}

// TestSearchReadsBoundedByWork: the bytes the search reads are at most 1.34 times the bytes it
// examines plus 1.25 times the work units it charged, plus its windows (docs/classification.md,
// "Bytes read"), on random hostile tails in both layouts, damaged and torn, with and without
// the budget running out.
func TestSearchReadsBoundedByWork(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	exhausted, found := 0, 0
	for i := range 200 {
		maxRec := uint32(500 + rng.IntN(5000))
		if rng.IntN(2) == 0 {
			maxRec = DefaultMaxRecord
		}
		n := 1 + rng.IntN(600<<10)
		data := append(v1Log(2), hostileTail(rng, n, maxRec)...)
		off := int64(len(data) - n)
		cfg := Config{Layout: format.LayoutV1, MaxRecord: maxRec}
		if rng.IntN(2) == 0 {
			cfg.Layout = format.LayoutLegacy
		}
		damaged := cfg.Layout == format.LayoutLegacy || rng.IntN(2) == 0
		r := faults.Bytes(data) // counts the bytes asked of it
		budget := Budget(int64(len(data)), off)
		if rng.IntN(4) == 0 {
			budget /= 8 // run out early sometimes
		}
		sc := newScanner(context.Background(), r, int64(len(data)), budget)
		ev, err := sc.search(cfg, off, damaged)
		switch {
		case errors.Is(err, errExhausted):
			exhausted++
		case err != nil:
			t.Fatalf("case %d: %v", i, err)
		case ev.Found:
			found++
		}
		examined := sc.at - off + 1
		limit := examined*134/100 + sc.used*5/4 + 96<<10
		if sc.read != r.Asked() || r.Asked() > limit {
			t.Fatalf("case %d (%v, damaged=%v, %d-byte tail): read %d bytes (scanner counted %d), examined %d, %d units: limit %d",
				i, cfg.Layout, damaged, n, r.Asked(), sc.read, examined, sc.used, limit)
		}
	}
	t.Logf("200 tails: %d found evidence, %d ran out of budget", found, exhausted)
	if exhausted == 0 || found == 0 {
		t.Fatalf("the cases do not cover both endings: %d found, %d exhausted", found, exhausted)
	}
}

// TestChecksumMatchesRefusesWhatCannotProgress: ChecksumMatches (exported, and called with a
// read-sized scratch by the carver) refuses an empty scratch for a non-empty extent, and a
// negative extent or offset, with INVALID_ARGUMENT; before, an empty scratch read zero bytes
// forever (a hang under a context that is never canceled).
func TestChecksumMatchesRefusesWhatCannotProgress(t *testing.T) {
	data := v1Log(3)
	r := faults.Bytes(data) // counts the bytes asked of it
	for _, c := range []struct {
		scratch []byte
		off, n  int64
	}{{nil, 8, 10}, {[]byte{}, 8, 1}, {make([]byte, 4), 8, -1}, {make([]byte, 4), -1, 4}} {
		done := make(chan error, 1)
		go func() {
			_, err := ChecksumMatches(context.Background(), r, c.scratch, c.off, c.n, 0)
			done <- err
		}()
		err := <-done // a hang here is the bug
		if walerr.CodeOf(err) != walerr.InvalidArgument {
			t.Fatalf("scratch %d bytes, [%d, +%d): want INVALID_ARGUMENT, got %v", len(c.scratch), c.off, c.n, err)
		}
	}
	// The empty extent needs no scratch, and a one-byte scratch streams any extent.
	for _, scratch := range [][]byte{nil, make([]byte, 1), make([]byte, 7)} {
		n := int64(32)
		if scratch == nil {
			n = 0
		}
		want := format.Checksum(data[8 : 8+n])
		ok, err := ChecksumMatches(context.Background(), r, scratch, 8, n, want)
		if err != nil || !ok {
			t.Fatalf("scratch %d bytes: ok=%v err=%v", len(scratch), ok, err)
		}
	}
}
