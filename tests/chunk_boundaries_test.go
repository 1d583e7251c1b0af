package tests

// Chunk boundaries against the oracle: a record header split at every byte across a chunk's
// end, a record ending exactly on it, and a record larger than two reads after it, clean and
// damaged, in every mode and configuration.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
)

// boundaryCfgs run every case: the sequential loop, and the smallest read size with depth 2
// (every buffer in flight), a middle one, and many workers.
var boundaryCfgs = []config{sequential, {par: 2, depth: 2, readSize: 4 << 10}, {par: 8, depth: 2, readSize: 4 << 10}, {par: 3, depth: 5, readSize: 4 << 10}, {par: 8, depth: 16, readSize: 4 << 10}}

// straddleLog builds a log in which the header of record k+1 starts split bytes before a 4 KiB
// chunk boundary (split = 0: exactly on it, so record k ends exactly at the boundary), followed
// by a record two and a half reads long and a few small ones.
func straddleLog(rng *rand.Rand, layout format.Layout, split int) (testlog.Log, int) {
	const rs = 4 << 10
	hdr := layout.HeaderSize()
	first := int(layout.FirstRecord())
	l := testlog.Build(layout)
	for range 5 {
		l.Append(testlog.SizedTx(rng, 40+rng.IntN(200), 8))
	}
	// A filler that ends split bytes before the first chunk boundary.
	room := first + rs - split - len(l.Bytes) - hdr
	l.Append(testlog.SizedTx(rng, room, 8))
	at := len(l.Offsets) // the record whose header straddles (or starts on) the boundary
	l.Append(testlog.SizedTx(rng, 30+rng.IntN(60), 8))
	l.Append(testlog.SizedTx(rng, 5*rs/2, 8))
	for range 4 {
		l.Append(testlog.SizedTx(rng, 14+rng.IntN(100), 8))
	}
	return l, at
}

// TestChunkBoundariesAgainstOracle: a record header split at every byte position across a
// chunk boundary (and a record ending exactly on it), then a record larger than two reads; clean,
// torn inside the split header, with the split header's bytes flipped, its length lying (past
// the end, or over the whole rest of the file), and with a flip in the large record. Every mode,
// every configuration, the oracle's verdict.
func TestChunkBoundariesAgainstOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(41, 41))
	counts := map[string]int{}
	for _, layout := range layouts {
		hdr := layout.HeaderSize()
		for split := 0; split <= hdr; split++ {
			l, at := straddleLog(rng, layout, split)
			o := l.Offsets[at]
			cases := map[string][]byte{"clean": l.Bytes}
			cut := int(o) + max(1, split)
			cases[fmt.Sprintf("torn-at-%d", cut)] = l.Bytes[:cut]
			cases["torn-in-big"] = l.Bytes[:l.Offsets[at+2]-100]
			for i := range hdr {
				b := bytes.Clone(l.Bytes)
				b[int(o)+i] ^= 0x20
				cases[fmt.Sprintf("flip-header-byte-%d", i)] = b
			}
			for name, n := range map[string]uint32{"length-past-end": 0x7FFFFFF0, "length-to-end": uint32(len(l.Bytes) - int(o) - hdr)} {
				b := bytes.Clone(l.Bytes)
				binary.BigEndian.PutUint32(b[o:], n)
				cases[name] = b
				if layout == format.LayoutV1 {
					b = bytes.Clone(b)
					binary.BigEndian.PutUint32(b[o+4:], format.LengthChecksum(n)) // a header that checks out
					cases[name+"-selfcheck-ok"] = b
				}
			}
			b := bytes.Clone(l.Bytes)
			b[l.Offsets[at+2]-50] ^= 1 // inside the record larger than two reads
			cases["flip-in-big"] = b
			for name, data := range cases {
				for _, m := range modes {
					w := check(t, fmt.Sprintf("%v/split=%d/%s", layout, split, name), data, m, boundaryCfgs)
					counts[class(w)]++
				}
				// A maximum record size between the small records and the large one.
				w := check(t, fmt.Sprintf("%v/split=%d/%s/max=6000", layout, split, name), data, modeOpt{maxRecord: 6000}, boundaryCfgs)
				counts[class(w)]++
			}
		}
	}
	logCounts(t, "chunk boundaries", counts)
	if len(counts) < 5 {
		t.Fatalf("the cases reach too few outcomes: %v", counts)
	}
}
