package db_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"sync"
	"syscall"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
)

// Many goroutines incrementing counters through Update lose no update, and every View sees a
// consistent snapshot (transfers between accounts keep the total), under -race.
func TestConcurrentUpdatesLoseNothing(t *testing.T) {
	for _, fsys := range []struct {
		name string
		fs   db.FS
		path string
		n, m int
	}{
		{"sim", simfs.New(7), "/db", 8, 200},
		{"os", db.OS, filepath.Join(t.TempDir(), "c.db"), 4, 25},
	} {
		t.Run(fsys.name, func(t *testing.T) {
			d := mustOpen(t, fsys.path, db.WithFS(fsys.fs))
			const accounts, total = 5, 1000
			mustUpdate(t, d, func(tx *db.Tx) error {
				for a := range accounts {
					tx.Set(fmt.Appendf(nil, "acct/%d", a), u64(total/accounts))
				}
				return nil
			})
			var wg sync.WaitGroup
			stop := make(chan struct{})
			var viewErr error
			var viewMu sync.Mutex
			wg.Add(1)
			go func() { // a reader checking the invariant while writers run
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := d.View(func(tx *db.Tx) error {
						sum := uint64(0)
						for _, v := range tx.Range([]byte("acct/"), []byte("acct0")) {
							sum += binary.BigEndian.Uint64(v)
						}
						if sum != total {
							return fmt.Errorf("a view saw a total of %d, not %d: not a consistent snapshot", sum, total)
						}
						return nil
					})
					if err != nil {
						viewMu.Lock()
						viewErr = err
						viewMu.Unlock()
						return
					}
				}
			}()
			var writers sync.WaitGroup
			for g := range fsys.n {
				writers.Add(1)
				go func() {
					defer writers.Done()
					for i := range fsys.m {
						err := d.Update(func(tx *db.Tx) error {
							inc(tx, "counter")
							inc(tx, fmt.Sprintf("counter/%d", g))
							from, to := fmt.Appendf(nil, "acct/%d", (g+i)%accounts), fmt.Appendf(nil, "acct/%d", (g+i+1)%accounts)
							fv, _ := tx.Get(from)
							tv, _ := tx.Get(to)
							if binary.BigEndian.Uint64(fv) > 0 {
								tx.Set(from, u64(binary.BigEndian.Uint64(fv)-1))
								tx.Set(to, u64(binary.BigEndian.Uint64(tv)+1))
							}
							return nil
						})
						if err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			writers.Wait()
			close(stop)
			wg.Wait()
			if viewErr != nil {
				t.Fatal(viewErr)
			}
			check := func(d *db.DB) {
				d.View(func(tx *db.Tx) error {
					if v, _ := tx.Get([]byte("counter")); binary.BigEndian.Uint64(v) != uint64(fsys.n*fsys.m) {
						t.Fatalf("counter = %d, want %d: updates lost", binary.BigEndian.Uint64(v), fsys.n*fsys.m)
					}
					for g := range fsys.n {
						if v, _ := tx.Get(fmt.Appendf(nil, "counter/%d", g)); binary.BigEndian.Uint64(v) != uint64(fsys.m) {
							t.Fatalf("counter/%d = %d", g, binary.BigEndian.Uint64(v))
						}
					}
					return nil
				})
			}
			check(d)
			before := state(t, d)
			d.Close()
			d = mustOpen(t, fsys.path, db.WithFS(fsys.fs), db.WithRecovery(recovery.WithParallelism(4)))
			defer d.Close()
			check(d)
			if got := state(t, d); !reflect.DeepEqual(got, before) {
				t.Fatal("state after reopen differs")
			}
		})
	}
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func inc(tx *db.Tx, k string) {
	v, ok := tx.Get([]byte(k))
	n := uint64(0)
	if ok {
		n = binary.BigEndian.Uint64(v)
	}
	tx.Set([]byte(k), u64(n+1))
}

// A failed append latches the database: that commit and every later write fail with
// ErrFailed (wrapping the cause), nothing more is written, reads go on. The writer removed
// the failed commit's bytes (truncated back and synced): the reopen finds the log as it was
// before that commit, with nothing to cut, and writes resume. A commit that returned an
// error never comes back.
func TestAppendFaultLatches(t *testing.T) {
	for _, fault := range []string{"append", "fsync"} {
		t.Run(fault, func(t *testing.T) {
			fs := simfs.New(3)
			d := mustOpen(t, "/db", db.WithFS(fs))
			set(t, d, "a", "1")
			base := len(fs.Bytes("/db"))
			if fault == "append" {
				fs.FailAppend("/db", 1)
			} else {
				fs.FailSync("/db", 1)
			}
			err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("b"), bytes.Repeat([]byte("x"), 100)) })
			if !errors.Is(err, db.ErrFailed) || !errors.Is(err, simfs.ErrInjected) || !errors.Is(err, syscall.EIO) {
				t.Fatalf("failed commit: %v", err)
			}
			if c := fs.Counters(); c.AppendFaults+c.SyncFaults != 1 {
				t.Fatalf("fault did not fire: %+v", c)
			}
			size := len(fs.Bytes("/db"))
			if d, p := fs.Durable("/db"); size != base || d != int64(base) || p != 0 {
				t.Fatalf("the failed commit's bytes are still there: %d bytes, %d durable, %d pending (want %d)", size, d, p, base)
			}
			for range 3 {
				if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("c"), nil) }); !errors.Is(err, db.ErrFailed) || db.CodeOf(err) != "FAILED" {
					t.Fatalf("write after the failure: %v", err)
				}
			}
			if len(fs.Bytes("/db")) != size {
				t.Fatal("a latched database wrote")
			}
			if got := state(t, d); !reflect.DeepEqual(got, []kv{{"a", "1"}}) {
				t.Fatalf("state %v", got)
			}
			if _, err := db.Open("/db", db.WithFS(fs)); !errors.Is(err, db.ErrLocked) {
				t.Fatalf("second open while latched: %v", err)
			}
			d.Close()
			var rep *db.TruncationReport
			d = mustOpen(t, "/db", db.WithFS(fs), db.OnTruncate(func(r db.TruncationReport) { rep = &r }))
			defer d.Close()
			want := []kv{{"a", "1"}}
			if rep != nil {
				t.Fatalf("a cut after the writer removed its bytes: %+v", rep)
			}
			if got := state(t, d); !reflect.DeepEqual(got, want) {
				t.Fatalf("state after reopen %v, want %v", got, want)
			}
			set(t, d, "c", "3")
		})
	}
}

