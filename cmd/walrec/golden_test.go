package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// TestGolden runs verify and dump on a log of each layout with each kind of damage (and the
// files that are not logs at all) and compares their human-readable output, stderr and exit
// status with testdata/verify.golden and testdata/dump.golden. After a deliberate change of
// output, regenerate them with
//
//	go test ./cmd/walrec -run TestGolden -update
//
// and review the diff.
func TestGolden(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cs := goldenCases()
	writeCases(t, dir, cs)
	t.Chdir(dir) // file names in the output are relative: the same on every machine
	cs = append(cs, goldenCase{name: "missing"})

	for _, cmd := range []string{"verify", "dump"} {
		var b strings.Builder
		for _, c := range cs {
			args := append([]string{cmd, c.name + ".db"}, c.flags...)
			r := walrec(t, args...)
			fmt.Fprintf(&b, "$ walrec %s\n%s", strings.Join(args, " "), r.stdout)
			if r.stderr != "" {
				fmt.Fprintf(&b, "[stderr]\n%s", r.stderr)
			}
			fmt.Fprintf(&b, "[exit %d]\n\n", r.code)
			if cmd == "verify" {
				// The sequential loop and the parallel pipeline say the same thing, byte for byte.
				for _, p := range []string{"1", "4"} {
					if r2 := walrec(t, append(args, "--parallelism", p)...); r2 != r {
						t.Errorf("%s with --parallelism %s differs from the default:\n%+v\n%+v", c.name, p, r2, r)
					}
				}
			}
		}
		compareGolden(t, filepath.Join(wd, "testdata", cmd+".golden"), b.String())
	}
}

// compareGolden compares got with the golden file, or rewrites it under -update.
func compareGolden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got == string(want) {
		return
	}
	// Show the first case that differs.
	g, w := strings.Split(got, "\n\n"), strings.Split(string(want), "\n\n")
	for i := range max(len(g), len(w)) {
		var gi, wi string
		if i < len(g) {
			gi = g[i]
		}
		if i < len(w) {
			wi = w[i]
		}
		if gi != wi {
			t.Fatalf("%s differs (run with -update to accept the new output):\n--- got:\n%s\n--- want:\n%s", filepath.Base(path), gi, wi)
		}
	}
}
