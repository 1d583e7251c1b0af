package apply_test

import (
	"testing"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/format"
)

// An Applier's own tests build Records with NewRecord: every accessor gives back what it
// was built from, at the extremes of what a log can hold too.
func TestNewRecord(t *testing.T) {
	payload := format.AppendDelete(format.AppendSet(nil, []byte("k"), []byte("v")), []byte("x"))
	for _, c := range []struct {
		off      int64
		hdr, ops int
	}{
		{8, format.V1HeaderSize, 2},
		{0, format.LegacyHeaderSize, 2},
		{1<<62 + 3, format.V1HeaderSize, 1<<31 - 1},
	} {
		prep := []uint64{7, 8}
		r := apply.NewRecord(c.off, c.hdr, payload, c.ops, prep)
		if r.Offset != c.off || r.NumOps() != c.ops || r.PayloadOffset() != c.off+int64(c.hdr) || &r.Payload[0] != &payload[0] || &r.Prepared[0] != &prep[0] {
			t.Fatalf("%+v: got offset %d, ops %d, payload offset %d", c, r.Offset, r.NumOps(), r.PayloadOffset())
		}
		n, it := 0, r.Ops()
		for it.Next() {
			n++
		}
		if n != 2 {
			t.Fatalf("Ops iterated %d ops, want 2", n)
		}
	}
}
