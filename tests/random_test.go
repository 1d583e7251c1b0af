package tests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testdepth"
	"github.com/streamwal/recovery/internal/testlog"
)

// randomPayload has a size from 1 B to 1 MiB, skewed small; sizes under 5 cannot be
// well-formed and make a record that is written whole but malformed.
func randomPayload(rng *rand.Rand) []byte {
	var size int
	switch r := rng.IntN(100); {
	case r < 2:
		size = 1 + rng.IntN(4) // malformed
	case r < 70:
		size = 5 + rng.IntN(300)
	case r < 95:
		size = 5 + rng.IntN(64<<10)
	default:
		size = 5 + rng.IntN(1<<20-5)
	}
	if size < 5 {
		p := make([]byte, size)
		p[0] = 7
		return p
	}
	if size < 14 {
		return format.AppendDelete(nil, bytes.Repeat([]byte{'d'}, size-5))
	}
	return testlog.SizedTx(rng, size, 32)
}

// damage applies one random kind of damage and names it.
func damage(rng *rand.Rand, l testlog.Log) ([]byte, string) {
	data := bytes.Clone(l.Bytes)
	n := len(data)
	pick := func() int { return rng.IntN(n) }
	switch rng.IntN(9) {
	case 0:
		return data, "none"
	case 1:
		c := pick()
		return data[:c], fmt.Sprintf("cut at %d", c)
	case 2:
		b := pick()
		data[b] ^= 1 << rng.IntN(8)
		return data, fmt.Sprintf("bit flip at byte %d", b)
	case 3:
		a := pick()
		e := min(n, a+1+rng.IntN(4096))
		clear(data[a:e])
		return data, fmt.Sprintf("zeros over [%d,%d)", a, e)
	case 4:
		k := len(l.Offsets) - 1
		clear(data[l.Offsets[k]:])
		return data, "last record zeroed"
	case 5:
		junk := make([]byte, 1+rng.IntN(2048))
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		return append(data, junk...), "garbage appended"
	case 6:
		k := rng.IntN(len(l.Offsets))
		c := l.Offsets[k] + int64(rng.IntN(12))
		out := append(data[:c:c], format.AppendRecord(nil, l.Layout, nil)...) // zero-length record
		return append(out, l.Bytes[c:]...), fmt.Sprintf("zero-length record inserted at %d", c)
	case 7:
		return format.AppendRecord(data, format.LayoutLegacy, format.AppendSet(nil, []byte("x"), []byte("y"))), "8-byte framing appended"
	default:
		a := pick()
		e := min(n, a+1+rng.IntN(64))
		for i := a; i < e; i++ {
			data[i] = 0xFF
		}
		return data, fmt.Sprintf("0xFF over [%d,%d)", a, e)
	}
}

// TestRandomLogsAllConfigs: random logs (records of 0 B to 1 MiB, random damage), 80 by
// default and 3,000 with WALREC_DEEP=1, through every pipeline configuration (parallelism 1,
// 2, 3, 8; pool depths 2 to 16; read sizes from 4 KiB), in every mode: each is exactly the
// oracle's result. RANDOM_LOGS=n sets how many; RANDOM_SEED=s replays one.
func TestRandomLogsAllConfigs(t *testing.T) {
	count := testdepth.Pick(80, 3000)
	if testing.Short() {
		count = 40
	}
	if v, err := strconv.Atoi(os.Getenv("RANDOM_LOGS")); err == nil {
		count = v
	}
	first := uint64(1)
	if v, err := strconv.ParseUint(os.Getenv("RANDOM_SEED"), 10, 64); err == nil {
		first, count = v, 1
	}
	counts := map[string]int{}
	for seed := first; seed < first+uint64(count); seed++ {
		rng := rand.New(rand.NewPCG(seed, 42))
		lay := layouts[rng.IntN(2)]
		l := testlog.Build(lay)
		for range 1 + rng.IntN(24) {
			l.Append(randomPayload(rng))
		}
		data, what := damage(rng, l)
		m := modes[rng.IntN(len(modes))]
		name := fmt.Sprintf("seed %d (%v, %d bytes, %s; replay: RANDOM_SEED=%d go test ./tests -run TestRandomLogsAllConfigs)", seed, lay, len(data), what, seed)
		w := check(t, name, data, m, wide)
		counts[class(w)]++
	}
	logCounts(t, fmt.Sprintf("%d random logs", count), counts)
}
