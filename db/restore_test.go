package db_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

// backupOf builds a database of n small transactions and returns its full backup, its info,
// and where each record starts in it.
func backupOf(t *testing.T, n int) ([]byte, db.BackupInfo, []int64) {
	t.Helper()
	d := mustOpen(t, filepath.Join(t.TempDir(), "src.db"))
	defer d.Close()
	for i := range n {
		set(t, d, fmt.Sprintf("k%03d", i), fmt.Sprintf("value %d %s", i, bytes.Repeat([]byte("x"), i)))
	}
	var buf bytes.Buffer
	info, err := d.Backup(context.Background(), &buf)
	if err != nil {
		t.Fatal(err)
	}
	var starts []int64
	if _, err := recovery.Recover(context.Background(), bytes.NewReader(buf.Bytes()), recovery.ApplyFunc(func(r recovery.Record) error {
		starts = append(starts, r.Offset)
		return nil
	}), recovery.ReadOnly()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), info, starts
}

// A restore writes the backup's bytes as the database file, which opens to the source's state.
func TestRestoreRoundTrip(t *testing.T) {
	b, info, _ := backupOf(t, 40)
	path := filepath.Join(t.TempDir(), "new.db")
	got, err := db.Restore(context.Background(), bytes.NewReader(b), path, db.RestoreExpect(info))
	if err != nil {
		t.Fatal(err)
	}
	if got.Received != int64(len(b)) || got.Size != int64(len(b)) || got.Records != 40 || got.Tail != 0 {
		t.Fatalf("restore info %+v", got)
	}
	if !bytes.Equal(readFile(t, path), b) {
		t.Fatal("the restored file is not the backup")
	}
	d := mustOpen(t, path)
	defer d.Close()
	if st := state(t, d); len(st) != 40 || st[7].V != "value 7 xxxxxxx" {
		t.Fatalf("restored state: %d pairs", len(st))
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("%d entries beside the restored file", len(ents))
	}
}

// A stream cut anywhere is never restored silently short: cut inside a record, it is refused
// with TAIL_DAMAGE at that record's offset (or, with RestorePrefix, restored up to it with the
// tail reported); cut at a record boundary it is a shorter log that verifies, which
// RestoreExpect refuses (INCOMPLETE_READ at the end). Nothing is left at the path after a
// refusal.
func TestRestoreOfACutStream(t *testing.T) {
	b, info, starts := backupOf(t, 12)
	dir := t.TempDir()
	ctx := context.Background()
	boundary := map[int64]bool{int64(len(b)): true}
	for _, s := range starts {
		boundary[s] = true
	}
	// Every boundary, and inside every record: in its header, at the payload's first byte, in
	// its middle and at its last byte.
	var cuts []int64
	for i, s := range starts {
		end := int64(len(b))
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		cuts = append(cuts, s, s+1, s+7, s+12, (s+end)/2, end-1)
	}
	cuts = append([]int64{0, 3, 7}, cuts...)
	for _, cut := range cuts {
		path := filepath.Join(dir, fmt.Sprintf("cut%d.db", cut))
		_, err := db.Restore(ctx, bytes.NewReader(b[:cut]), path, db.RestoreExpect(info), db.RestoreParallelism(1+int(cut%3)))
		if err == nil {
			t.Fatalf("cut at %d (boundary %v): restored", cut, boundary[cut])
		}
		if off := walerr.OffsetOf(err); off < 0 || off > cut {
			t.Fatalf("cut at %d: error without the offset: %v", cut, err)
		}
		if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
			t.Fatalf("cut at %d: refused (%v) but left a file", cut, err)
		}
		if boundary[cut] || cut < 8 {
			continue
		}
		// Inside a record: refused without RestoreExpect too, and kept up to the record with
		// RestorePrefix.
		if _, err := db.Restore(ctx, bytes.NewReader(b[:cut]), path); !errors.Is(err, recovery.ErrTailDamage) {
			t.Fatalf("cut at %d inside a record: %v, want TAIL_DAMAGE", cut, err)
		}
		got, err := db.Restore(ctx, bytes.NewReader(b[:cut]), path, db.RestorePrefix())
		if err != nil {
			t.Fatalf("cut at %d with RestorePrefix: %v", cut, err)
		}
		if !boundary[got.Size] || got.Size+got.Tail != cut || !bytes.Equal(readFile(t, path), b[:got.Size]) {
			t.Fatalf("cut at %d with RestorePrefix: %+v", cut, got)
		}
		os.Remove(path)
	}
}

// A flipped byte anywhere is refused (CORRUPT_WAL in the middle, TAIL_DAMAGE in the last record,
// NOT_A_DATABASE or UNSUPPORTED_VERSION in the file header) with an offset at or before the
// flip; only the file header's two reserved bytes are ignored, as on every read.
func TestRestoreOfAFlippedByte(t *testing.T) {
	b, _, _ := backupOf(t, 12)
	dir := t.TempDir()
	for at := range len(b) {
		c := bytes.Clone(b)
		c[at] ^= 0x10
		path := filepath.Join(dir, "x.db")
		_, err := db.Restore(context.Background(), bytes.NewReader(c), path)
		if at == 6 || at == 7 { // the file header's reserved bytes, ignored on read
			if err != nil {
				t.Fatalf("a reserved byte flipped: %v", err)
			}
			os.Remove(path)
			continue
		}
		if err == nil {
			t.Fatalf("a byte flipped at %d was restored", at)
		}
		if !errors.Is(err, recovery.ErrCorruptWAL) && !errors.Is(err, recovery.ErrTailDamage) && !errors.Is(err, recovery.ErrNotADatabase) && !errors.Is(err, recovery.ErrUnsupportedVersion) {
			t.Fatalf("flip at %d: %v", at, err)
		}
		if off := walerr.OffsetOf(err); off < 0 || off > int64(at) {
			t.Fatalf("flip at %d: offset %d", at, off)
		}
		if _, serr := os.Stat(path); !errors.Is(serr, os.ErrNotExist) {
			t.Fatalf("flip at %d: a file was left", at)
		}
	}
}

// Restore never replaces a database a writer has open (LOCKED, the file as it was), and keeps
// an existing file's mode.
func TestRestoreOverAnExistingDatabase(t *testing.T) {
	b, info, _ := backupOf(t, 5)
	path := filepath.Join(t.TempDir(), "live.db")
	d := mustOpen(t, path)
	set(t, d, "mine", "v")
	before := readFile(t, path)
	if _, err := db.Restore(context.Background(), bytes.NewReader(b), path); !errors.Is(err, db.ErrLocked) {
		t.Fatalf("restore over an open database: %v, want LOCKED", err)
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Fatal("an open database was replaced")
	}
	d.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Restore(context.Background(), bytes.NewReader(b), path, db.RestoreExpect(info)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode() != 0o600 || !bytes.Equal(readFile(t, path), b) {
		t.Fatalf("after restore: %v %v", fi.Mode(), err)
	}
}
