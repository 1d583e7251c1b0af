package db_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
)

// openBytes opens a copy of b as a database, read-only, and returns its state.
func openBytes(t *testing.T, b []byte) []kv {
	t.Helper()
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := db.Open(path, db.ReadOnly())
	if err != nil {
		t.Fatalf("a backup does not open: %v", err)
	}
	defer d.Close()
	if tr := d.Truncation(); tr != nil {
		t.Fatalf("a backup has a tail recovery would cut: %+v", tr)
	}
	return state(t, d)
}

// A hot backup taken while writers commit holds every commit acknowledged before it began,
// only commits that were acknowledged by the time the writers stopped, and every transaction
// whole (each sets all of its keys or none).
func TestBackupWhileWritersCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	defer d.Close()
	const writers, keysPerTx = 8, 3
	var acked sync.Map // tx id -> true once its Update returned nil
	var next atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for !stop.Load() {
				id := next.Add(1)
				err := d.Update(func(tx *db.Tx) error {
					for j := range keysPerTx {
						if err := tx.Set(fmt.Appendf(nil, "tx%06d/%d", id, j), make([]byte, 100+int(id%900))); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
				acked.Store(id, true)
			}
		})
	}
	for next.Load() < 300 {
		runtime.Gosched()
	}
	var before []int64
	acked.Range(func(k, _ any) bool { before = append(before, k.(int64)); return true })
	var buf bytes.Buffer
	info, err := d.Backup(context.Background(), &buf, db.BackupParallelism(2))
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if info.Start != 0 || info.End != int64(buf.Len()) || info.Records == 0 || info.Tail != 0 {
		t.Fatalf("info %+v for %d bytes", info, buf.Len())
	}
	got := map[int64]int{}
	for _, p := range openBytes(t, buf.Bytes()) {
		var id int64
		var j int
		if _, err := fmt.Sscanf(p.K, "tx%06d/%d", &id, &j); err != nil {
			t.Fatalf("key %q", p.K)
		}
		got[id]++
	}
	for id, n := range got {
		if n != keysPerTx {
			t.Fatalf("transaction %d is in the backup in part (%d of %d keys)", id, n, keysPerTx)
		}
		if _, ok := acked.Load(id); !ok {
			t.Fatalf("transaction %d is in the backup but was never acknowledged", id)
		}
	}
	for _, id := range before {
		if got[id] == 0 {
			t.Fatalf("transaction %d was acknowledged before the backup began and is not in it", id)
		}
	}
	if int64(len(got)) != info.Records {
		t.Fatalf("%d transactions in the backup, info says %d records", len(got), info.Records)
	}
	t.Logf("backup of %d records (%d acknowledged before it began), %d bytes", info.Records, len(before), info.End)
}

// A full backup then incremental ones, concatenated, are the log byte for byte, and open to
// the same state. After a compaction, an incremental backup is refused with REWRITTEN and
// writes nothing.
func TestIncrementalBackups(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	defer d.Close()
	ctx := context.Background()
	var all bytes.Buffer
	var prev db.BackupInfo
	for round := range 4 {
		for i := range 50 {
			set(t, d, fmt.Sprintf("r%d/k%02d", round, i), fmt.Sprintf("value %d/%d", round, i))
		}
		var opts []db.BackupOption
		if round > 0 {
			opts = append(opts, db.Since(prev))
		}
		info, err := d.Backup(ctx, &all, opts...)
		if err != nil {
			t.Fatal(err)
		}
		if info.Start != prev.End || info.Records != 50 || info.End != int64(all.Len()) {
			t.Fatalf("round %d: %+v after %+v (%d bytes so far)", round, info, prev, all.Len())
		}
		prev = info
	}
	if !bytes.Equal(all.Bytes(), readFile(t, path)) {
		t.Fatal("the full backup and the incremental ones together are not the log")
	}
	if got := openBytes(t, all.Bytes()); len(got) != 200 {
		t.Fatalf("%d pairs restored", len(got))
	}
	// Nothing new: an empty increment.
	var none bytes.Buffer
	info, err := d.Backup(ctx, &none, db.Since(prev))
	if err != nil || none.Len() != 0 || info.Start != prev.End || info.End != prev.End {
		t.Fatalf("empty increment: %+v %v (%d bytes)", info, err, none.Len())
	}
	if _, err := d.Compact(); err != nil {
		t.Fatal(err)
	}
	set(t, d, "after", "compaction")
	var out bytes.Buffer
	if _, err := d.Backup(ctx, &out, db.Since(prev)); !errors.Is(err, db.ErrRewritten) || out.Len() != 0 {
		t.Fatalf("incremental after a compaction: %v (%d bytes written), want REWRITTEN and nothing", err, out.Len())
	}
}

// BackupFile, from another process's point of view, takes no lock (the writer has it), and
// leaves out a commit still being written (a torn last record): Tail says how much.
func TestBackupFileLeavesOutACommitInFlight(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	defer d.Close()
	for i := range 20 {
		set(t, d, fmt.Sprintf("k%02d", i), "v")
	}
	good := readFile(t, path)
	// A record half written by the writer: its header promises more than is there.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 9, 9})
	f.Close()
	var buf bytes.Buffer
	info, err := db.BackupFile(context.Background(), nil, path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), good) || info.Tail != 6 || info.Records != 20 {
		t.Fatalf("info %+v, %d bytes (want %d and a 6-byte tail)", info, buf.Len(), len(good))
	}
}

// A log damaged in the middle (a record whose checksum fails, with whole records after it) is
// refused with CORRUPT_WAL, as recovery refuses it.
func TestBackupRefusesACorruptLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	for i := range 20 {
		set(t, d, fmt.Sprintf("k%02d", i), "some value")
	}
	d.Close()
	b := readFile(t, path)
	b[len(b)/2] ^= 0x40
	os.WriteFile(path, b, 0o644)
	_, err := db.BackupFile(context.Background(), nil, path, &bytes.Buffer{})
	if !errors.Is(err, recovery.ErrCorruptWAL) {
		t.Fatalf("err = %v, want CORRUPT_WAL", err)
	}
}

// A backup of a kernel-written file is that file, byte for byte: the kernel opens what it wrote
// (the interop fixtures' check).
func TestBackupOfKernelFilesIsTheFile(t *testing.T) {
	dir, all := fixtures(t)
	for _, fx := range all {
		t.Run(fx.File, func(t *testing.T) {
			want := readFile(t, fx.Path(dir))
			path := filepath.Join(t.TempDir(), fx.File)
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			d := mustOpen(t, path)
			defer d.Close()
			var buf bytes.Buffer
			if _, err := d.Backup(context.Background(), &buf); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("the backup (%d bytes) is not the kernel's file (%d bytes)", buf.Len(), len(want))
			}
		})
	}
}