// The simulated lock behaves like flock: one writer, released by Close and by a crash.
func TestSimLock(t *testing.T) {
	fs := simfs.New(1)
	d := mustOpen(t, "/db", db.WithFS(fs))
	if _, err := db.Open("/db", db.WithFS(fs)); !errors.Is(err, db.ErrLocked) {
		t.Fatalf("second writer: %v", err)
	}
	ro := mustOpen(t, "/db", db.WithFS(fs), db.ReadOnly())
	ro.Close()
	set(t, d, "a", "1")
	fs.Crash(simfs.TornTail)
	d2 := mustOpen(t, "/db", db.WithFS(fs)) // the crashed process's lock is gone
	defer d2.Close()
	if err := d.Update(func(tx *db.Tx) error { return tx.Set([]byte("b"), nil) }); !errors.Is(err, db.ErrFailed) || !errors.Is(err, simfs.ErrCrashed) {
		t.Fatalf("write through a handle that died in a crash: %v", err)
	}
	d.Close()
}

// A sidecar that cannot be written whole is removed, the error is a typed I/O error, and the
// database file is untouched; the next open, once the fault is gone, cuts and keeps the copy.
func TestFailedSidecarLeavesNothing(t *testing.T) {
	fs := simfs.New(2)
	d := mustOpen(t, "/db", db.WithFS(fs))
	set(t, d, "a", "1")
	set(t, d, "b", "2")
	d.Close()
	good := fs.Bytes("/db")
	fs.WriteFile("/db", append(bytes.Clone(good), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)) // zeroed debris
	side := fmt.Sprintf("/db.cut-%d", len(good))
	fs.FailAppend(side+".tmp", 1) // written under a temporary name, renamed once synced
	_, err := db.Open("/db", db.WithFS(fs))
	if !errors.Is(err, recovery.ErrIO) || fs.Exists(side) || fs.Exists(side+".tmp") || len(fs.Bytes("/db")) != len(good)+13 {
		t.Fatalf("err=%v sidecar exists=%v/%v size=%d", err, fs.Exists(side), fs.Exists(side+".tmp"), len(fs.Bytes("/db")))
	}
	fs.ClearFaults()
	d = mustOpen(t, "/db", db.WithFS(fs))
	defer d.Close()
	if tr := d.Truncation(); tr == nil || tr.Sidecar != side || !bytes.Equal(fs.Bytes(side), make([]byte, 13)) {
		t.Fatalf("after the fault: %+v", d.Truncation())
	}
}
