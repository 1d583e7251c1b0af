package tests

// Adversarial tests of the chunked pipeline against the oracle and the memory bound (review of
// the TryLock/carry-chain rewrite). Tests named TestBug_* fail on the code as reviewed.

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/streamwal/recovery"
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

// TestBigRecordsStayWithinTheBound: records just over a read (the smallest that need the
// shared buffer), exactly a read (the largest that fit a buffer's Aux) and several reads long,
// at depth 2 and 16: the pool's accounting stays within memBound.
func TestBigRecordsStayWithinTheBound(t *testing.T) {
	const rs = 4 << 10
	rng := rand.New(rand.NewPCG(8, 8))
	for _, layout := range layouts {
		hdr := layout.HeaderSize()
		l := testlog.Build(layout)
		largest := 0
		for len(l.Bytes) < 400<<10 {
			var n int
			switch rng.IntN(4) {
			case 0:
				n = rs - hdr + 1
			case 1:
				n = rs - hdr
			case 2:
				n = 3*rs + rng.IntN(rs)
			default:
				n = 14 + rng.IntN(50)
			}
			l.Append(testlog.SizedTx(rng, n, 8))
			largest = max(largest, n+hdr)
		}
		for _, c := range []config{{par: 1, readSize: rs}, {par: 2, depth: 2, readSize: rs}, {par: 8, depth: 2, readSize: rs}, {par: 8, depth: 16, readSize: rs}} {
			res, err := recovery.Recover(context.Background(), bytes.NewReader(l.Bytes), nil, append(c.opts(), recovery.ReadOnly())...)
			bound := memBound(max(c.depth, 1), rs, largest)
			if err != nil || res.Records != int64(len(l.Offsets)) {
				t.Fatalf("%v %v: %v %+v", layout, c, err, res)
			}
			if res.PeakBuffered > bound {
				t.Fatalf("%v %v: pool peak %d over the bound %d", layout, c, res.PeakBuffered, bound)
			}
		}
	}
}

// TestLegacyBogusRecordsStayWithinTheBound: the carver counts records before any CRC is
// checked, and a legacy header with length 1 carves a 9-byte "record". A legacy file whose rest
// is 9-byte garbage records (crash debris of the right shape) keeps the pool's accounting
// within memBound, which counts a carved record as at least 9 bytes (it once assumed 13).
func TestLegacyBogusRecordsStayWithinTheBound(t *testing.T) {
	const rs = 4 << 10
	l := testlog.Build(format.LayoutLegacy, format.AppendSet(nil, []byte("key"), []byte("value")))
	largest := len(l.Bytes)
	data := bytes.Clone(l.Bytes)
	for len(data) < 64<<10 {
		data = append(data, 0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef, 7) // length 1, a CRC that fails
	}
	w := check(t, "legacy bogus 9-byte records", data, modeOpt{}, quick)
	if w.Records != 1 {
		t.Fatalf("setup: want one good record, got %v", w)
	}
	for _, c := range []config{{par: 1, readSize: rs}, {par: 4, depth: 8, readSize: rs}} {
		_, res, _ := got(t, data, modeOpt{}, c)
		bound := memBound(max(c.depth, 1), rs, largest)
		if res.PeakBuffered > bound {
			t.Errorf("%v: pool peak %d over memBound %d (largest record %d bytes)", c, res.PeakBuffered, bound, largest)
		}
	}
}
