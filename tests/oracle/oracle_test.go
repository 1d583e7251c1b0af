package oracle

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand"
	"reflect"
	"strings"
	"testing"

	"github.com/streamwal/recovery/internal/fixtures"
	"github.com/streamwal/recovery/internal/testdepth"
)

// ---- a tiny local encoder (deliberately not shared with the rest of the project) ----

type top struct {
	del  bool
	k, v string
}

func set(k, v string) top { return top{k: k, v: v} }
func del(k string) top    { return top{del: true, k: k} }

func u32(v uint32) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return b[:]
}

func payload(ops ...top) []byte {
	var b []byte
	for _, op := range ops {
		if op.del {
			b = append(b, 0)
			b = append(b, u32(uint32(len(op.k)))...)
			b = append(b, op.k...)
			continue
		}
		b = append(b, 1)
		b = append(b, u32(uint32(len(op.k)))...)
		b = append(b, op.k...)
		b = append(b, u32(uint32(len(op.v)))...)
		b = append(b, op.v...)
	}
	return b
}

// v1rec frames p as a v1 record: len, crc(len bytes), crc(p), p.
func v1rec(p []byte) []byte {
	l := u32(uint32(len(p)))
	b := append([]byte{}, l...)
	b = append(b, u32(crc32.ChecksumIEEE(l))...)
	b = append(b, u32(crc32.ChecksumIEEE(p))...)
	return append(b, p...)
}

