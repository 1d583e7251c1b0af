//go:build unix

package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/streamwal/recovery"
)

// TestHelpFlagsSpelling: usage and the flag list spell flags the same way, --name.
func TestHelpFlagsSpelling(t *testing.T) {
	for cmd := range commands {
		r := walrec(t, cmd, "--help").mustExit(t, 0, cmd+" --help")
		_, flags, ok := strings.Cut(r.stdout, "\nFlags:\n")
		if !ok {
			t.Fatalf("%s --help has no flag list", cmd)
		}
		for _, l := range lines(flags) {
			if strings.HasPrefix(l, "  -") && !strings.HasPrefix(l, "  --") {
				t.Fatalf("%s --help lists %q with one dash", cmd, l)
			}
		}
		quick := map[string]bool{"sidecars": true, "backup": true, "restore": true} // no progress: their work is short
		if !quick[cmd] && (!strings.Contains(flags, "  --no-progress") || !strings.Contains(flags, "  --progress MODE")) {
			t.Fatalf("%s --help lacks --no-progress or --progress:\n%s", cmd, flags)
		}
		if quick[cmd] && strings.Contains(flags, "progress") {
			t.Fatalf("%s --help offers progress it never shows:\n%s", cmd, flags)
		}
	}
	if r := walrec(t, "bench", "--help"); !strings.Contains(r.stdout, "shown first but measured last") || !strings.Contains(r.stdout, "payload MB/s") {
		t.Fatalf("bench --help:\n%s", r.stdout)
	}
	for _, want := range []string{"130 Ctrl-C (SIGINT)", "143 SIGTERM", "walrec --version"} {
		if r := walrec(t, "--help"); !strings.Contains(r.stdout, want) {
			t.Fatalf("--help lacks %q", want)
		}
	}
}

// TestUsageLimits: flag values recovery would refuse are usage errors, not reports.
func TestUsageLimits(t *testing.T) {
	for _, args := range [][]string{
		{"verify", "x.db", "--parallelism", "100000"},
		{"recover", "x.db", "--parallelism", "1025"},
		{"bench", "x.db", "--parallelism", "1,100000"},
		{"recover", "x.db", "--sidecar-dir", "/nonexistent-dir"},
		{"recover", "x.db", "--output", "y.db", "--sidecar-dir", "."},
		{"dump", "x.db", "--limit", "-1"},
	} {
		r := walrec(t, args...).mustExit(t, 3, strings.Join(args, " "))
		if r.stdout != "" || !strings.Contains(r.stderr, "--help\" for usage") {
			t.Fatalf("%v: %+v", args, r)
		}
	}
	// The limit is recovery's own.
	f := bytes.NewReader(nil)
	if _, err := recovery.Recover(t.Context(), f, nil, recovery.WithParallelism(maxParallelism+1)); recovery.CodeOf(err) != recovery.CodeInvalidArgument {
		t.Fatalf("recovery accepts parallelism %d: %v", maxParallelism+1, err)
	}
	if _, err := recovery.Recover(t.Context(), f, nil, recovery.WithParallelism(maxParallelism)); err != nil {
		t.Fatalf("recovery refuses parallelism %d: %v", maxParallelism, err)
	}
}

// TestHelpListsEveryCommand: the main help names every command there is, those that register
// themselves from their own file included.
func TestHelpListsEveryCommand(t *testing.T) {
	r := walrec(t, "--help").mustExit(t, 0, "--help")
	for cmd := range commands {
		if !strings.Contains(r.stdout, "walrec "+cmd+" ") {
			t.Errorf("walrec --help does not list %q", cmd)
		}
	}
}

// TestREADMEWalrec: the README's walrec section has the one exit table and the JSON
// convention, as the help does.
func TestREADMEWalrec(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Skip("no README here:", err)
	}
	s := string(b)
	for _, want := range []string{
		"| 128+N | stopped by signal N: 130 Ctrl-C (SIGINT), 143 SIGTERM, 129 SIGHUP, 141 SIGPIPE",
		"0 < 1 < 2 < 3 < 128+N", `"version": 1`, "`report` per FILE", "never\n`locked`", "--progress MODE",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("README.md lacks %q", want)
		}
	}
	for _, want := range []string{"128+N stopped by signal N", "0 < 1 < 2 < 3 <\n  128+N", `"version": 1`} {
		if !strings.Contains(exitCodesHelp+jsonHelp, want) {
			t.Errorf("the help lacks %q", want)
		}
	}
}
