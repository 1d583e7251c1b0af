package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamwal/recovery/db"
)

// salvage keeps every record that verifies, before and after damage: a flipped byte in one
// record and a run of zeros over others in a log of 60 transactions leave the other
// transactions in the copy, whole, and the report names each skipped stretch; FILE is
// untouched, the copy opens cleanly, and COPY is never replaced.
func TestSalvageKeepsWhatVerifiesOnBothSides(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	d, err := db.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var ends []int64
	for i := range 60 {
		if err := d.Update(func(tx *db.Tx) error {
			return tx.Set(fmt.Appendf(nil, "k%02d", i), fmt.Appendf(nil, "value %d with some length %0200d", i, i))
		}); err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(path)
		ends = append(ends, fi.Size())
	}
	d.Close()
	b, _ := os.ReadFile(path)
	b[ends[9]+20] ^= 1                  // inside record 10's payload
	clear(b[ends[29]+3 : ends[33]+100]) // zeros over records 30..34 (34 in part)
	os.WriteFile(path, b, 0o644)
	walrec(t, "verify", path, "--quiet").mustExit(t, exitRefused, "verify of the damaged log")

	out := filepath.Join(dir, "copy.db")
	r := walrec(t, "salvage", path, "--output", out, "--json").mustExit(t, exitTail, "salvage")
	ls := jsonLines(t, "salvage", r.stdout)
	rep, skipped := ls[len(ls)-1], ofType(t, ls, "skipped")
	if rep.str(t, "type") != "report" || rep.num(t, "records") != 54 || rep.num(t, "skipped") != 2 || len(skipped) != 2 ||
		skipped[0].num(t, "from") != ends[9] || skipped[0].num(t, "to") != ends[10] ||
		skipped[1].num(t, "from") != ends[29] || skipped[1].num(t, "to") != ends[34] || rep.num(t, "exit") != exitTail {
		t.Fatalf("report %v", ls)
	}
	if after, _ := os.ReadFile(path); string(after) != string(b) {
		t.Fatal("salvage changed FILE")
	}
	c, err := db.Open(out, db.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Truncation() != nil {
		t.Fatalf("the copy has a tail to cut: %+v", c.Truncation())
	}
	if err := c.View(func(tx *db.Tx) error {
		for i := range 60 {
			v, _ := tx.Get(fmt.Appendf(nil, "k%02d", i))
			lost := i == 10 || (i >= 30 && i <= 34)
			if (v == nil) != lost {
				t.Errorf("k%02d: present %v, lost %v", i, v != nil, lost)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	walrec(t, "salvage", path, "--output", out).mustExit(t, exitError, "salvage over an existing COPY")
	walrec(t, "salvage", path).mustExit(t, exitError, "salvage without --output")
}
