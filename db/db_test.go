package db_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/format"
)

// The worked example of wal-format.md: a new database whose first transaction sets a = xy.
func TestWorkedExampleBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	if got := readFile(t, path); len(got) != 0 {
		t.Fatalf("open wrote %d bytes; the header goes with the first record", len(got))
	}
	set(t, d, "a", "xy")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0x4C, 0x52, 0x44, 0x42, 0x00, 0x01, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x0C, 0x28, 0xF2, 0x93, 0x37, 0xCC, 0xA0, 0x23, 0xC7,
		0x01, 0x00, 0x00, 0x00, 0x01, 0x61, 0x00, 0x00, 0x00, 0x02, 0x78, 0x79,
	}
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Fatalf("file\n% X\nwant\n% X", got, want)
	}
}

// A v1 file written by this database, reopened (at several parallelisms), equals its model;
// appends after a reopen continue the same file.
func TestRoundTripV1(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rt.db")
	rng := rand.New(rand.NewPCG(1, 2))
	m := model{}
	for round := range 4 {
		d := mustOpen(t, path, db.WithRecovery(recovery.WithParallelism(1+round%3)))
		if got := d.Recovery().Layout; round > 0 && got != recovery.LayoutV1 {
			t.Fatalf("layout %v", got)
		}
		if got, want := state(t, d), m.sorted(); !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: state %v, want %v", round, got, want)
		}
		for range 50 {
			mustUpdate(t, d, func(tx *db.Tx) error {
				for range 1 + rng.IntN(5) {
					k := fmt.Sprintf("k%02d", rng.IntN(40))
					if rng.IntN(4) == 0 {
						delete(m, k)
						if err := tx.Delete([]byte(k)); err != nil {
							return err
						}
						continue
					}
					v := string(bytes.Repeat([]byte{byte(rng.Uint32())}, rng.IntN(300)))
					m[k] = v
					if err := tx.Set([]byte(k), []byte(v)); err != nil {
						return err
					}
				}
				return nil
			})
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if b := readFile(t, path); !bytes.Equal(b[:8], format.FileHeader[:]) || bytes.Count(b, []byte("LRDB\x00\x01")) < 1 {
		t.Fatal("not a v1 file")
	}
}

// A legacy file (written here through format.AppendRecord) opens, and keeps appending in its
// own layout: 8-byte headers, no file header inserted.
func TestLegacyKeepsItsLayout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "legacy.db")
	var file []byte
	p1 := format.AppendSet(nil, []byte("alpha"), []byte("one"))
	p2 := format.AppendDelete(format.AppendSet(nil, []byte("beta"), []byte("two")), []byte("alpha"))
	file = format.AppendRecord(file, format.LayoutLegacy, p1)
	file = format.AppendRecord(file, format.LayoutLegacy, p2)
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, path)
	if got := d.Recovery().Layout; got != recovery.LayoutLegacy {
		t.Fatalf("layout %v", got)
	}
	if got, want := state(t, d), []kv{{"beta", "two"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("state %v, want %v", got, want)
	}
	set(t, d, "gamma", "three")
	d.Close()
	want := format.AppendRecord(file, format.LayoutLegacy, format.AppendSet(nil, []byte("gamma"), []byte("three")))
	if got := readFile(t, path); !bytes.Equal(got, want) {
		t.Fatalf("file\n% X\nwant\n% X", got, want)
	}
	d = mustOpen(t, path)
	defer d.Close()
	if got, want := state(t, d), []kv{{"beta", "two"}, {"gamma", "three"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("state %v, want %v", got, want)
	}
}

// Every kernel fixture opens to the state the kernel reports, both read-only in place (no
// lock, no write: the fixtures are read-only files) and read-write from a copy.
func TestKernelFixturesOpen(t *testing.T) {
	dir, all := fixtures(t)
	for _, fx := range all {
		t.Run(fx.File, func(t *testing.T) {
			src := filepath.Join(dir, fx.File)
			before := readFile(t, src)
			for _, p := range []int{1, 4} {
				d := mustOpen(t, src, db.ReadOnly(), db.WithRecovery(recovery.WithParallelism(p)))
				if got, want := state(t, d), fx.state(t); !reflect.DeepEqual(got, want) {
					t.Fatalf("parallelism %d: state %v\nwant %v", p, got, want)
				}
				res := d.Recovery()
				if res.Layout.String() != fx.Layout || res.Records != int64(len(fx.RecordOffsets)) || res.End != fx.Size || res.Truncation != nil {
					t.Fatalf("recovery %+v; fixture says %s, %d records, %d bytes", res, fx.Layout, len(fx.RecordOffsets), fx.Size)
				}
				d.Close()
			}
			if !bytes.Equal(readFile(t, src), before) {
				t.Fatal("a read-only open changed the fixture")
			}
			cp := filepath.Join(t.TempDir(), fx.File)
			copyFile(t, src, cp)
			d := mustOpen(t, cp)
			defer d.Close()
			if got, want := state(t, d), fx.state(t); !reflect.DeepEqual(got, want) {
				t.Fatalf("state %v\nwant %v", got, want)
			}
		})
	}
}

// The same transactions give the same bytes as the kernel: the fixtures' records, replayed as
// transactions through Update (one per record, ops in order), rebuild each file byte for byte.
// A legacy file starts from its first record (this database writes legacy only to a legacy
// file).
func TestKernelFixturesRewrittenByteIdentical(t *testing.T) {
	dir, all := fixtures(t)
	for _, fx := range all {
		t.Run(fx.File, func(t *testing.T) {
			want := readFile(t, filepath.Join(dir, fx.File))
			layout := format.LayoutV1
			if fx.Layout == "legacy" {
				layout = format.LayoutLegacy
			}
			path := filepath.Join(t.TempDir(), "w.db")
			offs := fx.RecordOffsets
			if layout == format.LayoutLegacy {
				if err := os.WriteFile(path, want[:offs[1]], 0o644); err != nil {
					t.Fatal(err)
				}
				offs = offs[1:]
			}
			d := mustOpen(t, path)
			for _, off := range offs {
				var payload []byte
				if layout == format.LayoutV1 {
					h := format.DecodeV1Header(want[off:])
					payload = want[off+format.V1HeaderSize : off+format.V1HeaderSize+int64(h.Length)]
				} else {
					h := format.DecodeLegacyHeader(want[off:])
					payload = want[off+format.LegacyHeaderSize : off+format.LegacyHeaderSize+int64(h.Length)]
				}
				mustUpdate(t, d, func(tx *db.Tx) error {
					for it := format.Iter(payload); it.Next(); {
						op := it.Op()
						var err error
						if op.Kind == format.OpSet {
							err = tx.Set(op.Key, op.Value)
						} else {
							err = tx.Delete(op.Key)
						}
						if err != nil {
							return err
						}
					}
					return nil
				})
			}
			if got, want := state(t, d), fx.state(t); !reflect.DeepEqual(got, want) {
				t.Fatalf("state %v\nwant %v", got, want)
			}
			d.Close()
			if got := readFile(t, path); !bytes.Equal(got, want) {
				t.Fatalf("file differs from the kernel's\n% X\nwant\n% X", got, want)
			}
		})
	}
}

// The two fixtures whose transactions are described in words, written by hand.
func TestKernelFixturesByHand(t *testing.T) {
	dir, all := fixtures(t)
	byName := map[string]fixture{}
	for _, fx := range all {
		byName[fx.File] = fx
	}
	t.Run("v1_clean_one_set", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a.db")
		d := mustOpen(t, path)
		set(t, d, "hello", "world")
		d.Close()
		if !bytes.Equal(readFile(t, path), readFile(t, filepath.Join(dir, "v1_clean_one_set.wal"))) {
			t.Fatal("set hello=world differs from the kernel's file")
		}
	})
	t.Run("v1_clean_reopen_append", func(t *testing.T) {
		// "Two commits, close, reopen (recovery), two more commits"; the ops read off its bytes.
		path := filepath.Join(t.TempDir(), "b.db")
		d := mustOpen(t, path)
		set(t, d, "one", "1")
		set(t, d, "two", "2")
		d.Close()
		d = mustOpen(t, path)
		mustUpdate(t, d, func(tx *db.Tx) error {
			tx.Set([]byte("three"), []byte("3"))
			return tx.Delete([]byte("one"))
		})
		set(t, d, "four", "4")
		if got, want := state(t, d), byName["v1_clean_reopen_append.wal"].state(t); !reflect.DeepEqual(got, want) {
			t.Fatalf("state %v, want %v", got, want)
		}
		d.Close()
		if !bytes.Equal(readFile(t, path), readFile(t, filepath.Join(dir, "v1_clean_reopen_append.wal"))) {
			t.Fatal("differs from the kernel's file")
		}
	})
	t.Run("legacy_then_kernel_append", func(t *testing.T) {
		// legacy_clean given one more commit: set 'india', delete 'bravo'.
		path := filepath.Join(t.TempDir(), "c.db")
		copyFile(t, filepath.Join(dir, "legacy_clean.wal"), path)
		var india []byte
		for _, p := range byName["legacy_then_kernel_append.wal"].state(t) {
			if p.K == "india" {
				india = []byte(p.V)
			}
		}
		d := mustOpen(t, path)
		mustUpdate(t, d, func(tx *db.Tx) error {
			tx.Set([]byte("india"), india)
			return tx.Delete([]byte("bravo"))
		})
		d.Close()
		if !bytes.Equal(readFile(t, path), readFile(t, filepath.Join(dir, "legacy_then_kernel_append.wal"))) {
			t.Fatal("differs from the kernel's file")
		}
	})
}

