package tests

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzRecover from the generators")

// fuzzSeeds covers every layout and damage class: clean, torn at several points, bit flips in
// header and payload, zeroed tail, garbage, 0xFF tail, zero-length and malformed records,
// 8-byte framing after v1, evidence of every rule, oversize records, foreign files.
func fuzzSeeds() map[string][]byte {
	s := map[string][]byte{}
	for _, lay := range layouts {
		l := testlog.RandomLog(11, lay, 5, 3, 12)
		n := len(l.Offsets)
		p := lay.String() + "-"
		s[p+"clean"] = l.Bytes
		s[p+"torn-mid-header"] = l.Bytes[:l.Offsets[n-1]+5]
		s[p+"torn-mid-payload"] = l.Bytes[:len(l.Bytes)-3]
		s[p+"torn-first"] = l.Bytes[:lay.FirstRecord()+3]
		flip := func(at int64, bit byte) []byte { d := bytes.Clone(l.Bytes); d[at] ^= bit; return d }
		s[p+"flip-last-payload"] = flip(int64(len(l.Bytes)-1), 1)
		s[p+"flip-mid-payload"] = flip(l.Offsets[1]+int64(lay.HeaderSize())+1, 4)
		s[p+"flip-mid-length"] = flip(l.Offsets[2]+3, 2)
		s[p+"flip-last-length"] = flip(l.Offsets[n-1]+3, 1)
		s[p+"flip-last-crc"] = flip(l.Offsets[n-1]+5, 8)
		z := bytes.Clone(l.Bytes)
		clear(z[l.Offsets[n-1]:])
		s[p+"zeroed-last"] = z
		s[p+"zeros-after"] = append(bytes.Clone(l.Bytes), make([]byte, 40)...)
		s[p+"ff-after"] = append(bytes.Clone(l.Bytes), bytes.Repeat([]byte{0xFF}, 40)...)
		rng := rand.New(rand.NewPCG(3, 3))
		junk := make([]byte, 50)
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		s[p+"garbage-after"] = append(bytes.Clone(l.Bytes), junk...)
		s[p+"zero-length-record"] = format.AppendRecord(bytes.Clone(l.Bytes), lay, nil)
		s[p+"malformed-record"] = format.AppendRecord(bytes.Clone(l.Bytes), lay, []byte{9, 9})
		s[p+"oversize"] = format.AppendRecord(bytes.Clone(l.Bytes), lay, testlog.SizedTx(rng, 3000, 2))
	}
	v1 := testlog.RandomLog(12, format.LayoutV1, 4, 2, 10)
	s["v1-8byte-framing-after"] = format.AppendRecord(bytes.Clone(v1.Bytes), format.LayoutLegacy, format.AppendSet(nil, []byte("k"), []byte("v")))
	s["header-only"] = format.FileHeader[:]
	s["torn-header"] = format.FileHeader[:5]
	s["version-2"] = []byte{'L', 'R', 'D', 'B', 0, 2, 0, 0}
	s["zeros"] = make([]byte, 64)
	s["text"] = []byte("not a database at all, just some text\n")
	s["empty"] = nil
	return s
}

// FuzzRecover holds the streaming recovery, sequential and parallel, to the oracle on any
// input, in every mode, with small maximum record sizes too.
func FuzzRecover(f *testing.F) {
	seeds := fuzzSeeds()
	if *updateCorpus {
		dir := filepath.Join("testdata", "fuzz", "FuzzRecover")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			f.Fatal(err)
		}
		for name, data := range seeds {
			body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\nuint8(%d)\nuint16(%d)\nuint8(%d)\n", data, len(name)%3, 0, len(name)%7)
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				f.Fatal(err)
			}
		}
	}
	for _, data := range seeds {
		f.Add(data, uint8(0), uint16(0), uint8(1))
		f.Add(data, uint8(2), uint16(1000), uint8(5))
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8, maxRec uint16, par uint8) {
		m := modes[int(mode)%len(modes)]
		if maxRec != 0 {
			m.maxRecord = int64(maxRec)
		}
		cfgs := []config{sequential, {par: 2 + int(par%7), depth: 2 + int(par%5), readSize: 4 << 10}}
		check(t, "fuzz input", data, m, cfgs)
	})
}

// TestFuzzSeedsAllConfigs runs the fuzz seed corpus through every pipeline configuration
// (parallelism 1, 2, 3, 8; depths 2 to 16; reads from 4 KiB) in every mode and with a small
// maximum record size: each is exactly the oracle's result.
func TestFuzzSeedsAllConfigs(t *testing.T) {
	counts := map[string]int{}
	for name, data := range fuzzSeeds() {
		for _, m := range modes {
			for _, maxRec := range []int64{0, 1000} {
				m.maxRecord = maxRec
				w := check(t, "seed "+name, data, m, wide)
				counts[class(w)]++
			}
		}
	}
	logCounts(t, "fuzz seeds x modes x max record sizes", counts)
}
