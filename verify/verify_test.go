package verify_test

import (
	"testing"

	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/verify"
)

func TestPayload(t *testing.T) {
	good := format.AppendDelete(format.AppendSet(nil, []byte("k"), []byte("v")), []byte("gone"))
	flipped := append([]byte(nil), good...)
	flipped[2] ^= 1
	truncated := good[:len(good)-1] // the checksum of these bytes holds, the ops do not parse

	for _, c := range []struct {
		name    string
		p       []byte
		crc     uint32
		ops     int
		trouble classify.Trouble
	}{
		{"good", good, format.Checksum(good), 2, 0},
		{"checksum mismatch", flipped, format.Checksum(good), 0, classify.Damaged},
		{"does not parse", truncated, format.Checksum(truncated), 0, classify.Malformed},
	} {
		n, tr, detail := verify.Payload(c.p, c.crc)
		if n != c.ops || tr != c.trouble || (tr == 0) != (detail == "") {
			t.Errorf("%s: Payload = %d ops, trouble %v (%q); want %d ops, trouble %v", c.name, n, tr, detail, c.ops, c.trouble)
		}
	}
}