// Keys order by unsigned bytes; ranges are half-open; a nil end is unbounded.
func TestRangeOrder(t *testing.T) {
	d := mustOpen(t, filepath.Join(t.TempDir(), "r.db"))
	defer d.Close()
	keys := []string{"\xff", "", "a", "\x00", "a\x00", "ab", "\xff\xff", "b", "\x7f", "\x80"}
	mustUpdate(t, d, func(tx *db.Tx) error {
		for _, k := range keys {
			tx.Set([]byte(k), []byte("v"+k))
		}
		return nil
	})
	rng := func(start, end []byte) (out []string) {
		d.View(func(tx *db.Tx) error {
			for k, v := range tx.Range(start, end) {
				if string(v) != "v"+string(k) {
					t.Fatalf("value of %q is %q", k, v)
				}
				out = append(out, string(k))
			}
			return nil
		})
		return out
	}
	all := []string{"", "\x00", "a", "a\x00", "ab", "b", "\x7f", "\x80", "\xff", "\xff\xff"}
	if got := rng(nil, nil); !reflect.DeepEqual(got, all) {
		t.Fatalf("full scan %q", got)
	}
	if got, want := rng([]byte("a"), []byte("b")), []string{"a", "a\x00", "ab"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("[a,b) = %q", got)
	}
	if got, want := rng([]byte("a\x00"), []byte("\xff")), []string{"a\x00", "ab", "b", "\x7f", "\x80"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("[a 0x00, 0xff) = %q", got)
	}
	if got, want := rng([]byte("\x80"), nil), []string{"\x80", "\xff", "\xff\xff"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("[0x80, nil) = %q", got)
	}
	if got := rng([]byte("b"), []byte("a")); len(got) != 0 {
		t.Fatalf("[b,a) = %q", got)
	}
	if got := rng([]byte{}, []byte{}); len(got) != 0 {
		t.Fatalf("[\"\",\"\") = %q", got)
	}
	// Early break.
	n := 0
	d.View(func(tx *db.Tx) error {
		for range tx.Range(nil, nil) {
			if n++; n == 3 {
				break
			}
		}
		return nil
	})
	if n != 3 {
		t.Fatal("break")
	}
}

