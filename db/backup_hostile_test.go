//go:build unix

package db_test

// Adversarial review of db/backup.go (Backup, BackupFile, Since). TestReview* tests that fail
// show a broken claim; the passing ones kept pin edges the existing suites do not.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
)

// FINDING: an incremental backup after a full backup of a new, empty database (End 0) has no
// v1 file header: backupCopier.write writes the header only when there is no Since, and
// Since(End 0) skips nothing. The full backup (0 bytes) and the increment together are not a
// database (NOT_A_DATABASE), though each backup succeeded.
func TestIncrementalAfterAnEmptyFullBackupHasNoHeader(t *testing.T) {
	ctx := context.Background()
	d := mustOpen(t, filepath.Join(t.TempDir(), "x.db"))
	defer d.Close()
	var all bytes.Buffer
	full, err := d.Backup(ctx, &all)
	if err != nil {
		t.Fatal(err)
	}
	set(t, d, "k", "v")
	inc, err := d.Backup(ctx, &all, db.Since(full))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if _, err := db.Restore(ctx, bytes.NewReader(all.Bytes()), path, db.RestoreExpect(inc)); err != nil {
		t.Fatalf("full %+v + increment %+v = % x: restore: %v", full, inc, all.Bytes(), err)
	}
	r := mustOpen(t, path)
	defer r.Close()
	if st := state(t, r); len(st) != 1 {
		t.Fatalf("restored %v", st)
	}
}

// FINDING: Since's test that the log was not rewritten is one record's checksum at prev.End.
// A compaction that happens to put a record with the same payload ending at the same offset
// (a big pair alone in its record, after pairs of the same total size) passes it, and the
// increment is appended to a base that is no longer the log: full + increment restores a
// deleted key and loses a live one, and RestoreExpect accepts it. The doc: "When the log was
// rewritten since prev (a compaction, ...), it fails with ErrRewritten".
func TestSinceMissesACompactionThatKeepsTheLastRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	// A record limit of 4 KiB makes compaction's records at most 4 KiB: a pair of about 4 KiB
	// gets one of its own, as a pair of about 1 MiB does with the default.
	d := mustOpen(t, path, db.WithMaxRecordSize(4096))
	defer d.Close()
	small := strings.Repeat("x", 100)
	big := strings.Repeat("B", 4000)
	set(t, d, "a", small)
	set(t, d, "c", big)
	var all bytes.Buffer
	full, err := d.Backup(ctx, &all)
	if err != nil {
		t.Fatal(err)
	}
	mustUpdate(t, d, func(tx *db.Tx) error { return tx.Delete([]byte("a")) })
	set(t, d, "b", strings.Repeat("y", 100)) // same size as a's pair
	if _, err := d.Compact(); err != nil {
		t.Fatal(err)
	}
	set(t, d, "d", "after the compaction")
	inc, err := d.Backup(ctx, &all, db.Since(full))
	if errors.Is(err, db.ErrRewritten) {
		return // the claim holds
	}
	if err != nil {
		t.Fatal(err)
	}
	restored := filepath.Join(t.TempDir(), "restored.db")
	_, rerr := db.Restore(ctx, bytes.NewReader(all.Bytes()), restored, db.RestoreExpect(inc))
	var got []kv
	if rerr == nil {
		r := mustOpen(t, restored)
		got = state(t, r)
		r.Close()
	}
	t.Fatalf("an increment across a compaction was taken (%+v after %+v); restored with RestoreExpect: %v\nrestored state: %v\nlive state:     %v",
		inc, full, rerr, keys(got), keys(state(t, d)))
}

func keys(s []kv) []string {
	var out []string
	for _, p := range s {
		out = append(out, p.K)
	}
	return out
}

// HELD: an incremental backup from every record boundary of a log (BackupFile, Since with the
// BackupInfo such a backup would have had) is exactly the log's bytes after it, and chains
// with the full backup up to it into the log; from inside a record (every other offset of the
// first records) it is refused with ErrRewritten and writes nothing.
func TestIncrementalAtEveryRecordBoundary(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	for i := range 30 {
		set(t, d, fmt.Sprintf("k%02d", i%7), strings.Repeat("v", i*37))
	}
	d.Close()
	log := readFile(t, path)
	var ends []int64
	crcs := map[int64]uint32{}
	if _, err := recovery.Recover(ctx, bytes.NewReader(log), recovery.ApplyFunc(func(r recovery.Record) error {
		end := r.PayloadOffset() + int64(len(r.Payload))
		ends = append(ends, end)
		crcs[end] = format.Checksum(r.Payload)
		return nil
	}), recovery.ReadOnly()); err != nil {
		t.Fatal(err)
	}
	for _, e := range ends {
		prev := db.BackupInfo{End: e, Last: crcs[e], Prefix: crc32.Checksum(log[:e], crc32.MakeTable(crc32.Castagnoli))}
		var out bytes.Buffer
		info, err := db.BackupFile(ctx, nil, path, &out, db.Since(prev))
		if err != nil {
			t.Fatalf("since %d: %v", e, err)
		}
		if !bytes.Equal(out.Bytes(), log[e:]) || info.Start != e || info.End != int64(len(log)) {
			t.Fatalf("since %d: %d bytes, info %+v", e, out.Len(), info)
		}
		var head bytes.Buffer
		if _, err := db.BackupFile(ctx, nil, path, &head); err != nil {
			t.Fatal(err)
		}
	}
	for off := int64(9); off < ends[3]; off++ {
		if crcs[off] != 0 {
			continue
		}
		var out bytes.Buffer
		_, err := db.BackupFile(ctx, nil, path, &out, db.Since(db.BackupInfo{End: off, Last: 12345}))
		if !errors.Is(err, db.ErrRewritten) || out.Len() != 0 {
			t.Fatalf("since %d (inside a record): %v, %d bytes written", off, err, out.Len())
		}
	}
	// A boundary with the wrong checksum: refused.
	var out bytes.Buffer
	if _, err := db.BackupFile(ctx, nil, path, &out, db.Since(db.BackupInfo{End: ends[5], Last: crcs[ends[5]] + 1})); !errors.Is(err, db.ErrRewritten) || out.Len() != 0 {
		t.Fatalf("wrong last checksum: %v (%d bytes)", err, out.Len())
	}
}

