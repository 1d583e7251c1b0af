package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
)

// TestSeveralFiles: verify and dump take several FILEs, one report each in order, and exit
// with the worst status; a signal ends the run (in-process: a canceled context).
func TestSeveralFiles(t *testing.T) {
	dir := t.TempDir()
	clean, _, _ := gen(t, dir, genCase{layout: "v1", damage: "none"})
	torn, _, _ := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	bad, _, _ := gen(t, dir, genCase{layout: "legacy", damage: "corrupt"})
	for _, tc := range []struct {
		files []string
		exit  int
	}{
		{[]string{clean, clean}, 0},
		{[]string{clean, torn}, 1},
		{[]string{torn, bad, clean}, 2},
		{[]string{bad, filepath.Join(dir, "missing.db"), torn}, 3},
	} {
		for _, cmd := range []string{"verify", "dump"} {
			r := walrec(t, append(append([]string{cmd}, tc.files...), "--json")...).mustExit(t, tc.exit, fmt.Sprint(cmd, tc.files))
			reps := ofType(t, jsonLines(t, cmd, r.stdout), "report")
			if len(reps) != len(tc.files) {
				t.Fatalf("%s %v: %d reports", cmd, tc.files, len(reps))
			}
			for i, rep := range reps {
				if rep.str(t, "file") != tc.files[i] {
					t.Fatalf("%s: report %d is of %s, want %s", cmd, i, rep.str(t, "file"), tc.files[i])
				}
			}
		}
	}
	// Stopped: the run ends at the first file, whose report says canceled.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	if code := runContext(ctx, []string{"verify", clean, torn, "--json"}, &out, &errb); code != exitError || len(lines(out.String())) != 1 {
		t.Fatalf("canceled: exit %d, %q", code, out.String())
	}
}
