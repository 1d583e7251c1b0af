package db_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sync"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
	"github.com/streamwal/recovery/format"
)

// overwrite commits rounds of overwrites of keys k000..k(n-1) (some big values, some
// deletes), and returns the model.
func overwrite(t testing.TB, d *db.DB, rounds, n int) model {
	m := model{}
	for r := range rounds {
		mustUpdate(t, d, func(tx *db.Tx) error {
			for i := range n {
				k := fmt.Sprintf("k%03d", i)
				switch {
				case (i+r)%7 == 0:
					delete(m, k)
					if err := tx.Delete([]byte(k)); err != nil {
						return err
					}
				default:
					v := bytes.Repeat([]byte{byte(r)}, 10+(i*r)%100)
					if i == 3 {
						v = bytes.Repeat([]byte{byte(r)}, 40<<10) // written from the store's copy
					}
					m[k] = string(v)
					if err := tx.Set([]byte(k), v); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	return m
}

// Compact rewrites the log as the live pairs, in the same format: smaller, the same state,
// readable by the format's own decoder record by record, and writes continue after it.
func TestCompact(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacy=%v", legacy), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.db")
			if legacy { // a legacy log stays legacy
				writeFile(t, path, format.AppendRecord(nil, format.LayoutLegacy, format.AppendSet(nil, []byte("k001"), []byte("old"))))
			}
			d := mustOpen(t, path)
			m := overwrite(t, d, 30, 50)
			before := int64(len(readFile(t, path)))
			res, err := d.Compact()
			if err != nil {
				t.Fatal(err)
			}
			after := readFile(t, path)
			if res.Before != before || res.After != int64(len(after)) || res.After >= before/5 || res.Pairs != len(m) || res.Carried != 0 {
				t.Fatalf("result %+v, file %d -> %d bytes", res, before, len(after))
			}
			if got := state(t, d); !reflect.DeepEqual(got, m.sorted()) {
				t.Fatalf("state after Compact: %d pairs, model %d", len(got), len(m))
			}
			// The file is the live pairs as set ops, in key order, in the file's layout.
			layout := format.LayoutV1
			if legacy {
				layout = format.LayoutLegacy
			}
			var pairs []kv
			records := 0
			off := layout.FirstRecord()
			if !legacy && !bytes.Equal(after[:format.FileHeaderSize], format.FileHeader[:]) {
				t.Fatal("no file header")
			}
			for off < int64(len(after)) {
				n := int64(format.DecodeV1Header(after[off:]).Length)
				if legacy {
					n = int64(format.DecodeLegacyHeader(after[off:]).Length)
				}
				payload := after[off+int64(layout.HeaderSize()) : off+int64(layout.HeaderSize())+n]
				ops, err := format.AppendOps(nil, payload)
				if err != nil {
					t.Fatal(err)
				}
				for _, op := range ops {
					if op.Kind != format.OpSet {
						t.Fatalf("a %v op in a compacted log", op.Kind)
					}
					pairs = append(pairs, kv{string(op.Key), string(op.Value)})
				}
				records++
				off += int64(layout.HeaderSize()) + n
			}
			if records != res.Records || !reflect.DeepEqual(pairs, m.sorted()) {
				t.Fatalf("%d records (%d reported), %d pairs", records, res.Records, len(pairs))
			}
			set(t, d, "after", "compaction")
			m["after"] = "compaction"
			d.Close()
			d = mustOpen(t, path)
			defer d.Close()
			if got := state(t, d); !reflect.DeepEqual(got, m.sorted()) || d.Truncation() != nil {
				t.Fatalf("reopened after Compact: %d pairs, model %d, %+v", len(got), len(m), d.Truncation())
			}
		})
	}
}

// Commits made while the snapshot is written are carried into the new log before the switch;
// readers keep reading.
func TestCompactCarriesConcurrentCommits(t *testing.T) {
	fs := simfs.New(1)
	d := mustOpen(t, "/db", db.WithFS(fs))
	m := overwrite(t, d, 10, 20)
	fs.OnSync("/db.compact", func() { // while the snapshot is being synced
		for i := range 5 {
			k := fmt.Sprintf("meanwhile%d", i)
			set(t, d, k, "x")
			m[k] = "x"
		}
		if got := state(t, d); len(got) != len(m) {
			t.Errorf("a reader during Compact: %d pairs", len(got))
		}
	})
	res, err := d.Compact()
	if err != nil {
		t.Fatal(err)
	}
	if res.Carried == 0 {
		t.Fatalf("nothing carried: %+v", res)
	}
	if fs.Exists("/db.compact") || !fs.Synced("/db") {
		t.Fatalf("after Compact: %v", fs.Paths())
	}
	d.Close()
	fs.Crash(simfs.TornTail)
	d = mustOpen(t, "/db", db.WithFS(fs))
	defer d.Close()
	if got := state(t, d); !reflect.DeepEqual(got, m.sorted()) || d.Truncation() != nil {
		t.Fatalf("after a crash: %d pairs, model %d", len(got), len(m))
	}
}

// A crash at every step of a compaction (creating the new file, each append, its fsync, the
// carry, the rename, the directory sync), in every crash mode: the reopened database is the
// model, from the old log or the new one, never a mix, nothing cut.
func TestCompactCrashAtEveryStep(t *testing.T) {
	base := simfs.New(7)
	d := mustOpen(t, "/db", db.WithFS(base))
	m := overwrite(t, d, 12, 30)
	d.Close()
	oldLog := base.Bytes("/db")

	// Count the steps on a copy.
	probe := base.Clone()
	d = mustOpen(t, "/db", db.WithFS(probe))
	c0 := probe.Counters()
	if _, err := d.Compact(); err != nil {
		t.Fatal(err)
	}
	steps := int(probe.Counters().Changes - c0.Changes)
	newLog := probe.Bytes("/db")
	d.Close()
	seen := map[string]int{}
	lastStep := map[string]int{} // the crash at the directory sync after the rename
	for k := 1; k <= steps+1; k++ {
		for i := range 12 {
			mode := []simfs.CrashMode{simfs.TornTail, simfs.ZeroTail, simfs.GarbageTail}[i%3]
			fs := base.Clone()
			for range i / 3 { // other seeded draws at the crash
				fs.Rand(2)
			}
			d := mustOpen(t, "/db", db.WithFS(fs))
			fs.CrashAtChange(k)
			_, err := d.Compact()
			if k <= steps && !errors.Is(err, simfs.ErrCrashed) {
				t.Fatalf("crash at step %d of %d: %v", k, steps, err)
			}
			d.Close()
			fs.ClearFaults()
			fs.Crash(mode)
			switch got := fs.Bytes("/db"); {
			case bytes.Equal(got, oldLog):
				seen["old"]++
				if k == steps {
					lastStep["old"]++
				}
			case bytes.Equal(got, newLog):
				seen["new"]++
				if k == steps {
					lastStep["new"]++
				}
			default:
				t.Fatalf("crash at step %d (%v): the log is neither the old one nor the new one (%d bytes)", k, mode, len(got))
			}
			d = mustOpen(t, "/db", db.WithFS(fs))
			if got := state(t, d); !reflect.DeepEqual(got, m.sorted()) || d.Truncation() != nil {
				t.Fatalf("crash at step %d (%v): %d pairs, model %d, %+v", k, mode, len(got), len(m), d.Truncation())
			}
			// Compacting again cleans up the leftover and works.
			if _, err := d.Compact(); err != nil {
				t.Fatal(err)
			}
			d.Close()
			if fs.Exists("/db.compact") {
				t.Fatal("a leftover new file after a second compaction")
			}
		}
	}
	if lastStep["old"] == 0 || lastStep["new"] == 0 {
		t.Fatalf("a crash before the directory sync after the rename kept %v, want both logs seen", lastStep)
	}
	t.Logf("%d steps x 3 modes x 4 draws: %v (crash at the directory sync: %v)", steps, seen, lastStep)
}

// WithAutoCompact: the log is compacted in the background once it outgrows the live data.
func TestAutoCompact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	var mu sync.Mutex
	var runs []db.CompactResult
	d := mustOpen(t, path, db.WithAutoCompact(4, func(r db.CompactResult, err error) {
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		runs = append(runs, r)
		mu.Unlock()
	}))
	m := overwrite(t, d, 60, 50)      // about 2.4 MiB of log for 0.1 MiB of live data
	if err := d.Close(); err != nil { // waits for a running compaction
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(runs) == 0 {
		t.Fatal("no automatic compaction")
	}
	for _, r := range runs {
		// The snapshot part (not what was committed meanwhile) is the live data, which the
		// trigger saw under a quarter of the log (2x leaves room for values that grew since).
		if r.Before < 1<<20 || (r.After-r.Carried)*2 > r.Before {
			t.Fatalf("an automatic compaction of a log within 4x its live data: %+v", r)
		}
	}
	d = mustOpen(t, path)
	defer d.Close()
	if got := state(t, d); !reflect.DeepEqual(got, m.sorted()) {
		t.Fatalf("after automatic compactions: %d pairs, model %d", len(got), len(m))
	}
	if _, err := db.Open(filepath.Join(t.TempDir(), "b.db"), db.WithAutoCompact(1, nil)); !errors.Is(err, recovery.ErrInvalidArgument) {
		t.Fatalf("WithAutoCompact(1): %v", err)
	}
}

// Compact of a read-only database, after Close, and inside an Update: typed errors.
func TestCompactErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "e.db")
	d := mustOpen(t, path)
	set(t, d, "a", "1")
	mustUpdate(t, d, func(*db.Tx) error {
		if _, err := d.Compact(); !errors.Is(err, db.ErrNested) {
			t.Errorf("Compact inside Update: %v", err)
		}
		return nil
	})
	d.Close()
	if _, err := d.Compact(); !errors.Is(err, db.ErrClosed) {
		t.Fatalf("Compact after Close: %v", err)
	}
	ro := mustOpen(t, path, db.ReadOnly())
	defer ro.Close()
	if _, err := ro.Compact(); !errors.Is(err, db.ErrReadOnly) {
		t.Fatalf("Compact read-only: %v", err)
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Every log the TypeScript kernel wrote, compacted: the same state the kernel reports, in the
// same layout (a legacy log stays legacy, so the kernel's older release still opens it).
func TestCompactKernelFixtures(t *testing.T) {
	dir, all := fixtures(t)
	for _, f := range all {
		t.Run(f.File, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), f.File)
			copyFile(t, filepath.Join(dir, f.File), path)
			d := mustOpen(t, path)
			layout := d.Recovery().Layout
			if _, err := d.Compact(); err != nil {
				t.Fatal(err)
			}
			d.Close()
			d = mustOpen(t, path, db.ReadOnly())
			defer d.Close()
			if got := state(t, d); !reflect.DeepEqual(got, f.state(t)) {
				t.Fatalf("compacted: %d pairs, the kernel reports %d", len(got), len(f.State))
			}
			if len(f.State) > 0 && d.Recovery().Layout != layout {
				t.Fatalf("layout %v, was %v", d.Recovery().Layout, layout)
			}
		})
	}
}