// legrec frames p as a legacy record: len, crc(p), p.
func legrec(p []byte) []byte {
	b := append([]byte{}, u32(uint32(len(p)))...)
	b = append(b, u32(crc32.ChecksumIEEE(p))...)
	return append(b, p...)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var hdr = []byte{'L', 'R', 'D', 'B', 0, 1, 0, 0}

func flip(b []byte, i int, mask byte) []byte {
	c := append([]byte{}, b...)
	c[i] ^= mask
	return c
}

// ---- (1) kernel fixtures (testdata/kernel, through internal/fixtures) ----

func TestKernelFixtures(t *testing.T) {
	dir, all := fixtures.Load(t)
	for _, f := range all {
		t.Run(f.File, func(t *testing.T) {
			data := fixtures.Read(t, dir, f)
			want := f.StateMap(t)
			for _, mode := range []Mode{Tolerate, Strict, PointInTime} {
				o, got := State(data, Options{Mode: mode})
				if o.Code != "" || o.Truncate || o.Reason != "" || o.ErrOffset != -1 {
					t.Fatalf("mode %d: not clean: %+v", mode, o)
				}
				if o.Layout != f.Layout {
					t.Errorf("mode %d: layout %q, want %q", mode, o.Layout, f.Layout)
				}
				if o.End != f.Size {
					t.Errorf("mode %d: End %d, want %d", mode, o.End, f.Size)
				}
				if o.Records != int64(len(f.RecordOffsets)) {
					t.Errorf("mode %d: %d records, want %d", mode, o.Records, len(f.RecordOffsets))
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("mode %d: state differs: got %d keys, want %d", mode, len(got), len(want))
				}
			}
		})
	}
}

// Every prefix of a clean kernel file is a crash at that point: it must recover to exactly
// the records that fit, cutting the partial one as a tail (never refusing). Every prefix of the
// small files, and the cuts around record boundaries of the larger ones.
func TestKernelFixturePrefixes(t *testing.T) {
	dir, all := fixtures.Load(t)
	for _, f := range all {
		t.Run(f.File, func(t *testing.T) {
			data := fixtures.Read(t, dir, f)
			cuts := make([]int, 0, len(data)+1)
			if len(data) <= testdepth.Pick(2000, 20000) {
				for cut := 0; cut <= len(data); cut++ {
					cuts = append(cuts, cut)
				}
			} else {
				// A larger fixture (by default every one over 2,000 bytes; with WALREC_DEEP=1
				// only the big one): every cut within 14 bytes of every 8th record boundary
				// (in the big one every 256th, 64th with WALREC_DEEP=1) and of the last one,
				// and in its last 60 bytes (300) (keeps -race fast; each cut replays the
				// prefix).
				stride := 8
				if len(data) > 20000 {
					stride = testdepth.Pick(256, 64)
				}
				for i, ro := range f.RecordOffsets {
					if i%stride != 0 && i != len(f.RecordOffsets)-1 {
						continue
					}
					for d := -14; d <= 14; d++ {
						if c := int(ro) + d; c >= 0 && c <= len(data) {
							cuts = append(cuts, c)
						}
					}
				}
				for cut := len(data) - testdepth.Pick(60, 300); cut <= len(data); cut++ {
					cuts = append(cuts, cut)
				}
			}
			for _, cut := range cuts {
				o := Recover(data[:cut], Options{}, nil)
				c := int64(cut)
				// Records wholly inside the prefix.
				var whole int64
				boundary := int64(0)
				if f.Layout == "v1" {
					boundary = 8
				}
				for i := range f.RecordOffsets {
					end := f.Size
					if i+1 < len(f.RecordOffsets) {
						end = f.RecordOffsets[i+1]
					}
					if end <= c {
						whole++
						boundary = end
					}
				}
				switch {
				case cut == 0:
					if o != (Outcome{ErrOffset: -1}) {
						t.Fatalf("cut 0: %+v", o)
					}
				case f.Layout == "v1" && cut < 8:
					if !o.Truncate || o.Reason != ReasonTornHeader || o.TruncOffset != 0 || o.TruncBytes != c || o.Layout != "v1" {
						t.Fatalf("cut %d: %+v", cut, o)
					}
				case f.Layout == "legacy" && whole == 0:
					if o.Code != CodeNotADatabase {
						t.Fatalf("cut %d: %+v", cut, o)
					}
				default:
					if o.Code != "" || o.Records != whole || o.End != boundary || o.Layout != f.Layout {
						t.Fatalf("cut %d: %+v (want %d records, end %d)", cut, o, whole, boundary)
					}
					if c == boundary {
						if o.Truncate {
							t.Fatalf("cut %d at a boundary truncated: %+v", cut, o)
						}
					} else if !o.Truncate || o.TruncOffset != boundary || o.TruncBytes != c-boundary {
						t.Fatalf("cut %d: %+v", cut, o)
					}
				}
			}
		})
	}
}

// ---- (2) the worked examples of docs/format.md ----

func TestWorkedExamples(t *testing.T) {
	v1 := []byte{
		0x4C, 0x52, 0x44, 0x42, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x0C,
		0x28, 0xF2, 0x93, 0x37,
		0xCC, 0xA0, 0x23, 0xC7,
		0x01, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00, 0x00, 0x00, 0x02, 0x78, 0x79,
	}
	legacy := []byte{0x00, 0x00, 0x00, 0x0C, 0xCC, 0xA0, 0x23, 0xC7, 0x01, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00, 0x00, 0x00, 0x02, 0x78, 0x79}
	want := map[string]string{"a": "xy"}
	for _, tc := range []struct {
		name   string
		data   []byte
		layout string
	}{{"v1", v1, "v1"}, {"legacy", legacy, "legacy"}} {
		o, got := State(tc.data, Options{})
		if o.Code != "" || o.Truncate || o.Layout != tc.layout || o.Records != 1 || o.Ops != 1 || o.End != int64(len(tc.data)) {
			t.Errorf("%s: %+v", tc.name, o)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: state %v", tc.name, got)
		}
	}
	// And the local encoder reproduces them byte for byte.
	if p := payload(set("a", "xy")); !bytes.Equal(cat(hdr, v1rec(p)), v1) || !bytes.Equal(legrec(p), legacy) {
		t.Fatal("local encoder disagrees with docs/format.md")
	}
}

// ---- (3) hand-built damage cases ----

// want describes an expected Outcome compactly.
type want struct {
	layout  string
	code    string
	errOff  int64 // ignored unless code != ""
	trunc   bool
	truncAt int64
	reason  string
	records int64
	state   map[string]string // nil: don't check
}

func check(t *testing.T, name string, data []byte, opts Options, w want) {
	t.Helper()
	o, st := State(data, opts)
	size := int64(len(data))
	bad := o.Layout != w.layout || o.Code != w.code || o.Truncate != w.trunc || o.Reason != w.reason || o.Records != w.records
	if w.code != "" {
		bad = bad || o.ErrOffset != w.errOff
	} else {
		bad = bad || o.ErrOffset != -1
	}
	if w.trunc {
		bad = bad || o.TruncOffset != w.truncAt || o.TruncBytes != size-w.truncAt
	}
	// Strict mode names the truncation it refused; nothing else fills Refused.
	wantRefused := Refusal{}
	if w.code == CodeTailDamage {
		wantRefused = Refusal{Offset: w.errOff, Bytes: size - w.errOff, Reason: w.reason}
	}
	bad = bad || o.Refused != wantRefused
	if bad {
		t.Errorf("%s (mode %d): got %+v, want %+v", name, opts.Mode, o, w)
		return
	}
	if w.state != nil && !reflect.DeepEqual(st, w.state) {
		t.Errorf("%s (mode %d): state %v, want %v", name, opts.Mode, st, w.state)
	}
}

// checkModes checks one file in all three modes. kind is "tail", "corrupt" or "clean".
func checkModes(t *testing.T, name string, data []byte, opts Options, layout, kind, reason string, off, records int64, state map[string]string) {
	t.Helper()
	for _, mode := range []Mode{Tolerate, Strict, PointInTime} {
		opts.Mode = mode
		w := want{layout: layout, records: records, state: state}
		switch kind {
		case "clean":
		case "tail":
			w.reason = reason
			if mode == Strict {
				w.code, w.errOff = CodeTailDamage, off
			} else {
				w.trunc, w.truncAt = true, off
			}
		case "corrupt":
			w.reason = ReasonCorrupt
			if mode == PointInTime {
				w.trunc, w.truncAt = true, off
			} else {
				w.code, w.errOff = CodeCorruptWAL, off
			}
		default:
			t.Fatalf("bad kind %q", kind)
		}
		check(t, name, data, opts, w)
	}
}

func verdict(data []byte, off int64, v1, damaged bool, max uint32) string {
	if max == 0 {
		max = DefaultMaxRecord
	}
	v, _ := search(data, off, v1, damaged, max, Budget(int64(len(data)), off))
	return v
}

func TestFilePrefix(t *testing.T) {
	check(t, "empty", nil, Options{}, want{})
	check(t, "empty strict", []byte{}, Options{Mode: Strict}, want{})
	for s := 1; s < 8; s++ {
		checkModes(t, "torn header", hdr[:s], Options{}, "v1", "tail", ReasonTornHeader, 0, 0, map[string]string{})
	}
	// A short prefix that is not the header, including LRDB with another version.
	for _, b := range [][]byte{{0}, []byte("LRDX"), []byte("LRDB\x00\x02"), []byte("LRDB\x00\x01\x00\x01"[:7])} {
		if bytes.Equal(b, hdr[:len(b)]) {
			continue
		}
		check(t, "short foreign", b, Options{}, want{code: CodeNotADatabase, errOff: 0})
	}
	check(t, "LRDB\\0\\1\\0 (7 bytes, a prefix)", []byte("LRDB\x00\x01\x00"), Options{}, want{layout: "v1", trunc: true, truncAt: 0, reason: ReasonTornHeader})
	check(t, "header only", hdr, Options{}, want{layout: "v1", state: map[string]string{}})
	check(t, "reserved ignored", cat([]byte("LRDB\x00\x01\xAB\xCD"), v1rec(payload(set("k", "v")))), Options{}, want{layout: "v1", records: 1, state: map[string]string{"k": "v"}})
	for _, mode := range []Mode{Tolerate, Strict, PointInTime} {
		check(t, "version 2", []byte("LRDB\x00\x02\x00\x00anything"), Options{Mode: mode}, want{code: CodeUnsupportedVersion, errOff: 4})
		check(t, "version 0", []byte("LRDB\x00\x00\x00\x00"), Options{Mode: mode}, want{code: CodeUnsupportedVersion, errOff: 4})
		check(t, "text", []byte("hello, this is not a database at all\n"), Options{Mode: mode}, want{code: CodeNotADatabase, errOff: 0})
		check(t, "zeros", make([]byte, 4096), Options{Mode: mode}, want{code: CodeNotADatabase, errOff: 0})
	}
	// Legacy detection: first record verifiable but malformed payload -> not a database.
	bad := []byte{2, 0, 0, 0, 0}
	check(t, "legacy malformed first", legrec(bad), Options{}, want{code: CodeNotADatabase, errOff: 0})
	// First legacy record torn -> not a database.
	r := legrec(payload(set("a", "1")))
	check(t, "legacy torn first", r[:len(r)-1], Options{}, want{code: CodeNotADatabase, errOff: 0})
	// First legacy record larger than max with a good CRC (whatever its form) -> RECORD_TOO_LARGE.
	check(t, "legacy first too large", legrec(payload(set("a", "1"))), Options{MaxRecord: 4}, want{layout: "legacy", code: CodeRecordTooLarge, errOff: 0})
	check(t, "legacy first too large malformed", legrec([]byte{9, 9, 9, 9, 9}), Options{MaxRecord: 4}, want{layout: "legacy", code: CodeRecordTooLarge, errOff: 0})
}

func TestV1Cases(t *testing.T) {
	r1 := v1rec(payload(set("a", "1")))
	r2 := v1rec(payload(set("b", "2"), set("c", "3")))
	r3 := v1rec(payload(del("a")))
	clean := cat(hdr, r1, r2, r3)
	o1 := int64(8)
	o2 := o1 + int64(len(r1))
	o3 := o2 + int64(len(r2))
	end := o3 + int64(len(r3))
	s1 := map[string]string{"a": "1"}
	s2 := map[string]string{"a": "1", "b": "2", "c": "3"}
	s3 := map[string]string{"b": "2", "c": "3"}

	checkModes(t, "clean", clean, Options{}, "v1", "clean", "", 0, 3, s3)

	// Fewer than 12 bytes after the last record: torn tail, no search.
	r4 := v1rec(payload(set("d", "4")))
	checkModes(t, "short tail", cat(clean, r4[:5]), Options{}, "v1", "tail", ReasonTornTail, end, 3, s3)
	// Even 11 bytes that happen to be a good v1 header prefix + junk: still a tail.
	checkModes(t, "11-byte tail", cat(clean, r4[:11]), Options{}, "v1", "tail", ReasonTornTail, end, 3, s3)

	// TORN: header whole, payload cut.
	torn := cat(clean, r4[:len(r4)-1])
	checkModes(t, "torn payload", torn, Options{}, "v1", "tail", ReasonTornTail, end, 3, s3)
	if v := verdict(torn, end, true, false, 0); v != EvidenceNone {
		t.Errorf("torn payload: verdict %q", v)
	}

	// TORN, a header declaring 100 bytes (within the maximum) followed by a whole later
	// record: the header proves its length, so the later record is part of its own torn
	// payload: torn tail, no search (docs/classification.md). The search itself would have
	// found rule-2 evidence there.
	big := u32(100)
	liar := cat(big, u32(crc32.ChecksumIEEE(big)), u32(0x12345678))
	tornEv := cat(clean, liar, r4)
	checkModes(t, "torn with later record", tornEv, Options{}, "v1", "tail", ReasonTornTail, end, 3, s3)
	if v := verdict(tornEv, end, true, false, 0); v != EvidenceRule2 {
		t.Errorf("torn with later record: verdict %q, want 2", v)
	}
	// The same header over the maximum (100 > 50) is searched, and the later record is
	// evidence: corrupt.
	checkModes(t, "torn over max with later record", tornEv, Options{MaxRecord: 50}, "v1", "corrupt", "", end, 3, s3)

	// Rule 1a: a middle record's payload rotted; its header is whole and bytes follow it.
	mid := flip(clean, int(o2)+14, 0x01)
	checkModes(t, "middle payload rot", mid, Options{}, "v1", "corrupt", "", o2, 1, s1)
	if v := verdict(mid, o2, true, true, 0); v != EvidenceRule1a {
		t.Errorf("rule 1a: verdict %q", v)
	}
	// Zero-length record (self-checksum good) followed by records: rule 1a.
	zl := cat(u32(0), u32(crc32.ChecksumIEEE(u32(0))), u32(0))
	zlMid := cat(hdr, r1, zl, r2)
	checkModes(t, "zero-length mid", zlMid, Options{}, "v1", "corrupt", "", o2, 1, s1)
	if v := verdict(zlMid, o2, true, true, 0); v != EvidenceRule1a {
		t.Errorf("zero-length mid: verdict %q", v)
	}
	// ... and as the last thing in the file: a damaged tail.
	checkModes(t, "zero-length last", cat(hdr, r1, zl), Options{}, "v1", "tail", ReasonDamagedTail, o2, 1, s1)

	// Last record's payload rotted: nothing after it proves a later write: damaged tail.
	last := flip(clean, int(o3)+13, 0x40)
	checkModes(t, "last payload rot", last, Options{}, "v1", "tail", ReasonDamagedTail, o3, 2, s2)
	if v := verdict(last, o3, true, true, 0); v != EvidenceNone {
		t.Errorf("last payload rot: verdict %q", v)
	}

	// Rule 1b: the last record's self-checksum rotted but its payload CRC still matches.
	sc := flip(clean, int(o3)+5, 0x10)
	checkModes(t, "self-checksum rot", sc, Options{}, "v1", "corrupt", "", o3, 2, s2)
	if v := verdict(sc, o3, true, true, 0); v != EvidenceRule1b {
		t.Errorf("rule 1b: verdict %q", v)
	}
	// Self-checksum and payload both rotted: no evidence, damaged tail.
	both := flip(sc, int(o3)+13, 0x40)
	checkModes(t, "self-checksum and payload rot", both, Options{}, "v1", "tail", ReasonDamagedTail, o3, 2, s2)

	// Rule 2: a middle record's length rotted (past the end, self-checksum fails); the
	// next record's header is found.
	lr := flip(clean, int(o2), 0x80)
	checkModes(t, "middle length rot", lr, Options{}, "v1", "corrupt", "", o2, 1, s1)
	if v := verdict(lr, o2, true, true, 0); v != EvidenceRule2 {
		t.Errorf("rule 2: verdict %q", v)
	}
	// Rule 2, charged branch: the later record is bigger than max but verifiable.
	// max = 12: r4big (payload 14 bytes) is > max; the damaged record has L rotted.
	r4big := v1rec(payload(set("dd", "4444")))
	small := v1rec(payload(set("", ""))) // 9-byte payload, <= 12
	rot := cat(hdr, small, flip(v1rec(payload(set("x", ""))), 0, 0x80), r4big)
	offRot := int64(8 + len(small))
	checkModes(t, "rule 2 charged", rot, Options{MaxRecord: 12}, "v1", "corrupt", "", offRot, 1, map[string]string{"": ""})
	if v := verdict(rot, offRot, true, true, 12); v != EvidenceRule2 {
		t.Errorf("rule 2 charged: verdict %q", v)
	}
	// The same later record with its payload torn: header > max and not verifiable: no evidence.
	rotTorn := rot[:len(rot)-1]
	if v := verdict(rotTorn, offRot, true, true, 12); v != EvidenceNone {
		t.Errorf("rule 2 charged, torn: verdict %q", v)
	}

	// Erased flash: 0xFF...: every position is a "header" of length 0xFFFFFFFF with a good
	// self-checksum, which is > max and never fits: torn tail, no evidence.
	if crc32.ChecksumIEEE([]byte{0xFF, 0xFF, 0xFF, 0xFF}) != 0xFFFFFFFF {
		t.Fatal("crc32(FF FF FF FF) != FF FF FF FF")
	}
	ff := cat(clean, bytes.Repeat([]byte{0xFF}, 4096))
	checkModes(t, "erased flash", ff, Options{}, "v1", "tail", ReasonTornTail, end, 3, s3)
	checkModes(t, "erased flash max", ff, Options{MaxRecord: 0xFFFFFFFE}, "v1", "tail", ReasonTornTail, end, 3, s3)

	// Zeros / stale block after the last record: damaged tail (the kernel refuses this).
	checkModes(t, "zero tail", cat(clean, make([]byte, 4096)), Options{}, "v1", "tail", ReasonDamagedTail, end, 3, s3)

	// Rule 3 in a v1 file: records in the unreleased 8-byte framing after the v1 header.
	p := payload(set("a", "1"))
	eight := cat(hdr, legrec(p))
	checkModes(t, "8-byte v1 framing", eight, Options{}, "v1", "corrupt", "", 8, 0, map[string]string{})
	if v := verdict(eight, 8, true, true, 0); v != EvidenceRule3 {
		t.Errorf("rule 3 (v1): verdict %q", v)
	}
	// ... and after some good v1 records, a damaged record followed by a legacy-framed one.
	v1leg := cat(clean, make([]byte, 12), legrec(p))
	checkModes(t, "v1 then legacy framing", v1leg, Options{}, "v1", "corrupt", "", end, 3, s3)
	if v := verdict(v1leg, end, true, true, 0); v != EvidenceRule3 {
		t.Errorf("rule 3 (v1, later): verdict %q", v)
	}

	// RECORD_TOO_LARGE: a good header larger than max, wholly inside the file (any mode).
	for _, mode := range []Mode{Tolerate, Strict, PointInTime} {
		check(t, "too large", clean, Options{Mode: mode, MaxRecord: 14}, want{layout: "v1", code: CodeRecordTooLarge, errOff: o2, records: 1, state: s1})
		// Its payload CRC does not matter.
		check(t, "too large, bad crc", flip(clean, int(o2)+14, 1), Options{Mode: mode, MaxRecord: 14}, want{layout: "v1", code: CodeRecordTooLarge, errOff: o2, records: 1})
	}
	// A header larger than max that does not fit is TORN, not too large.
	checkModes(t, "too large torn", cat(hdr, r1[:len(r1)-1]), Options{MaxRecord: 1}, "v1", "tail", ReasonTornTail, 8, 0, map[string]string{})

	// Malformed payload with a good CRC: corrupt, even as the last record, no search.
	mal := cat(hdr, r1, v1rec([]byte{2, 0, 0, 0, 0}))
	checkModes(t, "malformed last", mal, Options{}, "v1", "corrupt", "", o2, 1, s1)
	mal2 := cat(hdr, r1, v1rec(append(payload(set("z", "9")), 0))) // trailing byte
	checkModes(t, "malformed trailing byte", mal2, Options{}, "v1", "corrupt", "", o2, 1, s1)
}

func TestLegacyCases(t *testing.T) {
	r1 := legrec(payload(set("a", "1")))
	r2 := legrec(payload(set("b", "2"), set("c", "3")))
	r3 := legrec(payload(del("a")))
	clean := cat(r1, r2, r3)
	o2 := int64(len(r1))
	o3 := o2 + int64(len(r2))
	end := o3 + int64(len(r3))
	s1 := map[string]string{"a": "1"}
	s2 := map[string]string{"a": "1", "b": "2", "c": "3"}
	s3 := map[string]string{"b": "2", "c": "3"}

	checkModes(t, "clean", clean, Options{}, "legacy", "clean", "", 0, 3, s3)
	checkModes(t, "short tail", cat(clean, r1[:7]), Options{}, "legacy", "tail", ReasonTornTail, end, 3, s3)
	// Payload cut: the length points past the end: DAMAGED, no later record: damaged tail.
	checkModes(t, "torn payload", cat(clean, r1[:len(r1)-1]), Options{}, "legacy", "tail", ReasonDamagedTail, end, 3, s3)

	// Rule 3: a middle record's payload rotted; the next record is found.
	mid := flip(clean, int(o2)+10, 0x02)
	checkModes(t, "middle rot", mid, Options{}, "legacy", "corrupt", "", o2, 1, s1)
	if v := verdict(mid, o2, false, true, 0); v != EvidenceRule3 {
		t.Errorf("legacy rule 3: verdict %q", v)
	}
	// A middle record's length rotted to point past the end (the kernel truncates: we refuse).
	lp := flip(clean, int(o2)+1, 0x01)
	checkModes(t, "middle length past end", lp, Options{}, "legacy", "corrupt", "", o2, 1, s1)
	// The last record rotted: damaged tail.
	checkModes(t, "last rot", flip(clean, int(o3)+9, 0x04), Options{}, "legacy", "tail", ReasonDamagedTail, o3, 2, s2)
	// Zeros after the last record: damaged tail.
	checkModes(t, "zero tail", cat(clean, make([]byte, 100)), Options{}, "legacy", "tail", ReasonDamagedTail, end, 3, s3)
	// In a legacy file, rule 3 does not look at p = off: the damaged record itself does not
	// count, nor does rule 2 (v1 headers) apply.
	v1r := v1rec(payload(set("q", "q")))
	checkModes(t, "v1 record in legacy file", cat(clean, make([]byte, 8), v1r), Options{}, "legacy", "tail", ReasonDamagedTail, end, 3, s3)

	// RECORD_TOO_LARGE mid-file with a good CRC; with a bad CRC it is merely damaged.
	for _, mode := range []Mode{Tolerate, Strict, PointInTime} {
		check(t, "too large", clean, Options{Mode: mode, MaxRecord: 11}, want{layout: "legacy", code: CodeRecordTooLarge, errOff: o2, records: 1, state: s1})
	}
	checkModes(t, "too large bad crc mid", flip(clean, int(o2)+10, 1), Options{MaxRecord: 11}, "legacy", "corrupt", "", o2, 1, s1)

	// Malformed with a good CRC, after the first record: corrupt (not "not a database").
	checkModes(t, "malformed", cat(r1, legrec([]byte{0, 0, 0, 0, 9})), Options{}, "legacy", "corrupt", "", o2, 1, s1)
}

// ---- (3b) torn values that carry log data (docs/classification.md, the torn-tail rule) ----

// tornEveryCut appends rec (a v1 record whose value carries log-like bytes) to a v1 file with
// one good record before it, and cuts the file at every byte inside rec. Each cut must be a
// torn tail at rec's offset in every mode (strict refuses it and names the cut), never
// CORRUPT_WAL, whatever the cut leaves of the embedded data. It returns, per cut, the verdict
// the evidence search would have given (what the old rule refused on), so that callers can
// show the embedded bytes really do look like evidence.
func tornEveryCut(t *testing.T, name string, rec []byte, opts Options) map[int]string {
	t.Helper()
	r1 := v1rec(payload(set("a", "1")))
	base := cat(hdr, r1)
	off := int64(len(base))
	s1 := map[string]string{"a": "1"}
	full := cat(base, rec)
	// Whole, the record replays.
	if o := Recover(full, opts, nil); o.Code != "" || o.Truncate || o.Records != 2 {
		t.Fatalf("%s: whole file not clean: %+v", name, o)
	}
	max := opts.MaxRecord
	if max == 0 {
		max = DefaultMaxRecord
	}
	verdicts := map[int]string{}
	for cut := 1; cut < len(rec); cut++ {
		data := full[:int(off)+cut]
		checkModes(t, fmt.Sprintf("%s, cut %d/%d", name, cut, len(rec)), data, opts, "v1", "tail", ReasonTornTail, off, 1, s1)
		if cut >= v1HeaderLen {
			verdicts[cut] = verdict(data, off, true, false, max)
		}
	}
	return verdicts
}

// A torn value that contains a valid v1 record header (self-checksum good, length within the
// maximum): under the old rule it was rule-2 evidence and the crash was refused.
func TestTornValueWithV1Header(t *testing.T) {
	inner := v1rec(payload(set("x", "yy")))
	value := cat([]byte("prefix:"), inner[:12], []byte(":and some more bytes after it"))
	rec := v1rec(payload(set("k", string(value))))
	verdicts := tornEveryCut(t, "value with v1 header", rec, Options{})
	// The embedded header starts at 12 (record header) + 10 (op up to the value) + 7.
	at := 12 + 10 + 7
	if bytes.Index(rec, inner[:12]) != at {
		t.Fatal("test layout assumption broken")
	}
	for cut, v := range verdicts {
		if cut >= at+8 && v != EvidenceRule2 {
			t.Errorf("cut %d: the search finds %q, want rule 2 (the case would not test the change)", cut, v)
		}
	}
}

// A torn value holding whole verifiable v1 records and legacy-framed records.
func TestTornValueWithWholeRecords(t *testing.T) {
	p1 := payload(set("inner1", "v1"), del("gone"))
	p2 := payload(set("inner2", "legacy"))
	p3 := payload(set("inner3", "v1 again"))
	value := cat(v1rec(p1), legrec(p2), v1rec(p3), legrec(p2))
	rec := v1rec(payload(set("blob", string(value)), set("after", "x")))
	verdicts := tornEveryCut(t, "value with v1 and legacy records", rec, Options{})
	start := 12 + 1 + 4 + 4 + 4 // record header, tag, klen, "blob", vlen
	if !bytes.Equal(rec[start:start+len(value)], value) {
		t.Fatal("test layout assumption broken")
	}
	if v := verdicts[start+len(v1rec(p1))]; v != EvidenceRule2 {
		t.Errorf("a whole embedded v1 record: the search finds %q, want rule 2", v)
	}

	// Legacy-framed records alone (rule 3 for the old search).
	value = cat(legrec(p2), legrec(p1), legrec(p3))
	rec = v1rec(payload(set("blob", string(value))))
	verdicts = tornEveryCut(t, "value with legacy records", rec, Options{})
	if v := verdicts[start+len(legrec(p2))]; v != EvidenceRule3 {
		t.Errorf("a whole embedded legacy record: the search finds %q, want rule 3", v)
	}
	// A MaxRecord below the embedded records' lengths changes nothing: the outer header is
	// still within the maximum, so nothing is searched.
	big := int(uint32(len(rec) - 12))
	tornEveryCut(t, "value with legacy records, tight max", rec, Options{MaxRecord: uint32(big)})

	// The rule is v1's: a legacy file has no self-checking header, so a torn legacy record's
	// length is untrusted and the records inside its value ARE evidence (CORRUPT_WAL).
	l1 := legrec(payload(set("a", "1")))
	lrec := legrec(payload(set("blob", string(value))))
	lfull := cat(l1, lrec)
	loff := int64(len(l1))
	cut := len(l1) + start - 4 + len(legrec(p2)) + 2 // two whole embedded records and a bit
	checkModes(t, "legacy file, torn value with legacy records", lfull[:cut], Options{}, "legacy", "corrupt", "", loff, 1, map[string]string{"a": "1"})
	checkModes(t, "legacy file, torn before the embedded records", lfull[:len(l1)+20], Options{}, "legacy", "tail", ReasonDamagedTail, loff, 1, map[string]string{"a": "1"})
}

// A value that is a whole log file (file header, then records), torn at every point, and
// also inside a multi-op record after other ops.
func TestTornValueIsWholeLog(t *testing.T) {
	log := cat(hdr,
		v1rec(payload(set("a", "1"))),
		v1rec(payload(set("b", "2"), del("a"))),
		v1rec(payload(set("c", strings.Repeat("z", 300)))))
	if o, st := State(log, Options{}); o.Code != "" || o.Truncate || o.Records != 3 || len(st) != 2 {
		t.Fatalf("the embedded log is not a clean log: %+v", o)
	}
	rec := v1rec(payload(set("db.wal", string(log))))
	verdicts := tornEveryCut(t, "value is a whole log", rec, Options{})
	found := 0
	for _, v := range verdicts {
		if v != EvidenceNone {
			found++
		}
	}
	if found == 0 {
		t.Error("the search finds no evidence at any cut: the case would not test the change")
	}
	rec = v1rec(payload(set("x", "y"), del("q"), set("db.wal", string(log)), set("tail", "t")))
	tornEveryCut(t, "value is a whole log, third op", rec, Options{})

	// Torn inside the value, then the file continues with a valid record that the writer's
	// next append would never have left: the torn record's own length covers it, so it is
	// still part of the tail (the header proves the length; nothing after it was written).
	r1 := v1rec(payload(set("a", "1")))
	recLog := v1rec(payload(set("db.wal", string(log))))
	off := int64(8 + len(r1))
	for _, cut := range []int{12, 13, 30, 40, len(recLog) / 2, len(recLog) - 1} {
		data := cat(hdr, r1, recLog[:cut])
		checkModes(t, fmt.Sprintf("whole log torn at %d", cut), data, Options{}, "v1", "tail", ReasonTornTail, off, 1, map[string]string{"a": "1"})
	}
}

// An erased 0xFF tail: its "header" checks out with length 0xFFFFFFFF, over any maximum, and
// runs past the end, so it is still searched: cut when nothing follows, CORRUPT_WAL when a
// later record does.
func TestErasedTailOverMax(t *testing.T) {
	r1 := v1rec(payload(set("a", "1")))
	r2 := v1rec(payload(set("b", "2")))
	clean := cat(hdr, r1)
	off := int64(len(clean))
	s1 := map[string]string{"a": "1"}
	ff := bytes.Repeat([]byte{0xFF}, 512)
	for _, max := range []uint32{0, 1 << 20, 0xFFFFFFFE} {
		opts := Options{MaxRecord: max}
		checkModes(t, "erased, nothing follows", cat(clean, ff), opts, "v1", "tail", ReasonTornTail, off, 1, s1)
		// Even a short erased tail of exactly a header.
		checkModes(t, "erased header only", cat(clean, ff[:12]), opts, "v1", "tail", ReasonTornTail, off, 1, s1)
		// A later v1 record inside or after the erased region: evidence.
		checkModes(t, "erased, then a v1 record", cat(clean, ff, r2), opts, "v1", "corrupt", "", off, 1, s1)
		checkModes(t, "erased, then a v1 record, then erased", cat(clean, ff, r2, ff), opts, "v1", "corrupt", "", off, 1, s1)
		// A later v1 header alone (its payload torn) is evidence too (rule 2).
		checkModes(t, "erased, then a torn v1 record", cat(clean, ff, r2[:14]), opts, "v1", "corrupt", "", off, 1, s1)
		// A later legacy-framed record: evidence (rule 3).
		checkModes(t, "erased, then a legacy record", cat(clean, ff, legrec(payload(set("c", "3")))), opts, "v1", "corrupt", "", off, 1, s1)
	}
	// The maximum is exact: a torn header of length == max is cut unsearched, max + 1 is searched.
	n := uint32(100)
	h := cat(u32(n), u32(crc32.ChecksumIEEE(u32(n))), u32(0))
	data := cat(clean, h, make([]byte, 10), r2) // 10 + len(r2) < 100: torn
	checkModes(t, "torn, length == max", data, Options{MaxRecord: n}, "v1", "tail", ReasonTornTail, off, 1, s1)
	checkModes(t, "torn, length == max+1", data, Options{MaxRecord: n - 1}, "v1", "corrupt", "", off, 1, s1)
	checkModes(t, "torn, length == max+1, no evidence", cat(clean, h, make([]byte, 10)), Options{MaxRecord: n - 1}, "v1", "tail", ReasonTornTail, off, 1, s1)
}

// The charging, pinned exactly on a tiny legacy case.
func TestBudgetCharging(t *testing.T) {
	r1 := legrec(payload(set("a", "1")))
	off := int64(len(r1))
	// Damaged record (L = 0), then a legacy-framed, well-formed record with a wrong CRC:
	// len 5, crc 0, payload 00 00000000 (delete of the empty key).
	if crc32.ChecksumIEEE(make([]byte, 5)) == 0 {
		t.Fatal("test assumption broken")
	}
	data := cat(r1, make([]byte, 8), u32(5), u32(0), make([]byte, 5))
	// Positions p in (off, S-8]: only p = off+8 has L != 0 that fits; its walk reads one tag
	// (8 units), it is well-formed, so L = 5 is charged: 13 units, no evidence.
	v, used := search(data, off, false, true, DefaultMaxRecord, Budget(int64(len(data)), off))
	if v != EvidenceNone || used != 13 {
		t.Fatalf("verdict %q used %d, want none/13", v, used)
	}
	// The check is used+charge > budget: a budget of exactly 13 suffices, 12 does not
	// (the L charge fails), 7 fails at the tag.
	if v, used := search(data, off, false, true, DefaultMaxRecord, 13); v != EvidenceNone || used != 13 {
		t.Fatalf("budget 13: %q %d", v, used)
	}
	if v, used := search(data, off, false, true, DefaultMaxRecord, 12); v != EvidenceBudget || used != 8 {
		t.Fatalf("budget 12: %q %d", v, used)
	}
	if v, used := search(data, off, false, true, DefaultMaxRecord, 7); v != EvidenceBudget || used != 0 {
		t.Fatalf("budget 7: %q %d", v, used)
	}
	checkModes(t, "charging case", data, Options{}, "legacy", "tail", ReasonDamagedTail, off, 1, map[string]string{"a": "1"})

	// Rule 1b charges L before comparing.
	r := v1rec(payload(set("k", "v")))
	sc := flip(cat(hdr, r), 8+5, 1) // self-checksum rotted, payload intact
	if v, used := search(sc, 8, true, true, DefaultMaxRecord, 1<<20); v != EvidenceRule1b || used != int64(len(r)-12) {
		t.Fatalf("1b: %q %d", v, used)
	}
	if v, _ := search(sc, 8, true, true, DefaultMaxRecord, int64(len(r)-13)); v != EvidenceBudget {
		t.Fatalf("1b short budget: %q", v)
	}
}

// Budget exhaustion under the real formula, with rule 2's charged branch: K headers with a
// good self-checksum and length 1 MiB (> max) whose payload CRC fails, each charged 1 MiB.
func TestBudgetExhaustion(t *testing.T) {
	const L = 1 << 20
	h := cat(u32(L), u32(crc32.ChecksumIEEE(u32(L))), u32(0xFFFFFFFF))
	build := func(k int) []byte {
		// Damaged record at 8: L = 0 with a wrong self-checksum (no rule 1), then the headers,
		// then 1 MiB of filler so that every header's declared payload fits.
		b := cat(hdr, make([]byte, 12))
		for i := 0; i < k; i++ {
			b = append(b, h...)
		}
		return append(b, bytes.Repeat([]byte{0xEE}, L)...)
	}
	opts := Options{MaxRecord: 1000}
	// K = 2: 2 MiB charged < budget (4 * ~1 MiB + 1 MiB): no evidence, damaged tail.
	few := build(2)
	if v, used := search(few, 8, true, true, 1000, Budget(int64(len(few)), 8)); v != EvidenceNone || used < 2*L {
		t.Fatalf("K=2: %q %d", v, used)
	}
	checkModes(t, "K=2", few, opts, "v1", "tail", ReasonDamagedTail, 8, 0, map[string]string{})
	// K = 6: 6 MiB > budget: exhausted, which is corrupt.
	many := build(6)
	if v, used := search(many, 8, true, true, 1000, Budget(int64(len(many)), 8)); v != EvidenceBudget || used > Budget(int64(len(many)), 8) {
		t.Fatalf("K=6: %q %d", v, used)
	}
	checkModes(t, "K=6", many, opts, "v1", "corrupt", "", 8, 0, map[string]string{})
	// The default max (1 GiB) accepts the same headers as plain rule-2 evidence.
	if v := verdict(many, 8, true, true, 0); v != EvidenceRule2 {
		t.Fatalf("K=6 default max: %q", v)
	}
}

func TestApplyOrderAndAliasing(t *testing.T) {
	data := cat(hdr, v1rec(payload(set("a", "1"), del("a"), set("b", ""))), v1rec(payload(del("zz"))))
	var got [][]Op
	o := Recover(data, Options{}, func(ops []Op) { got = append(got, ops) })
	if o.Records != 2 || o.Ops != 4 || len(got) != 2 || len(got[0]) != 3 || len(got[1]) != 1 {
		t.Fatalf("%+v %v", o, got)
	}
	if got[0][0].Delete || string(got[0][0].Key) != "a" || string(got[0][0].Value) != "1" ||
		!got[0][1].Delete || string(got[0][1].Key) != "a" ||
		got[0][2].Delete || string(got[0][2].Key) != "b" || len(got[0][2].Value) != 0 ||
		!got[1][0].Delete || string(got[1][0].Key) != "zz" {
		t.Fatalf("ops %+v", got)
	}
	// Records before a refusal are replayed.
	bad := cat(data, v1rec([]byte{7, 7, 7, 7, 7}), v1rec(payload(set("c", "3"))))
	o, st := State(bad, Options{})
	if o.Code != CodeCorruptWAL || o.Records != 2 || o.End != int64(len(data)) || !reflect.DeepEqual(st, map[string]string{"b": ""}) {
		t.Fatalf("%+v %v", o, st)
	}
}

// ---- (4) random input: never panic, and the outcome is self-consistent ----

func checkInvariants(t *testing.T, data []byte, opts Options) {
	t.Helper()
	size := int64(len(data))
	o := Recover(data, opts, nil)
	if o.End < 0 || o.End > size || o.Records < 0 || o.Ops < o.Records {
		t.Fatalf("bad counters %+v (size %d)", o, size)
	}
	if (o.Code == "") != (o.ErrOffset == -1) {
		t.Fatalf("code/offset %+v", o)
	}
	if o.Code != "" && o.Truncate {
		t.Fatalf("refusal with truncation %+v", o)
	}
	if o.Truncate {
		if o.TruncOffset != o.End || o.TruncOffset+o.TruncBytes != size || o.TruncBytes <= 0 || o.Reason == "" {
			t.Fatalf("bad truncation %+v (size %d)", o, size)
		}
		// The cut file is clean and replays the same records.
		c := Recover(data[:o.TruncOffset], opts, nil)
		if c.Code != "" || c.Truncate || c.Records != o.Records || c.End != o.End {
			if !(o.Reason == ReasonTornHeader && c == (Outcome{ErrOffset: -1})) {
				t.Fatalf("cut file not clean: %+v after %+v", c, o)
			}
		}
	}
	if o.Code == "" && !o.Truncate && o.End != size {
		t.Fatalf("clean but End != size: %+v", o)
	}
	// The modes agree on everything but what they do with a tail or corruption.
	var byMode [3]Outcome
	for _, m := range []Mode{Tolerate, Strict, PointInTime} {
		p := opts
		p.Mode = m
		q := Recover(data, p, nil)
		if q.Records != o.Records || q.End != o.End || q.Layout != o.Layout || q.Ops != o.Ops {
			t.Fatalf("modes disagree: %+v vs %+v", q, o)
		}
		byMode[m] = q
	}
	// A strict refusal names exactly the cut that tolerate mode makes; nothing else fills
	// Refused, and every tolerated tail cut is a strict refusal.
	tol, str := byMode[Tolerate], byMode[Strict]
	for _, q := range byMode {
		if q.Code != CodeTailDamage && q.Refused != (Refusal{}) {
			t.Fatalf("Refused set without a TAIL_DAMAGE refusal: %+v", q)
		}
	}
	if (str.Code == CodeTailDamage) != (tol.Truncate && tol.Reason != ReasonCorrupt) {
		t.Fatalf("strict %+v vs tolerate %+v", str, tol)
	}
	if str.Code == CodeTailDamage {
		r := str.Refused
		if r.Bytes <= 0 || r.Offset != str.ErrOffset || r.Reason != str.Reason ||
			r.Offset != tol.TruncOffset || r.Bytes != tol.TruncBytes || r.Reason != tol.Reason {
			t.Fatalf("strict refusal %+v vs tolerate %+v", str, tol)
		}
	}
}

func TestRandomNoPanic(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	good := cat(hdr, v1rec(payload(set("a", "1"))), v1rec(payload(set("b", "22"), del("a"))), v1rec(payload(set("", "x"))))
	goodLeg := cat(legrec(payload(set("a", "1"))), legrec(payload(set("b", "22"), del("a"))), legrec(payload(set("", "x"))))
	for i := 0; i < n; i++ {
		var data []byte
		switch i % 4 {
		case 0: // pure random bytes
			data = make([]byte, rng.Intn(200))
			rng.Read(data)
		case 1: // random tail after a v1 header
			data = append(append([]byte{}, hdr...), make([]byte, rng.Intn(100))...)
			rng.Read(data[8:])
		case 2, 3: // a valid file with a few random byte edits and a random cut
			src := good
			if i%4 == 3 {
				src = goodLeg
			}
			data = append([]byte{}, src...)
			for j := rng.Intn(4); j > 0; j-- {
				data[rng.Intn(len(data))] = byte(rng.Intn(256))
			}
			if rng.Intn(2) == 0 {
				data = data[:rng.Intn(len(data)+1)]
			}
		}
		opts := Options{Mode: Mode(rng.Intn(3))}
		if rng.Intn(4) == 0 {
			opts.MaxRecord = uint32(rng.Intn(40))
		}
		checkInvariants(t, data, opts)
	}
}

func FuzzRecover(f *testing.F) {
	f.Add([]byte{}, uint32(0))
	f.Add(cat(hdr, v1rec(payload(set("a", "xy")))), uint32(0))
	f.Add(legrec(payload(set("a", "xy"))), uint32(0))
	f.Add(cat(hdr, bytes.Repeat([]byte{0xFF}, 64)), uint32(0))
	f.Add([]byte{0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}, uint32(3))
	f.Fuzz(func(t *testing.T, data []byte, max uint32) {
		checkInvariants(t, data, Options{MaxRecord: max})
	})
}

func BenchmarkRecoverFixture(b *testing.B) {
	dir, all := fixtures.Load(b)
	data := fixtures.Read(b, dir, fixtures.Named(b, all, "v1_clean_5000_ops.wal"))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		State(data, Options{})
	}
}
