package db_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
)

// gateFS holds the first Sync of path until gate is closed, so that a test can line up the
// transactions that commit while a group is being synced: no timing involved.
type gateFS struct {
	*simfs.FS
	path    string
	gate    chan struct{}
	syncing chan struct{} // closed when the held Sync has begun
	armed   atomic.Bool   // the next Sync is held
}

func (g *gateFS) OpenFile(path string, mode db.OpenMode) (db.File, error) {
	f, err := g.FS.OpenFile(path, mode)
	if err != nil || path != g.path {
		return f, err
	}
	return &gateFile{File: f, g: g}, nil
}

type gateFile struct {
	db.File
	g *gateFS
}

func (f *gateFile) Sync() error {
	if f.g.armed.CompareAndSwap(true, false) {
		close(f.g.syncing)
		<-f.g.gate
	}
	return f.File.Sync()
}

// lineUp opens a database on a gated filesystem, starts one commit (which leads, and whose
// fsync is held), then n more that all queue behind it, and returns once they are queued,
// with a function that releases the held fsync and waits for all n+1 outcomes.
func lineUp(t *testing.T, fs *simfs.FS, n int) (d *db.DB, release func() (first error, rest []error)) {
	t.Helper()
	g := &gateFS{FS: fs, path: "/db", gate: make(chan struct{}), syncing: make(chan struct{})}
	d = mustOpen(t, "/db", db.WithFS(g))
	g.armed.Store(true) // Open's own sync is not the one to hold
	firstDone := make(chan error, 1)
	go func() {
		firstDone <- d.Update(func(tx *db.Tx) error { return tx.Set([]byte("first"), []byte("1")) })
	}()
	<-g.syncing
	var ran atomic.Int32
	outs := make([]chan error, n)
	for i := range outs {
		outs[i] = make(chan error, 1)
		go func() {
			outs[i] <- d.Update(func(tx *db.Tx) error {
				defer ran.Add(1)
				return tx.Set(fmt.Appendf(nil, "k%02d", i), []byte("v"))
			})
		}()
	}
	// Functions run one at a time under the writers' lock, and a transaction is queued before
	// that lock is released: once one more function starts after all n ran, all n are queued.
	for {
		started := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			done <- d.Update(func(tx *db.Tx) error { close(started); return nil }) // no ops: queues nothing
		}()
		<-started
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if int(ran.Load()) == n {
			break
		}
	}
	return d, func() (error, []error) {
		close(g.gate)
		first := <-firstDone
		rest := make([]error, n)
		for i := range outs {
			rest[i] = <-outs[i]
		}
		return first, rest
	}
}

// Transactions that commit while a group is syncing share the next group: one append and one
// fdatasync for all of them, each still its own record, each Update returning after it.
func TestGroupCommit(t *testing.T) {
	fs := simfs.New(1)
	const n = 15
	d, release := lineUp(t, fs, n)
	c0 := fs.Counters()
	first, rest := release()
	if first != nil {
		t.Fatal(first)
	}
	for i, err := range rest {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	c := fs.Counters()
	// The held group (the first commit) and one group for the other 15.
	if appends, syncs := c.Appends-c0.Appends, c.Syncs-c0.Syncs; appends != 1 || syncs != 2 {
		t.Fatalf("%d appends and %d fsyncs after the first commit's append, want 1 and 2", appends, syncs)
	}
	if got := state(t, d); len(got) != n+1 {
		t.Fatalf("state %v", got)
	}
	d.Close()
	// Records stay one per transaction: the log replays to n+1 records.
	d = mustOpen(t, "/db", db.WithFS(fs))
	defer d.Close()
	if r := d.Recovery(); r.Records != n+1 || len(state(t, d)) != n+1 {
		t.Fatalf("reopened: %d records, %d keys", r.Records, len(state(t, d)))
	}
}

// A failed group fsync latches FAILED for every caller in the group; none of them comes back.
func TestGroupCommitFailure(t *testing.T) {
	fs := simfs.New(2)
	const n = 7
	d, release := lineUp(t, fs, n)
	fs.FailSync("/db", 2) // the held one succeeds; the group's fails
	first, rest := release()
	if first != nil {
		t.Fatal(first)
	}
	for i, err := range rest {
		if !errors.Is(err, db.ErrFailed) || !errors.Is(err, simfs.ErrInjected) {
			t.Fatalf("commit %d of the failed group: %v", i, err)
		}
	}
	if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("after"), nil) }); !errors.Is(err, db.ErrFailed) {
		t.Fatalf("after the failure: %v", err)
	}
	if got := state(t, d); len(got) != 1 || got[0].K != "first" {
		t.Fatalf("readers see %v", got)
	}
	d.Close()
	d = mustOpen(t, "/db", db.WithFS(fs))
	defer d.Close()
	if got := state(t, d); len(got) != 1 || got[0].K != "first" || d.Truncation() != nil {
		t.Fatalf("reopened: %v, %+v", got, d.Truncation())
	}
}

// Many writers at once, on the OS filesystem, with and without group commit: every Update
// that returned nil is there after a reopen (run with -race).
func TestConcurrentWritersOS(t *testing.T) {
	for _, serial := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "c.db")
		var opts []db.Option
		if serial {
			opts = append(opts, db.WithoutGroupCommit())
		}
		d := mustOpen(t, path, opts...)
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Go(func() {
				for i := range 10 {
					if err := d.Update(func(tx *db.Tx) error { return tx.Set(fmt.Appendf(nil, "%02d/%02d", w, i), []byte("v")) }); err != nil {
						t.Error(err)
					}
				}
			})
		}
		wg.Wait()
		d.Close()
		d = mustOpen(t, path)
		if got := state(t, d); len(got) != 160 || d.Recovery().Records != 160 {
			t.Fatalf("serial %v: %d keys, %d records", serial, len(got), d.Recovery().Records)
		}
		d.Close()
	}
}