// failHeaderReads fails the small positional reads of one record header (12 bytes, after the
// file header): what backupCopier.info does to learn the last record's checksum.
type failHeaderReads struct{ db.FS }

func (f failHeaderReads) OpenFile(path string, mode db.OpenMode) (db.File, error) {
	file, err := f.FS.OpenFile(path, mode)
	if err != nil {
		return nil, err
	}
	return failHeaderFile{file}, nil
}

type failHeaderFile struct{ db.File }

func (f failHeaderFile) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == format.V1HeaderSize && off > format.FileHeaderSize {
		return 0, errors.New("injected read error")
	}
	return f.File.ReadAt(p, off)
}

// FINDING: backupCopier.info reads the last record's header again to fill BackupInfo.Last and
// ignores a read error: the backup succeeds with Last = 0, and the next Since(info) is refused
// (ErrRewritten) or a RestoreExpect(info) fails, for a log that is fine. (In Backup, a Close
// racing the end of the backup does the same.)
func TestBackupInfoLastSwallowsAReadError(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	set(t, d, "a", "1")
	set(t, d, "b", "2")
	d.Close()
	var out bytes.Buffer
	info, err := db.BackupFile(ctx, failHeaderReads{db.OS}, path, &out)
	if err == nil && info.Records > 0 && info.Last == 0 {
		t.Fatalf("backup succeeded with %+v: Last is 0 for a backup of %d records (the read of the last header failed)", info, info.Records)
	}
}

// HELD (under -race): Backup while writers commit, Compact runs in a loop and the database is
// finally closed: every backup that succeeds opens to a state that is a prefix of the
// commits (k0..kn-1 for some n, each with its value), and Backup after Close is CLOSED.
func TestBackupAgainstCompactAndClose(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := d.Update(func(tx *db.Tx) error {
				return tx.Set(fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "v%d", i))
			}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := d.Compact(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	var backups [][]byte
	for range 15 {
		var out bytes.Buffer
		if _, err := d.Backup(ctx, &out); err != nil {
			t.Fatal(err)
		}
		backups = append(backups, out.Bytes())
	}
	close(stop)
	wg.Wait()
	closed := make(chan error, 1)
	go func() {
		var out bytes.Buffer
		_, err := d.Backup(ctx, &out)
		closed <- err
	}()
	d.Close()
	if err := <-closed; err != nil && !errors.Is(err, db.ErrClosed) && recovery.CodeOf(err) != recovery.CodeIO {
		t.Fatalf("Backup racing Close: %v", err)
	}
	var out bytes.Buffer
	if _, err := d.Backup(ctx, &out); !errors.Is(err, db.ErrClosed) {
		t.Fatalf("Backup after Close: %v", err)
	}
	for i, b := range backups {
		st := openBytes(t, b)
		for j, p := range st {
			if p.K != fmt.Sprintf("k%05d", j) || p.V != fmt.Sprintf("v%d", j) {
				t.Fatalf("backup %d: pair %d is %v: not a prefix of the commits", i, j, p)
			}
		}
	}
}

// stallWriter blocks in its first Write until released.
type stallWriter struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
	buf     bytes.Buffer
}

func (w *stallWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.entered); <-w.release })
	return w.buf.Write(p)
}

// FINDING: "Close during a backup makes it fail (the file it reads is closed)" does not hold
// once an automatic compaction is pending: the compaction waits for the backup (compactMu),
// and Close waits for the compaction (bg.Wait) before it closes anything, so Close blocks for
// as long as the backup's writer does (a stalled network peer: forever), and the backup then
// succeeds.
func TestCloseWaitsForABackupBehindAnAutoCompaction(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path, db.WithAutoCompact(2, nil))
	v := strings.Repeat("v", 4000)
	for range 250 { // about 1 MiB - 1 KiB: under the automatic compaction's floor
		set(t, d, "k", v)
	}
	w := &stallWriter{entered: make(chan struct{}), release: make(chan struct{})}
	backupErr := make(chan error, 1)
	go func() { _, err := d.Backup(ctx, w); backupErr <- err }()
	<-w.entered
	set(t, d, "k", strings.Repeat("w", 64<<10)) // over the floor: an automatic compaction starts, and waits for the backup
	closed := make(chan error, 1)
	go func() { closed <- d.Close() }()
	select {
	case <-closed:
		close(w.release)
		if err := <-backupErr; err == nil {
			t.Errorf("Close returned, yet the backup succeeded")
		}
	case <-time.After(time.Second):
		close(w.release)
		err := <-backupErr
		<-closed
		t.Fatalf("Close blocked for as long as the backup's writer stalled; the backup then returned %v", err)
	}
}
