package format_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"hash/crc32"
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

// TestWorkedExample: the test vectors of wal-format.md, byte for byte, both directions.
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
