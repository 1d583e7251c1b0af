package tests

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testdepth"
	"github.com/streamwal/recovery/internal/testlog"
)

var layouts = []format.Layout{format.LayoutV1, format.LayoutLegacy}

var modes = []modeOpt{{mode: recovery.Tolerate}, {mode: recovery.Strict}, {mode: recovery.PointInTime}}

// recordAt returns the index of the record whose bytes hold offset off, or -1 (file header).
func recordAt(l testlog.Log, off int64) int {
	k := -1
	for i, o := range l.Offsets {
		if o <= off {
			k = i
		}
	}
	return k
}

// TestTornTailsExhaustive cuts a small log at every byte offset: each cut recovers exactly the
// records wholly before it and truncates the rest.
func TestTornTailsExhaustive(t *testing.T) {
	for _, lay := range layouts {
		l := testlog.RandomLog(1, lay, 6, 3, 8)
		counts := map[string]int{}
		for cut := 0; cut <= len(l.Bytes); cut++ {
			data := l.Bytes[:cut]
			name := fmt.Sprintf("%v cut at %d of %d", lay, cut, len(l.Bytes))
			w := check(t, name, data, modeOpt{}, quick)
			counts[class(w)]++

			// The same expectations, stated without the oracle.
			whole, boundary := 0, lay.FirstRecord()
			for i, o := range l.Offsets {
				end := int64(len(l.Bytes))
				if i+1 < len(l.Offsets) {
					end = l.Offsets[i+1]
				}
				if end <= int64(cut) {
					whole, boundary = i+1, end
				}
				_ = o
			}
			switch {
			case cut == 0:
				if w.Code != "" || w.Truncate || w.Records != 0 {
					t.Fatalf("%s: empty file: %v", name, w)
				}
			case lay == format.LayoutV1 && cut < format.FileHeaderSize:
				if !w.Truncate || w.TruncOffset != 0 || w.Reason != "torn_header" {
					t.Fatalf("%s: want torn header cut to 0, got %v", name, w)
				}
			case lay == format.LayoutLegacy && whole == 0:
				if w.Code != string(recovery.CodeNotADatabase) {
					t.Fatalf("%s: a legacy file cut inside its first record must be NOT_A_DATABASE, got %v", name, w)
				}
			default:
				if w.Code != "" || int(w.Records) != whole {
					t.Fatalf("%s: want %d whole records, got %v", name, whole, w)
				}
				if int64(cut) == boundary && w.Truncate || int64(cut) != boundary && (!w.Truncate || w.TruncOffset != boundary) {
					t.Fatalf("%s: want a cut at %d, got %v", name, boundary, w)
				}
			}

			// A writable recovery carries the cut out, and syncs it.
			f := testlog.NewMemFile(data)
			res, err := recovery.Recover(context.Background(), f, nil)
			if w.Code != "" {
				if err == nil || !bytes.Equal(f.Data, data) || f.Truncates != 0 {
					t.Fatalf("%s: refused file must stay untouched (err=%v)", name, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if w.Truncate {
				if !res.Truncated || int64(len(f.Data)) != w.TruncOffset || f.Syncs != 1 {
					t.Fatalf("%s: cut not carried out: truncated=%v len=%d syncs=%d", name, res.Truncated, len(f.Data), f.Syncs)
				}
			}
		}
		logCounts(t, fmt.Sprintf("%v torn tails (%d cuts)", lay, len(l.Bytes)+1), counts)
	}
}

// TestBitFlipsExhaustive flips every bit of a small log (3 records; 8 with WALREC_DEEP=1) in
// turn, in every mode: every outcome equals the oracle's, no outcome replays a flipped record,
// and tolerate mode never cuts a region that holds later records.
func TestBitFlipsExhaustive(t *testing.T) {
	for _, lay := range layouts {
		l := testlog.RandomLog(2, lay, testdepth.Pick(3, 8), 2, 6)
		last := len(l.Offsets) - 1
		counts := map[string]int{}
		for bit := 0; bit < 8*len(l.Bytes); bit++ {
			data := bytes.Clone(l.Bytes)
			data[bit/8] ^= 1 << (bit % 8)
			k := recordAt(l, int64(bit/8))
			for _, m := range modes {
				name := fmt.Sprintf("%v bit %d (record %d)", lay, bit, k)
				w := check(t, name, data, m, quick)
				counts[m.mode.String()+"/"+class(w)]++
				if k >= 0 && w.Records > int64(k) {
					t.Fatalf("%s: replayed %d records: the flipped record %d was replayed", name, w.Records, k)
				}
				if m.mode == recovery.Tolerate && w.Truncate && k != last {
					t.Fatalf("%s: cut at %d although records after the flipped one are evidence", name, w.TruncOffset)
				}
			}
		}
		logCounts(t, fmt.Sprintf("%v bit flips (%d bits x %d modes)", lay, 8*len(l.Bytes), len(modes)), counts)
	}
}
