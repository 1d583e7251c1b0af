//go:build unix

package main

import (
	"strings"
	"testing"
)

// TestDumpRange: --from, --start-offset and --limit choose the records printed; the report
// and the exit status stay those of verify.
func TestDumpRange(t *testing.T) {
	dir := t.TempDir()
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"})
	full := walrec(t, "verify", path, "--json").mustExit(t, 1, "verify")
	for _, tc := range []struct {
		args  []string
		first int64
		n     int
	}{
		{[]string{"--from", "5", "--limit", "3"}, 5, 3},
		{[]string{"--start-offset", "5009", "--limit", "2"}, 6, 2}, // records are 1000 bytes from offset 8
		{[]string{"--from", "203"}, 203, 1},
		{[]string{"--from", "500"}, 0, 0},
	} {
		r := walrec(t, append([]string{"dump", path, "--json"}, tc.args...)...).mustExit(t, 1, "dump")
		ls := lines(r.stdout)
		recs := map[int64]bool{}
		var first int64 = -1
		for _, l := range ls[:len(ls)-2] { // the ops; then the bad record and the report
			op := decodeJSON(t, l)
			n := op.num(t, "record")
			if first < 0 {
				first = n
			}
			recs[n] = true
		}
		if len(recs) != tc.n || tc.n > 0 && first != tc.first {
			t.Fatalf("%v: records %v, want %d from %d", tc.args, recs, tc.n, tc.first)
		}
		rep := decodeJSON(t, ls[len(ls)-1])
		want := decodeJSON(t, full.stdout)
		if rep.num(t, "records") != want.num(t, "records") || rep.str(t, "outcome") != want.str(t, "outcome") {
			t.Fatalf("%v: report %v", tc.args, rep)
		}
	}
	r := walrec(t, "dump", path, "--limit", "1").mustExit(t, 1, "dump --limit 1")
	if strings.Count(r.stdout, "\nrecord ")+strings.Count(r.stdout[:7], "record ") != 1 || !strings.Contains(r.stdout, "\nthe bad record: recovery stopped at offset") {
		t.Fatalf("%s", r.stdout)
	}
}