// Buffers crossing the API are not aliased, in either direction.
func TestNoAliasing(t *testing.T) {
	d := mustOpen(t, filepath.Join(t.TempDir(), "n.db"))
	defer d.Close()
	k, v := []byte("key"), []byte("value")
	mustUpdate(t, d, func(tx *db.Tx) error {
		tx.Set(k, v)
		k[0], v[0] = 'X', 'X' // the caller reuses its buffers, inside the transaction...
		got, _ := tx.Get([]byte("key"))
		got[1] = 'X' // ...and mutates what it got back
		return nil
	})
	k[1], v[1] = 'Y', 'Y' // and after it
	d.View(func(tx *db.Tx) error {
		got, ok := tx.Get([]byte("key"))
		if !ok || string(got) != "value" {
			t.Fatalf("Get = %q, %v", got, ok)
		}
		got[0] = 'Z'
		for k, v := range tx.Range(nil, nil) {
			k[0], v[0] = 'Z', 'Z'
			v = append(v, "more"...) // must not grow into anything
		}
		return nil
	})
	if got := state(t, d); !reflect.DeepEqual(got, []kv{{"key", "value"}}) {
		t.Fatalf("state %v", got)
	}
}

// Read-your-writes inside Update; an error or a panic applies nothing and writes nothing.
func TestTransactionSemantics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	d := mustOpen(t, path)
	defer d.Close()
	set(t, d, "a", "1")
	size := len(readFile(t, path))
	boom := errors.New("boom")
	err := d.Update(func(tx *db.Tx) error {
		tx.Set([]byte("b"), []byte("2"))
		tx.Delete([]byte("a"))
		if v, ok := tx.Get([]byte("b")); !ok || string(v) != "2" {
			t.Fatalf("read-your-writes: %q %v", v, ok)
		}
		if _, ok := tx.Get([]byte("a")); ok {
			t.Fatal("a deleted in this transaction is still visible")
		}
		var keys []string
		for k := range tx.Range(nil, nil) {
			keys = append(keys, string(k))
			tx.Set([]byte("c"+string(k)), nil) // writing during the loop does not disturb it
		}
		if !reflect.DeepEqual(keys, []string{"b"}) {
			t.Fatalf("range in tx: %q", keys)
		}
		if tx.Len() != 2 {
			t.Fatalf("Len %d", tx.Len())
		}
		return boom
	})
	if err != boom {
		t.Fatalf("Update returned %v, want the function's error", err)
	}
	func() {
		defer func() { recover() }()
		d.Update(func(tx *db.Tx) error {
			tx.Set([]byte("p"), []byte("panic"))
			panic("in fn")
		})
	}()
	if err := d.Update(func(tx *db.Tx) error { return nil }); err != nil { // empty: writes nothing
		t.Fatal(err)
	}
	if err := d.Update(func(tx *db.Tx) error { _, _ = tx.Get([]byte("a")); return nil }); err != nil {
		t.Fatal(err)
	}
	if got := len(readFile(t, path)); got != size {
		t.Fatalf("file grew from %d to %d bytes without a commit", size, got)
	}
	if got := state(t, d); !reflect.DeepEqual(got, []kv{{"a", "1"}}) {
		t.Fatalf("state %v", got)
	}
	// Empty key and empty value are ordinary: present, empty, non-nil.
	set(t, d, "", "")
	d.View(func(tx *db.Tx) error {
		v, ok := tx.Get(nil)
		if !ok || v == nil || len(v) != 0 {
			t.Fatalf("Get(empty) = %v %v", v, ok)
		}
		if err := tx.Set([]byte("x"), nil); !errors.Is(err, db.ErrReadOnly) {
			t.Fatalf("Set in View: %v", err)
		}
		return nil
	})
	// A Tx used after its Update or View returned: every method, one behaviour, a typed error.
	var kept, view *db.Tx
	d.Update(func(tx *db.Tx) error { kept = tx; return nil })
	d.View(func(tx *db.Tx) error { view = tx; return nil })
	for name, use := range map[string]func(*db.Tx){
		"Set":    func(tx *db.Tx) { tx.Set([]byte("late"), nil) },
		"Delete": func(tx *db.Tx) { tx.Delete([]byte("a")) },
		"Get":    func(tx *db.Tx) { tx.Get([]byte("a")) },
		"Len":    func(tx *db.Tx) { tx.Len() },
		"Range": func(tx *db.Tx) {
			for range tx.Range(nil, nil) {
			}
		},
	} {
		for _, tx := range []*db.Tx{kept, view} {
			func() {
				defer func() {
					err, _ := recover().(error)
					if !errors.Is(err, db.ErrClosed) || db.CodeOf(err) != "CLOSED" {
						t.Fatalf("%s on an ended Tx (writable %v): %v, want a CLOSED *db.Error", name, tx.Writable(), err)
					}
				}()
				use(tx)
			}()
		}
	}
}

