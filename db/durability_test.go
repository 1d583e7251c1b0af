//go:build unix

package db_test

import (
	"bytes"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
	"github.com/streamwal/recovery/format"
)

// A commit of a big value holds it once (the store's copy), not twice (the store's and the
// record's): the record's header and small ops are written with the value in one writev.
func TestBigValueCommitHoldsItOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.db")
	d := mustOpen(t, path)
	const size = 16 << 20
	value := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	small := []byte("small value")
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	mustUpdate(t, d, func(tx *db.Tx) error {
		if err := tx.Set([]byte("a"), small); err != nil {
			return err
		}
		if err := tx.Set([]byte("big"), value); err != nil {
			return err
		}
		return tx.Delete([]byte("z"))
	})
	runtime.ReadMemStats(&m1)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("a commit of a %d-byte value allocated %d bytes (%.2fx)", size, alloc, float64(alloc)/size)
	if alloc > size+size/4 {
		t.Errorf("a commit of a %d-byte value allocated %d bytes: more than one copy of it", size, alloc)
	}
	d.Close()
	// The record is exactly what the format's own encoder makes.
	payload := format.AppendSet(nil, []byte("a"), small)
	payload = format.AppendSet(payload, []byte("big"), value)
	payload = format.AppendDelete(payload, []byte("z"))
	want := format.AppendRecord(format.FileHeader[:], format.LayoutV1, payload)
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Fatalf("the file (%d bytes) is not the format's encoding of the record (%d bytes)", len(got), len(want))
	}
	d = mustOpen(t, path)
	defer d.Close()
	if got := state(t, d); len(got) != 2 || got[1].K != "big" || got[1].V != string(value) || got[0].V != string(small) {
		t.Fatal("the big value did not come back")
	}
}

// A FIFO (or any non-regular file) is refused by every open, read-only included, without
// blocking: a typed INVALID_ARGUMENT.
func TestRefuseNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	for _, opts := range [][]db.Option{{db.ReadOnly()}, nil} {
		done := make(chan error, 1)
		go func() {
			d, err := db.Open(fifo, opts...)
			if err == nil {
				d.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, recovery.ErrInvalidArgument) {
				t.Fatalf("open of a FIFO (%d options): %v", len(opts), err)
			}
		case <-time.After(time.Minute): // a hang is the bug (an open of a FIFO waits for a writer forever)
			t.Fatal("open of a FIFO blocked")
		}
	}
	if _, err := db.Open(dir); !errors.Is(err, recovery.ErrInvalidArgument) && !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("open of a directory: %v", err)
	}
}

// Sidecars lists, RemoveSidecars clears (and refuses while a writer holds the database).
func TestSidecarsListAndRemove(t *testing.T) {
	fs := simfs.New(1)
	d := mustOpen(t, "/d/x.db", db.WithFS(fs))
	set(t, d, "a", "1")
	d.Close()
	good := fs.Bytes("/d/x.db")
	for i, tail := range [][]byte{{1, 2, 3}, {4, 5}, {1, 2, 3}} {
		fs.WriteFile("/d/x.db", append(bytes.Clone(good), tail...))
		d := mustOpen(t, "/d/x.db", db.WithFS(fs))
		if tr := d.Truncation(); tr == nil || tr.Sidecar == "" {
			t.Fatalf("round %d: no sidecar", i)
		}
		d.Close()
	}
	fs.WriteFile("/d/x.db.cut-9.tmp", []byte("partial"))      // a crash mid-copy
	fs.WriteFile("/d/x.db.cut-x", []byte("not a sidecar"))    // not ours
	fs.WriteFile("/d/y.db.cut-1", []byte("another database")) // not ours
	list, err := db.Sidecars("/d/x.db", db.WithFS(fs))
	off := int64(len(good))
	want := []db.Sidecar{
		{Path: "/d/x.db.cut-9.tmp", Offset: 9, Size: 7, Partial: true},
		{Path: fmt.Sprintf("/d/x.db.cut-%d", off), Offset: off, Size: 3},
		{Path: fmt.Sprintf("/d/x.db.cut-%d.1", off), Offset: off, Size: 2},
	}
	if err != nil || fmt.Sprint(list) != fmt.Sprint(want) {
		t.Fatalf("Sidecars: %+v %v, want %+v", list, err, want)
	}
	w := mustOpen(t, "/d/x.db", db.WithFS(fs))
	if _, err := db.RemoveSidecars("/d/x.db", db.WithFS(fs)); !errors.Is(err, db.ErrLocked) {
		t.Fatalf("RemoveSidecars beside a writer: %v", err)
	}
	w.Close()
	gone, err := db.RemoveSidecars("/d/x.db", db.WithFS(fs))
	if err != nil || len(gone) != 3 {
		t.Fatalf("RemoveSidecars: %v %v", gone, err)
	}
	if list, _ := db.Sidecars("/d/x.db", db.WithFS(fs)); len(list) != 0 || !fs.Exists("/d/x.db.cut-x") || !fs.Exists("/d/y.db.cut-1") || !fs.Synced("/d/x.db") {
		t.Fatalf("after RemoveSidecars: %v", fs.Paths())
	}
}

// The bound on sidecars for one offset: different bytes, again and again, end in a typed
// SIDECARS_FULL refusal (nothing cut), never in a lost byte.
func TestSidecarBound(t *testing.T) {
	fs := simfs.New(1)
	d := mustOpen(t, "/x.db", db.WithFS(fs))
	set(t, d, "a", "1")
	d.Close()
	good := fs.Bytes("/x.db")
	for i := 0; ; i++ {
		torn := append(bytes.Clone(good), byte(i), byte(i>>8), 7)
		fs.WriteFile("/x.db", torn)
		d, err := db.Open("/x.db", db.WithFS(fs))
		if err != nil {
			if !errors.Is(err, db.ErrSidecars) || !bytes.Equal(fs.Bytes("/x.db"), torn) || i != 100 {
				t.Fatalf("open %d: %v", i, err)
			}
			break
		}
		d.Close()
	}
	if _, err := db.RemoveSidecars("/x.db", db.WithFS(fs)); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, "/x.db", db.WithFS(fs)).Close()
}

// A writer on a full disk: the failed append's bytes are removed, the database latches, and a
// writable reopen on the still full disk succeeds (no sidecar needed).
func TestNoSpaceRemovesTornBytes(t *testing.T) {
	fs := simfs.New(1)
	d := mustOpen(t, "/x.db", db.WithFS(fs))
	set(t, d, "a", "1")
	size := int64(len(fs.Bytes("/x.db")))
	fs.SetCapacity(size + 20)
	err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("b"), make([]byte, 100)) })
	if !errors.Is(err, db.ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("commit on a full disk: %v", err)
	}
	if got := int64(len(fs.Bytes("/x.db"))); got != size || fs.Counters().NoSpace != 1 {
		t.Fatalf("after ENOSPC the file has %d bytes, want %d", got, size)
	}
	d.Close()
	d = mustOpen(t, "/x.db", db.WithFS(fs)) // still full
	defer d.Close()
	if d.Truncation() != nil || len(fs.Paths()) != 1 {
		t.Fatalf("reopen on a full disk: %+v %v", d.Truncation(), fs.Paths())
	}
	if got := state(t, d); len(got) != 1 {
		t.Fatalf("state %v", got)
	}
}
