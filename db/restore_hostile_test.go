//go:build unix

package db_test

// Adversarial review of db/restore.go (Restore, RestorePrefix, RestoreExpect) and of the
// database's identity across rewrites (openLocked, CreateLike, Replace). TestReview* tests
// that fail show a broken claim; the passing ones kept pin edges the existing suites do not.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
)

// hookReader calls hook before its first Read, then reads r.
type hookReader struct {
	r    io.Reader
	hook func()
	once sync.Once
}

func (h *hookReader) Read(p []byte) (int, error) {
	h.once.Do(h.hook)
	return h.r.Read(p)
}

// FINDING: Restore to a path with no file goes through create(), which renames its new file
// over the path without checking that the path is still free. A writer that creates and opens
// the database meanwhile (db.Open creates a missing file) loses its file under its feet: its
// acknowledged commit is gone, and a second writer then gets the lock while the first is still
// open. The claim: "never over a database a writer has open"; "no second writer ever gets the
// lock".
func TestRestoreCreateReplacesAWriterThatAppeared(t *testing.T) {
	ctx := context.Background()
	b, info, _ := backupOf(t, 5)
	path := filepath.Join(t.TempDir(), "x.db")
	var w *db.DB
	r := &hookReader{r: bytes.NewReader(b), hook: func() {
		w = mustOpen(t, path) // the path is free: an application opens its database
		set(t, w, "mine", "acknowledged")
	}}
	_, err := db.Restore(ctx, r, path, db.RestoreExpect(info))
	defer w.Close()
	if err != nil {
		return // refused: the claim holds
	}
	second, err2 := db.Open(path)
	if err2 == nil {
		second.Close()
	}
	w.Close()
	after := mustOpen(t, path)
	defer after.Close()
	var kept bool
	after.View(func(tx *db.Tx) error { _, kept = tx.Get([]byte("mine")); return nil })
	t.Fatalf("Restore replaced a database a writer had open: second writer's Open: %v; the writer's acknowledged commit survives: %v", err2, kept)
}

// gateReader signals when its first Read begins and blocks there until released.
type gateReader struct {
	r       io.Reader
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gateReader) Read(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered); <-g.release })
	return g.r.Read(p)
}

// FINDING: two Restores to the same missing path: the second one's create() removes the
// first's "<path>.replace" (locked, being written) and creates its own under that name; the
// first then renames the *second's* unfinished, unsynced file into place and reports success.
// The path ends up holding the other restore's bytes (and that restore fails). The claim: the
// file is put in place "only once synced", "a crash at any instant leaves the old file (or
// none) or the new one, whole".
func TestConcurrentRestoresToAMissingPath(t *testing.T) {
	ctx := context.Background()
	ba, ia, _ := backupOf(t, 3)
	bb, _, _ := backupOf(t, 9)
	path := filepath.Join(t.TempDir(), "x.db")
	ra := &gateReader{r: bytes.NewReader(ba), entered: make(chan struct{}), release: make(chan struct{})}
	rb := &gateReader{r: bytes.NewReader(bb), entered: make(chan struct{}), release: make(chan struct{})}
	errA, errB := make(chan error, 1), make(chan error, 1)
	go func() { _, err := db.Restore(ctx, ra, path, db.RestoreExpect(ia)); errA <- err }()
	<-ra.entered
	go func() { _, err := db.Restore(ctx, rb, path); errB <- err }()
	select {
	case <-rb.entered:
	case err := <-errB:
		close(ra.release)
		<-errA
		t.Logf("the second restore was refused while the first ran: %v", err)
		return
	}
	close(ra.release)
	ea := <-errA
	gotA := readFileOrNil(path)
	close(rb.release)
	eb := <-errB
	final := readFileOrNil(path)
	if ea == nil && !bytes.Equal(gotA, ba) {
		t.Errorf("restore A succeeded, but the path then held %d bytes, not A's %d (B's file, unfinished)", len(gotA), len(ba))
	}
	if ea == nil && !bytes.Equal(final, ba) {
		t.Errorf("restore A succeeded (B: %v); the path finally holds %d bytes: A's %v, B's %v", eb, len(final), bytes.Equal(final, ba), bytes.Equal(final, bb))
	}
}