// Update or Close from inside an Update's function: a typed error, not a wait forever.
func TestNested(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.db")
	d := mustOpen(t, path)
	err := d.Update(func(tx *db.Tx) error {
		if err := d.Close(); !errors.Is(err, db.ErrNested) || db.CodeOf(err) != "NESTED" {
			t.Errorf("Close inside Update: %v", err)
		}
		if err := d.Update(func(*db.Tx) error { return nil }); !errors.Is(err, db.ErrNested) {
			t.Errorf("Update inside Update: %v", err)
		}
		return tx.Set([]byte("k"), []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	// Close from another goroutine still waits for the running Update, then closes.
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		done <- d.Update(func(tx *db.Tx) error {
			close(inside)
			<-release
			return tx.Set([]byte("k2"), nil)
		})
	}()
	<-inside
	closed := make(chan error)
	go func() { closed <- d.Close() }()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	d = mustOpen(t, path)
	defer d.Close()
	if got := state(t, d); !reflect.DeepEqual(got, []kv{{"k", "v"}, {"k2", ""}}) {
		t.Fatalf("state %v", got)
	}
}

// A View keeps the snapshot it began with while commits go on.
func TestSnapshotIsolation(t *testing.T) {
	d := mustOpen(t, filepath.Join(t.TempDir(), "s.db"))
	defer d.Close()
	set(t, d, "a", "1")
	started, committed, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- d.View(func(tx *db.Tx) error {
			close(started)
			<-committed
			if v, _ := tx.Get([]byte("a")); string(v) != "1" {
				return fmt.Errorf("view saw %q after a later commit", v)
			}
			n := 0
			for range tx.Range(nil, nil) {
				n++
			}
			if n != 1 {
				return fmt.Errorf("view saw %d keys", n)
			}
			return nil
		})
	}()
	<-started
	mustUpdate(t, d, func(tx *db.Tx) error {
		tx.Set([]byte("a"), []byte("2"))
		return tx.Set([]byte("b"), []byte("2"))
	})
	close(committed)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestTxTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.db")
	d := mustOpen(t, path, db.WithMaxRecordSize(100))
	defer d.Close()
	err := d.Update(func(tx *db.Tx) error {
		if err := tx.Set([]byte("k"), make([]byte, 80)); err != nil {
			return err
		}
		tx.Set([]byte("k2"), make([]byte, 80)) // ignored error: still fails the commit
		return nil
	})
	if !errors.Is(err, db.ErrTxTooLarge) || db.CodeOf(err) != "TX_TOO_LARGE" {
		t.Fatalf("got %v", err)
	}
	if len(readFile(t, path)) != 0 {
		t.Fatal("a refused transaction wrote something")
	}
	set(t, d, "k", string(make([]byte, 90))) // exactly 100 bytes of payload: fits
	d.Close()
	d = mustOpen(t, path, db.WithMaxRecordSize(100))
	if d.Recovery().LargestRecord != 100 {
		t.Fatalf("largest record %d", d.Recovery().LargestRecord)
	}
}

func TestLockedAndReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l.db")
	d := mustOpen(t, path)
	set(t, d, "a", "1")
	_, err := db.Open(path)
	if !errors.Is(err, db.ErrLocked) || db.CodeOf(err) != "LOCKED" {
		t.Fatalf("second writer: %v", err)
	}
	t.Log(err)
	ro := mustOpen(t, path, db.ReadOnly()) // no lock: fine beside the writer
	if got := state(t, ro); !reflect.DeepEqual(got, []kv{{"a", "1"}}) {
		t.Fatalf("read-only state %v", got)
	}
	if err := ro.Update(func(*db.Tx) error { return nil }); !errors.Is(err, db.ErrReadOnly) {
		t.Fatalf("Update on read-only: %v", err)
	}
	ro.Close()
	d.Close()
	d = mustOpen(t, path) // the lock went with Close
	d.Close()

	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, err := db.Open(missing, db.ReadOnly()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of a missing file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a read-only open created the file")
	}
}

