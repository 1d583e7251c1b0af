package tests

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// fixtureDir is the kernel-written files, in ../shared beside the repository.
const fixtureDir = "../../shared/fixtures/libredb-kernel"

type fixture struct {
	File          string     `json:"file"`
	Layout        string     `json:"layout"`
	Size          int64      `json:"size"`
	RecordOffsets []int64    `json:"record_offsets"`
	State         [][]string `json:"state"`
}

func loadFixtures(t testing.TB) []fixture {
	raw, err := os.ReadFile(filepath.Join(fixtureDir, "expected.json"))
	if os.IsNotExist(err) {
		t.Skipf("kernel fixtures not found at %s (../shared beside the repository)", fixtureDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	var fx []fixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	return fx
}

// TestKernelFixtures: every file the TypeScript kernel wrote recovers, through every pipeline
// configuration, to exactly the state the kernel reports.
func TestKernelFixtures(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		data, err := os.ReadFile(filepath.Join(fixtureDir, fx.File))
		if err != nil {
			t.Fatal(err)
		}
		wantState := map[string]string{}
		for _, kv := range fx.State {
			k, _ := hex.DecodeString(kv[0])
			v, _ := hex.DecodeString(kv[1])
			wantState[string(k)] = string(v)
		}
		for _, c := range wide {
			g, _, err := got(t, data, modeOpt{}, c)
			if err != nil || g.Truncate || g.Layout != fx.Layout || g.Records != int64(len(fx.RecordOffsets)) || g.End != fx.Size {
				t.Fatalf("%s %v: %v err=%v", fx.File, c, g, err)
			}
			if len(g.State) != len(wantState) {
				t.Fatalf("%s %v: %d keys, want %d", fx.File, c, len(g.State), len(wantState))
			}
			for k, v := range wantState {
				if g.State[k] != v {
					t.Fatalf("%s %v: key %x = %x, want %x", fx.File, c, k, g.State[k], v)
				}
			}
		}
	}
}
