package classify_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
)

// The search goes over runs of zeros a word at a time (no record has length 0): a record
// planted after a zero run, at every alignment and at every distance from the end of a
// window, is still found exactly where it starts, and a zero tail with nothing in it is no
// evidence.
func TestEvidenceAfterZeroRuns(t *testing.T) {
	rec := format.AppendRecord(nil, format.LayoutV1, format.AppendSet(nil, []byte("k"), []byte("v")))
	cfg := classify.Config{Layout: format.LayoutV1, MaxRecord: classify.DefaultMaxRecord}
	for _, zeros := range []int{1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 1000, 48<<10 - 13, 48<<10 - 12, 48<<10 - 1, 48 << 10, 48<<10 + 5, 200 << 10} {
		for lead := range 9 { // the planted record's offset modulo 8
			data := make([]byte, 100+lead+zeros)
			data[100] = 0xAA // the damaged record's first byte: the search starts after it
			data = append(data, rec...)
			at := int64(100 + lead + zeros)
			ev, err := classify.FindEvidence(context.Background(), bytes.NewReader(data), int64(len(data)), cfg, 100, false)
			if err != nil || !ev.Found || ev.At != at {
				t.Fatalf("%d zeros, lead %d: %+v %v, want evidence at %d", zeros, lead, ev, err, at)
			}
		}
	}
	data := make([]byte, 1<<20)
	ev, err := classify.FindEvidence(context.Background(), bytes.NewReader(data), int64(len(data)), cfg, 0, false)
	if err != nil || ev.Found {
		t.Fatalf("a zero tail: %+v %v", ev, err)
	}
}