// A torn tail: a read-only open reports it and writes nothing; a writable open copies the cut
// bytes to the sidecar, cuts, reports; the next cut at the same offset never overwrites it.
func TestTornTailSidecar(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "torn.db")
	d := mustOpen(t, path)
	set(t, d, "a", "1")
	d.Close()
	good := readFile(t, path)
	torn := append(bytes.Clone(good), format.AppendRecord(nil, format.LayoutV1, format.AppendSet(nil, []byte("b"), []byte("2")))[:9]...)
	os.WriteFile(path, torn, 0o644)

	var reports []db.TruncationReport
	ro := mustOpen(t, path, db.ReadOnly(), db.OnTruncate(func(r db.TruncationReport) { reports = append(reports, r) }))
	ro.Close()
	if len(reports) != 1 || reports[0].Truncated || reports[0].Sidecar != "" || reports[0].Offset != int64(len(good)) {
		t.Fatalf("read-only reports %+v", reports)
	}
	if !bytes.Equal(readFile(t, path), torn) {
		t.Fatal("a read-only open changed the file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("read-only open left files: %v", entries)
	}

	// The same crash twice keeps one sidecar (identical bytes are one file); different bytes
	// cut at the same offset get the next name.
	torn2 := append(bytes.Clone(good), format.AppendRecord(nil, format.LayoutV1, format.AppendSet(nil, []byte("c"), []byte("3")))[:9]...)
	base := fmt.Sprintf("%s.cut-%d", path, len(good))
	for i, wantName := range []string{base, base, base + ".1", base} {
		if i == 2 {
			torn = torn2
			os.WriteFile(path, torn, 0o644)
		}
		if i == 3 {
			torn = append(bytes.Clone(good), format.AppendRecord(nil, format.LayoutV1, format.AppendSet(nil, []byte("b"), []byte("2")))[:9]...)
			os.WriteFile(path, torn, 0o644)
		}
		reports = nil
		d = mustOpen(t, path, db.OnTruncate(func(r db.TruncationReport) { reports = append(reports, r) }))
		if len(reports) != 1 {
			t.Fatalf("round %d: %d reports", i, len(reports))
		}
		r := reports[0]
		if !r.Truncated || r.Sidecar != wantName || r.Reason != recovery.ReasonTornTail || r.Offset != int64(len(good)) || r.Bytes != 9 || r.Path != path {
			t.Fatalf("round %d: report %+v", i, r)
		}
		if *d.Truncation() != r {
			t.Fatal("Truncation() differs from the report")
		}
		if got := readFile(t, r.Sidecar); !bytes.Equal(got, torn[len(good):]) {
			t.Fatalf("sidecar holds % X, want the cut bytes % X", got, torn[len(good):])
		}
		if got := state(t, d); !reflect.DeepEqual(got, []kv{{"a", "1"}}) {
			t.Fatalf("state %v", got)
		}
		d.Close()
		if !bytes.Equal(readFile(t, path), good) {
			t.Fatal("file not cut back to its last good record")
		}
		os.WriteFile(path, torn, 0o644) // the same crash again
	}
	if list, err := db.Sidecars(path); err != nil || len(list) != 2 || list[0].Path != base || list[1].Path != base+".1" || list[0].Size != 9 || list[0].Offset != int64(len(good)) || list[0].Partial {
		t.Fatalf("Sidecars: %+v %v", list, err)
	}

	os.Remove(path + fmt.Sprintf(".cut-%d", len(good)))
	os.Remove(path + fmt.Sprintf(".cut-%d.1", len(good)))
	d = mustOpen(t, path, db.WithoutSidecar(), db.OnTruncate(func(r db.TruncationReport) { reports = append(reports, r) }))
	d.Close()
	if r := reports[len(reports)-1]; !r.Truncated || r.Sidecar != "" {
		t.Fatalf("WithoutSidecar report %+v", r)
	}
	if _, err := os.Stat(path + fmt.Sprintf(".cut-%d", len(good))); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("WithoutSidecar wrote a sidecar")
	}
}

