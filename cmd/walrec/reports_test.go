//go:build unix

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSmallerItems: the smaller findings, one check each.
func TestSmallerItems(t *testing.T) {
	dir := t.TempDir()

	// gen --damage corrupt counts the corrupt record, which the file holds whole.
	c := filepath.Join(dir, "c.db")
	r := walrec(t, "gen", c, "--size", "4MiB", "--damage", "corrupt", "--json").mustExit(t, exitOK, "gen")
	j := jsonLines(t, "gen", r.stdout)[0]
	if want := (int64(4<<20) - 8) / 4096; j.num(t, "records") != want || j.num(t, "bytes") != 8+want*4096 {
		t.Fatalf("gen --damage corrupt: %v, want %d records", j, want)
	}

	// The full-disk sidecar error says its sentence once.
	path, _, _ := gen(t, dir, genCase{layout: "v1", damage: "torn_tail"}, "--record-size", "4MiB", "--size", "9MiB")
	other, _, _ := gen(t, t.TempDir(), genCase{layout: "v1", damage: "torn_tail"}, "--record-size", "4MiB", "--size", "9MiB")
	withFree(t, 1<<20)
	r = walrec(t, "recover", path).mustExit(t, exitError, "recover without room")
	for _, s := range []string{"do not fit", "nothing was cut", "free some space"} {
		if n := strings.Count(r.stdout, s); n != 1 {
			t.Fatalf("%q %d times in\n%s", s, n, r.stdout)
		}
	}
	// A failed --output says no copy was made when none was (there is no room for it). (Another
	// file: recovery may still have reads of the first in flight, which hold its descriptor,
	// and so its lock, a moment after recover returned.)
	path = other
	r = walrec(t, "recover", path, "--output", filepath.Join(dir, "copy.db")).mustExit(t, exitError, "recover --output without room")
	if !strings.Contains(r.stdout, "no copy was made and "+path+" is untouched") || strings.Contains(r.stdout, "removed") {
		t.Fatalf("%s", r.stdout)
	}
	if _, err := os.Stat(filepath.Join(dir, "copy.db")); err == nil {
		t.Fatal("a copy was made")
	}
	withFree(t, 1<<40)

	// bench of an empty file measures nothing and names no layout.
	empty := filepath.Join(dir, "empty.db")
	os.WriteFile(empty, nil, 0o644)
	r = walrec(t, "bench", empty).mustExit(t, exitOK, "bench of an empty file")
	if r.stdout != empty+": empty file: nothing to measure\n" {
		t.Fatalf("%q", r.stdout)
	}

	// dump --json honours --max-bytes and says the whole lengths.
	r = walrec(t, "dump", c, "--json", "--limit", "1", "--max-bytes", "3", "--bad-bytes", "0")
	op := jsonLines(t, "dump", r.stdout)[0]
	if op.str(t, "key_hex") != "6b6579" || op.num(t, "key_bytes") != 11 || len(op.str(t, "value_hex")) != 6 || op.num(t, "value_bytes") <= 3 {
		t.Fatalf("dump --json --max-bytes 3: %v", op)
	}
	// --from past the end says so.
	r = walrec(t, "dump", c, "--from", "100000", "--bad-bytes", "0")
	if !strings.Contains(r.stdout, "(no record chosen: the log has 511 records (numbers 0 to 510, the last at offset 2088968))\n") { // replayed before the corruption
		t.Fatalf("dump --from past the end:\n%s", r.stdout)
	}
	rep := jsonLines(t, "dump", walrec(t, "dump", c, "--from", "100000", "--json").stdout)
	if last := rep[len(rep)-1]; last.num(t, "shown") != 0 || !strings.HasPrefix(last.str(t, "note"), "no record chosen") {
		t.Fatalf("%v", last)
	}

	// The help of every command ends with the one exit table (signals included) and says
	// nothing of a "locked" outcome for verify, which takes no lock.
	for cmd := range commands {
		r := walrec(t, cmd, "--help")
		if !strings.HasSuffix(r.stdout, exitCodesHelp) && !strings.Contains(r.stdout, exitCodesHelp+"\nFlags:\n") {
			t.Errorf("%s --help does not end with the exit table", cmd)
		}
	}
	if r := walrec(t, "verify", "--help"); strings.Contains(r.stdout, `"locked"`) {
		t.Error("verify --help lists a locked outcome")
	}
}
