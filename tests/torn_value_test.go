package tests

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
)

// tornConfigs are parallelism 1 and 4 (the latter with small reads, so that the torn record
// spans several of them).
var tornConfigs = []config{sequential, {par: 4, depth: 4, readSize: 4 << 10}}

// v1Header is a v1 record header declaring n payload bytes: its self-checksum holds.
func v1Header(n, payloadCRC uint32) []byte {
	h := binary.BigEndian.AppendUint32(nil, n)
	h = binary.BigEndian.AppendUint32(h, format.LengthChecksum(n))
	return binary.BigEndian.AppendUint32(h, payloadCRC)
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// tornValues are values that carry what the evidence search would take for a later append:
// each is written as the value of the last record of a v1 log, and that record is torn.
func tornValues() []struct {
	name  string
	value []byte
} {
	rng := rand.New(rand.NewPCG(10, 10))
	inner := testlog.RandomLog(11, format.LayoutV1, 6, 3, 30)
	innerLegacy := testlog.RandomLog(12, format.LayoutLegacy, 6, 3, 30)
	return []struct {
		name  string
		value []byte
	}{
		// A header with a valid self-checksum and a plausible length, in random bytes.
		{"a v1 header", slicesConcat(randomBytes(rng, 150), v1Header(100, 0x12345678), randomBytes(rng, 150))},
		// Whole verifiable v1 records (each one alone is rule-2 evidence).
		{"whole v1 records", slicesConcat(randomBytes(rng, 40), inner.Bytes[format.FileHeaderSize:], randomBytes(rng, 40))},
		// Whole records in the 8-byte legacy framing (rule-3 evidence in a v1 file).
		{"whole legacy records", slicesConcat(randomBytes(rng, 40), innerLegacy.Bytes, randomBytes(rng, 40))},
		// A whole v1 log file, file header and all, as a value.
		{"a whole v1 log file", bytes.Clone(inner.Bytes)},
		// A whole legacy log file.
		{"a whole legacy log file", bytes.Clone(innerLegacy.Bytes)},
	}
}

func slicesConcat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// TestTornValueCarryingRecords (the torn-tail rule of docs/classification.md): a v1
// record whose header checks out, with a length within the maximum, torn anywhere in its
// payload, is a torn tail and is cut, whatever its value holds: headers, whole records or a
// whole log file are the append's own unfinished payload, not evidence of a later write. Every
// cut point of the last record is checked at parallelism 1 and 4, read-only (the file must
// stay byte for byte as it was), against the oracle and against the expected outcome stated
// here; strict mode refuses the same tails with TAIL_DAMAGE at the record.
func TestTornValueCarryingRecords(t *testing.T) {
	base := testlog.RandomLog(13, format.LayoutV1, 5, 3, 40)
	for _, tv := range tornValues() {
		t.Run(tv.name, func(t *testing.T) {
			l := base
			l.Bytes = bytes.Clone(base.Bytes)
			l.Offsets = append([]int64(nil), base.Offsets...)
			l.Append(format.AppendSet(nil, []byte("big"), tv.value))
			last := l.Offsets[len(l.Offsets)-1]
			full := int64(len(l.Bytes))
			// The whole log replays every record, the value included.
			if w := check(t, "whole", l.Bytes, modeOpt{}, tornConfigs); w.Code != "" || w.Truncate || w.Records != int64(len(l.Offsets)) || w.State["big"] != string(tv.value) {
				t.Fatalf("whole log: %v", w)
			}
			for cut := last + 1; cut < full; cut++ {
				data := l.Bytes[:cut]
				name := fmt.Sprintf("cut at %d (record at %d, %d bytes)", cut, last, full-last)
				w := check(t, name, data, modeOpt{}, tornConfigs)
				if !w.Truncate || w.TruncOffset != last || w.TruncBytes != cut-last || w.Reason != string(recovery.ReasonTornTail) || w.Records != int64(len(l.Offsets)-1) {
					t.Fatalf("%s: want a torn tail cut at %d, got %v", name, last, w)
				}
				if cut%7 == 0 { // the other modes, on a sample of the cuts
					if s := check(t, name, data, modeOpt{mode: recovery.Strict}, tornConfigs); s.Code != string(recovery.CodeTailDamage) || s.ErrOffset != last {
						t.Fatalf("%s strict: want TAIL_DAMAGE at %d, got %v", name, last, s)
					}
					if p := check(t, name, data, modeOpt{mode: recovery.PointInTime}, tornConfigs); !p.Truncate || p.TruncOffset != last || p.Reason != string(recovery.ReasonTornTail) {
						t.Fatalf("%s point in time: want a torn tail cut at %d, got %v", name, last, p)
					}
				}
			}
			// Carried out on a writable file: cut, synced, and the result opens clean.
			cut := last + format.V1HeaderSize + int64(len(tv.value))/2
			f := testlog.NewMemFile(l.Bytes[:cut])
			res, err := recovery.Recover(context.Background(), f, nil)
			if err != nil || !res.Truncated || f.Truncates != 1 || f.Syncs != 1 || !bytes.Equal(f.Data, l.Bytes[:last]) {
				t.Fatalf("writable cut at %d: err=%v %+v truncates=%d syncs=%d size=%d", cut, err, res, f.Truncates, f.Syncs, len(f.Data))
			}
		})
	}
}

// TestTornValueLegacyStillSearched: the change is for v1 only. A legacy header has no
// self-checksum, so a legacy record running past the end is damaged, not torn, and is still
// searched: a whole legacy record inside the torn bytes refuses it (the rule of evidence, as
// before), while a value holding only v1-shaped bytes is cut.
func TestTornValueLegacyStillSearched(t *testing.T) {
	base := testlog.RandomLog(14, format.LayoutLegacy, 5, 3, 40)
	for _, tv := range tornValues() {
		t.Run(tv.name, func(t *testing.T) {
			l := base
			l.Bytes = bytes.Clone(base.Bytes)
			l.Offsets = append([]int64(nil), base.Offsets...)
			l.Append(format.AppendSet(nil, []byte("big"), tv.value))
			last := l.Offsets[len(l.Offsets)-1]
			// Torn just before the end: the value's content is all there.
			data := l.Bytes[:len(l.Bytes)-1]
			w := check(t, "torn", data, modeOpt{}, tornConfigs)
			if w.Records != int64(len(l.Offsets)-1) || (w.Code != "" && w.Code != string(recovery.CodeCorruptWAL)) {
				t.Fatalf("want the good records replayed and a cut or CORRUPT_WAL at %d, got %v", last, w)
			}
			if tv.name == "whole legacy records" || tv.name == "a whole legacy log file" {
				if w.Code != string(recovery.CodeCorruptWAL) || w.ErrOffset != last {
					t.Fatalf("a whole legacy record in the torn bytes: want CORRUPT_WAL at %d, got %v", last, w)
				}
			}
		})
	}
}

// TestTornHeaderOverMaximumStillSearched: a torn v1 header whose self-checksum holds but whose
// length is over the maximum record size (an erased 0xFF header declares 0xFFFFFFFF) is not
// proof of its extent: the bytes after it are still searched. With a later record among them
// it is refused; with only debris it is cut. At exactly the maximum the header is proof and
// the tail is cut whatever follows.
func TestTornHeaderOverMaximumStillSearched(t *testing.T) {
	base := testlog.RandomLog(15, format.LayoutV1, 5, 3, 40)
	later := testlog.Build(format.LayoutV1, format.AppendSet(nil, []byte("later"), []byte("append"))).Bytes[format.FileHeaderSize:]
	off := int64(len(base.Bytes))
	ff := bytes.Repeat([]byte{0xFF}, 64)

	t.Run("erased 0xFF header then debris", func(t *testing.T) {
		data := slicesConcat(base.Bytes, ff, bytes.Repeat([]byte{0xFF}, 4096))
		expectOn(t, "0xFF debris", data, modeOpt{}, "", off, recovery.ReasonTornTail)
	})
	t.Run("erased 0xFF header then a later record", func(t *testing.T) {
		data := slicesConcat(base.Bytes, ff, later, bytes.Repeat([]byte{0xFF}, 4096))
		expectOn(t, "0xFF then a record", data, modeOpt{}, recovery.CodeCorruptWAL, -1, "")
	})
	const maxRec = 4096
	m := modeOpt{maxRecord: maxRec}
	for _, tc := range []struct {
		length uint32
		code   recovery.Code
	}{{maxRec, ""}, {maxRec + 1, recovery.CodeCorruptWAL}} {
		t.Run(fmt.Sprintf("torn header of length %d, maximum %d, a later record inside", tc.length, maxRec), func(t *testing.T) {
			data := slicesConcat(base.Bytes, v1Header(tc.length, 0), bytes.Repeat([]byte{0xEE}, 100), later)
			cutAt := int64(-1)
			if tc.code == "" {
				cutAt = off
			}
			expectOn(t, "edge", data, m, tc.code, cutAt, recovery.ReasonTornTail)
		})
	}
}

// expectOn checks a case against the oracle (parallelism 1 and 4, read-only) and against the
// outcome stated by the caller: an error code (and no cut), or a cut at cutAt for reason.
func expectOn(t *testing.T, name string, data []byte, m modeOpt, code recovery.Code, cutAt int64, reason recovery.Reason) outcome {
	t.Helper()
	w := check(t, name, data, m, tornConfigs)
	switch {
	case w.Code != string(code):
		t.Fatalf("%s: want code %q, got %v", name, code, w)
	case cutAt >= 0 && (!w.Truncate || w.TruncOffset != cutAt || w.Reason != string(reason)):
		t.Fatalf("%s: want a cut at %d (%s), got %v", name, cutAt, reason, w)
	case cutAt < 0 && w.Truncate:
		t.Fatalf("%s: want no cut, got %v", name, w)
	}
	return w
}

// TestStrictTailRefusalNamesTheTail: strict mode's TAIL_DAMAGE names the kind of tail it
// refused, so a caller can tell a torn append from damage without a second recovery.
func TestStrictTailRefusalNamesTheTail(t *testing.T) {
	l := testlog.RandomLog(16, format.LayoutV1, 5, 3, 40)
	last := l.Offsets[len(l.Offsets)-1]
	torn := l.Bytes[:len(l.Bytes)-3]
	damaged := slicesConcat(l.Bytes, make([]byte, 100))
	for _, tc := range []struct {
		name   string
		data   []byte
		at     int64
		reason recovery.Reason
	}{{"torn", torn, last, recovery.ReasonTornTail}, {"damaged", damaged, int64(len(l.Bytes)), recovery.ReasonDamagedTail}} {
		for _, c := range tornConfigs {
			_, err := recovery.Recover(context.Background(), testlog.NewMemFile(tc.data), nil, append(c.opts(), recovery.WithMode(recovery.Strict))...)
			var re *recovery.Error
			if !errors.As(err, &re) || re.Code != recovery.CodeTailDamage || re.Offset != tc.at || !bytes.Contains([]byte(re.Error()), []byte(string(tc.reason))) {
				t.Fatalf("%s %v: want TAIL_DAMAGE at %d naming %s, got %v", tc.name, c, tc.at, tc.reason, err)
			}
		}
	}
}