func readFileOrNil(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// FINDING (minor): a path that is a symbolic link to a file that does not exist yet (a
// dangling link, as for a database kept on another volume) is replaced by a regular file: the
// link is gone and the restored database is not where the link pointed. Open through the same
// link creates the file the link names and keeps the link.
func TestRestoreThroughADanglingSymlink(t *testing.T) {
	ctx := context.Background()
	b, _, _ := backupOf(t, 3)
	target := filepath.Join(t.TempDir(), "real.db")
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Restore(ctx, bytes.NewReader(b), link); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(link)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		_, terr := os.Stat(target)
		t.Fatalf("the link was replaced by a regular file (%v); the file it named: %v", fi.Mode(), terr)
	}
}

// HELD: Restore over an existing database through a symbolic link writes the file the link
// names, keeps the link, the file's mode (0640, set-group-ID included) and leaves nothing
// beside it; over a FIFO it is refused at once without blocking; over a database a writer
// has open, ErrLocked and nothing changes; an empty stream restores an empty database; a
// stream that is exactly a v1 file header restores that header.
func TestRestoreOverLinksFIFOsAndOpenDatabases(t *testing.T) {
	ctx := context.Background()
	b, info, _ := backupOf(t, 4)
	dir := t.TempDir()
	real := filepath.Join(dir, "real.db")
	d := mustOpen(t, real)
	set(t, d, "old", "1")
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, real)
	if _, err := db.Restore(ctx, bytes.NewReader(b), link); !errors.Is(err, db.ErrLocked) {
		t.Fatalf("restore over an open database: %v", err)
	}
	if !bytes.Equal(readFile(t, real), before) {
		t.Fatal("changed")
	}
	d.Close()
	if err := os.Chmod(real, 0o640|fs.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Restore(ctx, bytes.NewReader(b), link, db.RestoreExpect(info)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readFile(t, real), b) {
		t.Fatal("not the backup")
	}
	if fi, _ := os.Lstat(link); fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatal("link replaced")
	}
	if fi, _ := os.Stat(real); fi.Mode() != 0o640|fs.ModeSetgid {
		t.Fatalf("mode %v", fi.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries beside the file", len(ents))
	}

	fifo := filepath.Join(t.TempDir(), "fifo.db")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skip(err)
	}
	done := make(chan error, 1)
	go func() { _, err := db.Restore(ctx, bytes.NewReader(b), fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("restored over a FIFO")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Restore over a FIFO blocked")
	}
	if fi, _ := os.Lstat(fifo); fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Fatal("the FIFO was replaced")
	}

	empty := filepath.Join(t.TempDir(), "empty.db")
	if ri, err := db.Restore(ctx, bytes.NewReader(nil), empty); err != nil || ri.Size != 0 {
		t.Fatalf("empty stream: %+v %v", ri, err)
	}
	hdr := filepath.Join(t.TempDir(), "hdr.db")
	if ri, err := db.Restore(ctx, bytes.NewReader(format.FileHeader[:]), hdr, db.RestoreExpect(db.BackupInfo{End: 8, Prefix: crc32.Checksum(format.FileHeader[:], crc32.MakeTable(crc32.Castagnoli))})); err != nil || ri.Size != 8 {
		t.Fatalf("header-only stream: %+v %v", ri, err)
	}
	if !bytes.Equal(readFile(t, hdr), format.FileHeader[:]) {
		t.Fatal("header-only stream: not the header")
	}
}

