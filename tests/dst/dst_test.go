package dst

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/internal/testdepth"
)

// Recovery's parallel pipeline starts goroutines on every open at parallelism 4: none may
// outlive the suite.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Seeds run by default and with WALREC_DEEP=1; mustSeeds is the fewest seeds (0..mustSeeds-1)
// known to produce every outcome each profile's must lists, so the check of those outcomes
// runs on any list that long (seeds 0..N-1 with N >= mustSeeds include them).
const (
	defaultSeeds = 50
	deepSeeds    = 1000
	mustSeeds    = 50
)

// seeds: DST_SEED=k replays one seed; DST_SEEDS=N runs seeds 0..N-1 (default 50, 1,000 with
// WALREC_DEEP=1).
func seeds(t *testing.T) []uint64 {
	if s := os.Getenv("DST_SEED"); s != "" {
		k, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("DST_SEED=%q: %v", s, err)
		}
		return []uint64{k}
	}
	n := uint64(testdepth.Pick(defaultSeeds, deepSeeds))
	if s := os.Getenv("DST_SEEDS"); s != "" {
		var err error
		if n, err = strconv.ParseUint(s, 10, 64); err != nil || n == 0 {
			t.Fatalf("DST_SEEDS=%q: want a positive count", s)
		}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}

// TestSimulation runs every seed through every profile (DST_PROFILE=name: only that one).
// Each failure prints the one command that replays it.
func TestSimulation(t *testing.T) {
	only := os.Getenv("DST_PROFILE")
	if only != "" && !slices.ContainsFunc(profiles, func(p profile) bool { return p.name == only }) {
		t.Fatalf("DST_PROFILE=%q: no such profile", only)
	}
	list := seeds(t)
	var mu sync.Mutex
	tally := map[string]map[string]int{}
	start := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		t.Logf("%d seeds in %v", len(list), time.Since(start).Round(time.Millisecond))
		for _, p := range profiles {
			if only != "" && p.name != only {
				continue
			}
			t.Logf("%-13s %v", p.name, tally[p.name])
			if len(list) >= mustSeeds && os.Getenv("DST_SEED") == "" {
				for _, want := range p.must {
					if tally[p.name][want] == 0 {
						t.Errorf("profile %s: %d seeds never produced %q: the workload no longer exercises it", p.name, len(list), want)
					}
				}
			}
		}
	})
	for _, seed := range list {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			for _, p := range profiles {
				if only != "" && p.name != only {
					continue
				}
				mine := map[string]int{}
				if err := runOne(seed, p, mine); err != nil {
					t.Errorf("seed %d, profile %s: %v\nreplay: DST_SEED=%d DST_PROFILE=%s go test ./tests/dst -run TestSimulation -v",
						seed, p.name, err, seed, p.name)
				}
				mu.Lock()
				if tally[p.name] == nil {
					tally[p.name] = map[string]int{}
				}
				for k, v := range mine {
					tally[p.name][k] += v
				}
				mu.Unlock()
			}
		})
	}
}