// Compactions back to back while writers commit (in groups) and readers read: nothing is lost,
// nothing is seen twice (run with -race).
func TestCompactConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cc.db")
	d := mustOpen(t, path)
	const writers, commits = 8, 60
	var wg sync.WaitGroup
	stop := make(chan struct{})
	compactions := 0
	var compactor sync.WaitGroup
	compactor.Go(func() {
		for { // at least one, whatever the timing
			if _, err := d.Compact(); err != nil {
				t.Error(err)
				return
			}
			compactions++
			select {
			case <-stop:
				return
			default:
			}
		}
	})
	for w := range writers {
		wg.Go(func() {
			for i := range commits {
				err := d.Update(func(tx *db.Tx) error {
					return tx.Set(fmt.Appendf(nil, "w%d/k%d", w, i%5), fmt.Appendf(nil, "%d", i))
				})
				if err != nil {
					t.Error(err)
					return
				}
				if i%10 == 0 {
					if got := state(t, d); len(got) > writers*5 {
						t.Errorf("a reader sees %d keys", len(got))
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	compactor.Wait()
	want := model{}
	for w := range writers {
		for i := commits - 5; i < commits; i++ {
			want[fmt.Sprintf("w%d/k%d", w, i%5)] = fmt.Sprint(i)
		}
	}
	if got := state(t, d); !reflect.DeepEqual(got, want.sorted()) {
		t.Fatalf("after concurrent compactions: %v", got)
	}
	d.Close()
	d = mustOpen(t, path)
	defer d.Close()
	if got := state(t, d); !reflect.DeepEqual(got, want.sorted()) || d.Truncation() != nil {
		t.Fatalf("reopened: %v", got)
	}
	if compactions == 0 {
		t.Fatal("no compaction ran")
	}
}

// Compaction streams the snapshot: what it allocates does not grow with the data (no second
// copy of the store, a bounded buffer).
func TestCompactMemoryBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	d := mustOpen(t, path)
	defer d.Close()
	val := bytes.Repeat([]byte("v"), 8<<10)
	for i := range 40 {
		mustUpdate(t, d, func(tx *db.Tx) error {
			for j := range 100 { // 4,000 pairs, 53 MiB live; values under and over bigValue
				v := val
				if j%10 == 0 {
					v = bytes.Repeat([]byte("w"), 64<<10)
				}
				if err := tx.Set(fmt.Appendf(nil, "%02d/%03d", i, j), v); err != nil {
					return err
				}
			}
			return nil
		})
	}
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	res, err := d.Compact()
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("compacting %d bytes (%d pairs) allocated %d bytes", res.After, res.Pairs, alloc)
	if alloc > 4<<20 || res.After < 50<<20 {
		t.Fatalf("compacting %d bytes allocated %d bytes", res.After, alloc)
	}
}
