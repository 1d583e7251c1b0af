package db_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/internal/faults"
)

// panicFS is the OS filesystem whose files' ReadAt panics once armed, and which counts the
// files it opened and that were closed.
type panicFS struct {
	db.FS
	armed          atomic.Bool
	opened, closed atomic.Int64
}

func (s *panicFS) OpenFile(path string, mode db.OpenMode) (db.File, error) {
	f, err := s.FS.OpenFile(path, mode)
	if err != nil {
		return nil, err
	}
	s.opened.Add(1)
	return &panicFile{File: f, fs: s, r: faults.New(f, faults.When(s.armed.Load).Panic("read-back failed"))}, nil
}

type panicFile struct {
	db.File
	fs *panicFS
	r  *faults.Reader // over File: every read panics while fs is armed
}

func (f *panicFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }

func (f *panicFile) Close() error {
	f.fs.closed.Add(1)
	return f.File.Close()
}

// A panic in the filesystem's ReadAt while Open reads the store back after the replay
// (finish, on goroutines of its own) reaches Open's caller, with the file closed and its lock
// released: a second Open succeeds and sees the whole state.
func TestOpenClosesTheFileWhenTheReadBackPanics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	want := model{}
	for i := range 300 {
		k, v := fmt.Sprintf("key%04d", i), fmt.Sprintf("value %d", i)
		set(t, d, k, v)
		want[k] = v
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, par := range []int{1, 4} {
		fs := &panicFS{FS: db.OS}
		arm := recovery.WithProgress(func(applied, total int64) {
			if applied >= total { // replayed to the end: the next reads are finish's
				fs.armed.Store(true)
			}
		})
		got := func() (p any) {
			defer func() { p = recover() }()
			d, err := db.Open(path, db.WithFS(fs), db.WithRecovery(recovery.WithParallelism(par), arm))
			if err == nil {
				d.Close()
			}
			t.Fatalf("par %d: Open returned (%v) instead of panicking", par, err)
			return nil
		}()
		if r, ok := got.(*recovery.Panic); !ok || r.Value != "read-back failed" {
			t.Fatalf("par %d: recovered %v, want the ReadAt's panic", par, got)
		}
		if fs.opened.Load() != 1 || fs.closed.Load() != 1 {
			t.Fatalf("par %d: %d files opened, %d closed", par, fs.opened.Load(), fs.closed.Load())
		}
		d := mustOpen(t, path) // the lock was released
		if got, want := state(t, d), want.sorted(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("par %d: state after reopen differs (%d pairs, want %d)", par, len(got), len(want))
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// An Open canceled once the replay is done (while finish reads the store back, in one part or
// several) fails with CANCELED, leaves no goroutine (TestMain's goleak) and releases the lock.
func TestOpenCanceledDuringTheReadBack(t *testing.T) {
	defer db.SetPartBytes(1 << 10)()
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	for i := range 300 {
		set(t, d, fmt.Sprintf("key%04d", i), fmt.Sprintf("value %d", i))
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for _, par := range []int{1, 4} {
		ctx, cancel := context.WithCancel(context.Background())
		stop := recovery.WithProgress(func(applied, total int64) {
			if applied >= total {
				cancel()
			}
		})
		_, err := db.OpenContext(ctx, path, db.WithRecovery(recovery.WithParallelism(par), stop))
		cancel()
		if !errors.Is(err, recovery.ErrCanceled) || !strings.Contains(err.Error(), "reading the store back") {
			t.Fatalf("par %d: %v, want CANCELED while reading the store back", par, err)
		}
		mustOpen(t, path).Close() // the lock was released
	}
}
