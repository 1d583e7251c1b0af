package tests

import (
	"testing"

	"github.com/streamwal/recovery/internal/fixtures"
)

// TestKernelFixtures: every file the TypeScript kernel wrote (testdata/kernel) recovers,
// through every pipeline configuration, to exactly the state the kernel reports.
func TestKernelFixtures(t *testing.T) {
	dir, all := fixtures.Load(t)
	for _, fx := range all {
		data := fixtures.Read(t, dir, fx)
		wantState := fx.StateMap(t)
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