// HELD: RestorePrefix keeps exactly the verified prefix of a backup cut at every offset (a
// multiple of 7 here), and Restore without it refuses every cut inside a record and leaves no
// file; with trailing garbage after a whole backup, the prefix is the backup.
func TestRestorePrefixAtEveryCut(t *testing.T) {
	ctx := context.Background()
	b, _, starts := backupOf(t, 12)
	boundary := map[int64]bool{int64(len(b)): true}
	for _, s := range starts {
		boundary[s] = true
	}
	dir := t.TempDir()
	for cut := int64(9); cut <= int64(len(b)); cut += 7 {
		path := filepath.Join(dir, fmt.Sprintf("c%d.db", cut))
		ri, err := db.Restore(ctx, bytes.NewReader(b[:cut]), path, db.RestorePrefix())
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		got := readFile(t, path)
		if !bytes.Equal(got, b[:len(got)]) || ri.Size != int64(len(got)) || ri.Size+ri.Tail != cut || (len(got) != int(cut) && !boundary[int64(len(got))]) {
			t.Fatalf("cut %d: %+v, %d bytes", cut, ri, len(got))
		}
		strict := filepath.Join(dir, fmt.Sprintf("s%d.db", cut))
		_, err = db.Restore(ctx, bytes.NewReader(b[:cut]), strict)
		if boundary[cut] != (err == nil) {
			t.Fatalf("cut %d (boundary %v): %v", cut, boundary[cut], err)
		}
		if err != nil {
			if _, serr := os.Lstat(strict); !errors.Is(serr, fs.ErrNotExist) {
				t.Fatalf("cut %d: a refused restore left %v", cut, serr)
			}
		}
	}
	path := filepath.Join(dir, "garbage.db")
	ri, err := db.Restore(ctx, bytes.NewReader(append(bytes.Clone(b), 0, 0, 0, 0, 0, 7)), path, db.RestorePrefix())
	if err != nil || !bytes.Equal(readFile(t, path), b) || ri.Tail != 6 {
		t.Fatalf("trailing garbage: %+v %v", ri, err)
	}
}

// FINDING (db side of the stream's hostile-length allocation): Restore from a 24-byte stream
// (a v1 file header and one record header claiming just under 1 GiB) allocates 1 GiB before it
// refuses the stream as a torn tail. Restores take streams from the network.
func TestRestoreHostileLengthAllocates(t *testing.T) {
	stream := bytes.Clone(format.FileHeader[:])
	h := make([]byte, format.V1HeaderSize)
	format.PutHeader(h, format.LayoutV1, 1<<30-1, 0)
	stream = append(stream, h...)
	stream = append(stream, 1, 2, 3, 4)
	var a, b runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&a)
	_, err := db.Restore(context.Background(), bytes.NewReader(stream), filepath.Join(t.TempDir(), "x.db"), db.RestorePrefix())
	runtime.ReadMemStats(&b)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := b.TotalAlloc - a.TotalAlloc; alloc > 64<<20 {
		t.Fatalf("Restore of a %d-byte stream allocated %d MiB", len(stream), alloc>>20)
	}
}

var _ = recovery.ErrCorruptWAL

// enoentOnceReader fails its first Read with an error that matches fs.ErrNotExist, then reads r.
type enoentOnceReader struct {
	r      io.Reader
	failed bool
}

func (e *enoentOnceReader) Read(p []byte) (int, error) {
	if !e.failed {
		e.failed = true
		return 0, &fs.PathError{Op: "read", Path: "backup", Err: fs.ErrNotExist}
	}
	return e.r.Read(p)
}

// FINDING: Restore falls back to create() on any error that matches fs.ErrNotExist with
// nothing received, not only on "the path has no file": a reader whose first Read fails with
// such an error makes Restore read the stream again and rename a new file over an existing
// database through create(), which takes no lock on it and does not keep its mode (0600
// becomes 0644). The claim: an existing file "is replaced as Replace does: ... keeping its
// mode, owner and group".
func TestRestoreFallsBackToCreateOverAnExistingDatabase(t *testing.T) {
	ctx := context.Background()
	b, _, _ := backupOf(t, 4)
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	set(t, d, "old", "1")
	d.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)
	_, err := db.Restore(ctx, &enoentOnceReader{r: bytes.NewReader(b)}, path)
	fi, serr := os.Stat(path)
	if serr != nil {
		t.Fatal(serr)
	}
	if err == nil || fi.Mode() != 0o600 {
		t.Fatalf("the reader failed, yet Restore returned %v and the database is %s (mode %v, was 0600)",
			err, map[bool]string{true: "unchanged", false: "replaced"}[bytes.Equal(readFile(t, path), before)], fi.Mode())
	}
}
