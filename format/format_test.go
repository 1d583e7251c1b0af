package format_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/streamwal/recovery/format"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWorkedExample: the test vectors of docs/format.md, byte for byte, both directions.
func TestWorkedExample(t *testing.T) {
	payload := format.AppendSet(nil, []byte("a"), []byte("xy"))
	v1 := format.AppendRecord(format.FileHeader[:], format.LayoutV1, payload)
	want := unhex(t, "4C52444200010000"+"0000000C"+"28F29337"+"CCA023C7"+"010000000161000000027879")
	if !bytes.Equal(v1, want) {
		t.Fatalf("v1 encoding\n got %X\nwant %X", v1, want)
	}
	legacy := format.AppendRecord(nil, format.LayoutLegacy, payload)
	if want := unhex(t, "0000000CCCA023C7010000000161000000027879"); !bytes.Equal(legacy, want) {
		t.Fatalf("legacy encoding\n got %X\nwant %X", legacy, want)
	}
	h := format.DecodeV1Header(v1[8:])
	if !h.SelfCheckOK() || h.Length != 12 || h.PayloadCRC != format.Checksum(payload) {
		t.Fatalf("decoded header %+v", h)
	}
	ops, err := format.AppendOps(nil, v1[20:])
	if err != nil || len(ops) != 1 || ops[0].Kind != format.OpSet || string(ops[0].Key) != "a" || string(ops[0].Value) != "xy" {
		t.Fatalf("decoded ops %+v %v", ops, err)
	}
}

// TestChecksums: the hand-rolled length checksum and the SIMD checksum agree with the standard
// library's CRC-32 IEEE, including the 0xFFFFFFFF fixed point the evidence rules guard against.
func TestChecksums(t *testing.T) {
	for _, n := range []uint32{0, 1, 12, 0x4C524442, 1 << 30, 0xFFFFFFFE, 0xFFFFFFFF} {
		b := []byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		if got, want := format.LengthChecksum(n), crc32.ChecksumIEEE(b); got != want {
			t.Fatalf("LengthChecksum(%#x) = %#x, want %#x", n, got, want)
		}
	}
	if format.LengthChecksum(0xFFFFFFFF) != 0xFFFFFFFF {
		t.Fatal("crc32(FF FF FF FF) is no longer FF FF FF FF?")
	}
	data := bytes.Repeat([]byte("streamwal"), 1000)
	if format.Checksum(data) != crc32.ChecksumIEEE(data) || format.UpdateChecksum(format.Checksum(data[:7]), data[7:]) != crc32.ChecksumIEEE(data) {
		t.Fatal("Checksum/UpdateChecksum disagree with hash/crc32")
	}
}

func TestMalformedPayloads(t *testing.T) {
	set := format.AppendSet(nil, []byte("key"), []byte("value"))
	cases := map[string][]byte{
		"empty":              {},
		"unknown tag":        {2, 0, 0, 0, 0},
		"cut length":         {1, 0, 0},
		"key past the end":   {0, 0, 0, 0, 9, 'a'},
		"value past the end": set[:len(set)-1],
		"trailing byte":      append(bytes.Clone(set), 0),
		"huge key length":    {0, 0xFF, 0xFF, 0xFF, 0xFF},
	}
	for name, p := range cases {
		_, err := format.CountOps(p)
		var me *format.MalformedError
		if !errors.Is(err, format.ErrMalformed) || !errors.As(err, &me) {
			t.Errorf("%s: want a *MalformedError, got %v", name, err)
		}
		it := format.Iter(p) // the iterator never panics, even on what CountOps refuses
		for it.Next() {
		}
	}
	p := format.AppendDelete(format.AppendSet(nil, nil, nil), []byte{0xFF})
	if n, err := format.CountOps(p); n != 2 || err != nil {
		t.Fatalf("empty key and value, then a delete: %d ops, %v", n, err)
	}
}

// TestOpIterAgreesWithTheOps: on random payloads (sets and deletes, empty and long keys and
// values) the iterator yields exactly the ops that were encoded, through Op and through Kind,
// Key and Value, with ValueOffset pointing at each set's value, and capped slices; on every
// prefix of a payload (malformed) it never panics and never yields an op past a cut.
func TestOpIterAgreesWithTheOps(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var none format.OpIter
	if none.Next() || none.Key() != nil || none.Value() != nil || none.Op().Key != nil {
		t.Fatal("the zero OpIter yields something")
	}
	for range 2000 {
		var want []format.Op
		var p []byte
		for range 1 + rng.IntN(6) {
			key := make([]byte, rng.IntN(3)*rng.IntN(40))
			for i := range key {
				key[i] = byte(rng.Uint32())
			}
			if rng.IntN(3) == 0 {
				p = format.AppendDelete(p, key)
				want = append(want, format.Op{Kind: format.OpDelete, Key: key})
				continue
			}
			val := make([]byte, rng.IntN(4)*rng.IntN(300))
			for i := range val {
				val[i] = byte(rng.Uint32())
			}
			p = format.AppendSet(p, key, val)
			want = append(want, format.Op{Kind: format.OpSet, Key: key, Value: val})
		}
		it := format.Iter(p)
		if it.Key() != nil || it.Value() != nil {
			t.Fatal("an op before the first Next")
		}
		i := 0
		for it.Next() {
			if i >= len(want) {
				t.Fatalf("more ops than the %d encoded", len(want))
			}
			w, op := want[i], it.Op()
			if op.Kind != w.Kind || it.Kind() != w.Kind || !bytes.Equal(op.Key, w.Key) || !bytes.Equal(it.Key(), w.Key) ||
				!bytes.Equal(op.Value, w.Value) || !bytes.Equal(it.Value(), w.Value) || (w.Kind == format.OpDelete) != (it.Value() == nil) {
				t.Fatalf("op %d: got %v %q %q, want %v %q %q", i, op.Kind, op.Key, op.Value, w.Kind, w.Key, w.Value)
			}
			if cap(it.Key()) != len(it.Key()) || cap(it.Value()) != len(it.Value()) {
				t.Fatalf("op %d: key or value not capped", i)
			}
			if !bytes.Equal(p[it.KeyOffset():it.KeyOffset()+len(w.Key)], w.Key) {
				t.Fatalf("op %d: KeyOffset %d does not point at the key", i, it.KeyOffset())
			}
			if w.Kind == format.OpSet && !bytes.Equal(p[it.ValueOffset():it.ValueOffset()+len(w.Value)], w.Value) {
				t.Fatalf("op %d: ValueOffset %d does not point at the value", i, it.ValueOffset())
			}
			i++
		}
		if i != len(want) || it.Next() || it.Key() != nil {
			t.Fatalf("%d ops yielded, %d encoded (or Next went on after the end)", i, len(want))
		}
		cut := rng.IntN(len(p))
		it = format.Iter(p[:cut])
		n := 0
		for it.Next() {
			n++
		}
		if c, err := format.CountOps(p[:cut]); err == nil && c != n {
			t.Fatalf("prefix of %d bytes: CountOps %d ops, the iterator %d", cut, c, n)
		}
	}
}