// A torn file header (a crash during the first commit) is cut to nothing; the next commit
// writes the header again, with its record, in one append.
func TestTornFileHeader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "h.db")
	os.WriteFile(path, []byte("LRD"), 0o644)
	d := mustOpen(t, path)
	if tr := d.Truncation(); tr == nil || tr.Reason != recovery.ReasonTornHeader || tr.Offset != 0 || tr.Bytes != 3 {
		t.Fatalf("truncation %+v", tr)
	}
	if got := readFile(t, path+".cut-0"); string(got) != "LRD" {
		t.Fatalf("sidecar %q", got)
	}
	set(t, d, "a", "xy")
	d.Close()
	if got := readFile(t, path); len(got) != 32 || !bytes.Equal(got[:8], format.FileHeader[:]) {
		t.Fatalf("file % X", got)
	}
}

// Corruption with evidence behind it refuses, typed, and touches nothing.
func TestCorruptRefusesUntouched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	d := mustOpen(t, path)
	set(t, d, "a", "1")
	set(t, d, "b", "2")
	d.Close()
	b := readFile(t, path)
	b[8+12+3] ^= 0x40 // a payload byte of the first record
	os.WriteFile(path, b, 0o644)
	for _, p := range []int{1, 4} {
		_, err := db.Open(path, db.WithRecovery(recovery.WithParallelism(p))) // the second would be LOCKED if the first kept its lock
		if !errors.Is(err, recovery.ErrCorruptWAL) || db.CodeOf(err) != "CORRUPT_WAL" {
			t.Fatalf("parallelism %d: %v", p, err)
		}
		var re *recovery.Error
		if !errors.As(err, &re) || re.Offset != 8 {
			t.Fatalf("offset: %v", err)
		}
	}
	if !bytes.Equal(readFile(t, path), b) {
		t.Fatal("file changed")
	}
}

func TestOpenOptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "o.db")
	d := mustOpen(t, path)
	set(t, d, "a", "1")
	for i := range 64 { // several read-size chunks: a one-chunk log runs the plain loop
		set(t, d, fmt.Sprint(i), strings.Repeat("v", 1000))
	}
	d.Close()
	d = mustOpen(t, path, db.WithRecovery(recovery.WithParallelism(3), recovery.WithReadSize(4<<10)))
	if p := d.Recovery().Parallelism; p != 3 {
		t.Fatalf("parallelism %d", p)
	}
	d.Close()
	if _, err := db.Open(path, db.WithRecovery(recovery.WithParallelism(-1))); !errors.Is(err, recovery.ErrInvalidArgument) {
		t.Fatalf("bad option: %v", err)
	}
	// The database's own settings through WithRecovery are refused at Open, before anything
	// is read or cut (recovery.ReadOnly would leave a tail to be buried mid-log by the next
	// append; a record limit other than the writer's could make a commit unopenable).
	os.WriteFile(path, append(readFile(t, path), 0, 0, 0), 0o644)
	before := readFile(t, path)
	for _, opt := range []recovery.Option{
		recovery.ReadOnly(),
		recovery.WithMaxRecordSize(1 << 20),
		recovery.WithBeforeTruncate(func(recovery.Truncation) error { return nil }),
		recovery.WithPrepare(recovery.PrepareFunc(func(recovery.Record, []uint64) []uint64 { return nil })),
	} {
		_, err := db.Open(path, db.WithRecovery(recovery.WithParallelism(2), opt))
		if !errors.Is(err, recovery.ErrInvalidArgument) || !strings.Contains(err.Error(), "recovery.") {
			t.Fatalf("a setting the database owns, through WithRecovery: %v", err)
		}
	}
	if !bytes.Equal(readFile(t, path), before) {
		t.Fatal("a refused open changed the file")
	}
}

func TestClosed(t *testing.T) {
	d := mustOpen(t, filepath.Join(t.TempDir(), "x.db"))
	d.Close()
	if err := d.Update(func(*db.Tx) error { return nil }); !errors.Is(err, db.ErrClosed) || db.CodeOf(err) != "CLOSED" {
		t.Fatalf("Update: %v", err)
	}
	if err := d.View(func(*db.Tx) error { return nil }); !errors.Is(err, db.ErrClosed) {
		t.Fatalf("View: %v", err)
	}
	if err := d.Close(); !errors.Is(err, db.ErrClosed) {
		t.Fatalf("Close twice: %v", err)
	}
}
