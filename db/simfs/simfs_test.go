package simfs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"sync"
	"syscall"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
	"github.com/streamwal/recovery/walerr"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t *testing.T, s *simfs.FS, path string, mode db.OpenMode) db.File {
	t.Helper()
	f, err := s.OpenFile(path, mode)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// durable: synced bytes survive every crash mode; pending bytes are torn, zeroed or garbled.
func TestCrashModes(t *testing.T) {
	durable := []byte("synced bytes")
	pending := bytes.Repeat([]byte("p"), 100)
	for _, mode := range []simfs.CrashMode{simfs.TornTail, simfs.ZeroTail, simfs.GarbageTail} {
		seen := map[int64]bool{}
		for seed := range uint64(64) {
			s := simfs.New(seed)
			f := open(t, s, "/f", db.OpenReadWrite)
			must(t, s.SyncDir("/"))
			must(t, f.Append(durable))
			must(t, f.Sync())
			must(t, f.Append(pending))
			reps := s.Crash(mode)
			if len(reps) != 1 || reps[0].Pending != 100 || reps[0].Durable != int64(len(durable)) {
				t.Fatalf("%v: report %+v", mode, reps)
			}
			got := s.Bytes("/f")
			kept := reps[0].Kept
			seen[kept] = true
			if !bytes.Equal(got[:len(durable)], durable) || int64(len(got)) != int64(len(durable))+kept {
				t.Fatalf("%v: file %q, kept %d", mode, got, kept)
			}
			tail := got[len(durable):]
			switch mode {
			case simfs.TornTail:
				if !bytes.Equal(tail, pending[:kept]) {
					t.Fatalf("torn tail is not a prefix: %q", tail)
				}
			case simfs.ZeroTail:
				if kept != 100 || !bytes.Equal(tail, make([]byte, 100)) {
					t.Fatalf("zero tail: %q", tail)
				}
			case simfs.GarbageTail:
				if kept != 100 || bytes.Equal(tail, pending) || bytes.Equal(tail, make([]byte, 100)) {
					t.Fatalf("garbage tail: %q", tail)
				}
			}
			if d, p := s.Durable("/f"); p != 0 || d != int64(len(got)) {
				t.Fatalf("after a crash everything left is durable: %d %d", d, p)
			}
			if _, err := f.ReadAt(make([]byte, 1), 0); !errors.Is(err, simfs.ErrCrashed) {
				t.Fatalf("a handle from before the crash: %v", err)
			}
		}
		if mode == simfs.TornTail && (!seen[0] || !seen[100] || len(seen) < 10) {
			t.Fatalf("torn lengths over 64 seeds: %v", seen)
		}
	}
}

func TestReadFaults(t *testing.T) {
	s := simfs.New(1)
	s.WriteFile("/f", []byte("0123456789"))
	f := open(t, s, "/f", db.OpenReadOnly)
	buf := make([]byte, 10)

	s.ShortReads("/f", 6)
	if n, err := f.ReadAt(buf, 2); n != 4 || err != io.EOF {
		t.Fatalf("short read: %d %v", n, err)
	}
	if n, err := f.ReadAt(buf[:3], 0); n != 3 || err != nil { // does not cover byte 6
		t.Fatalf("read before the short point: %d %v", n, err)
	}
	if err := walerr.ReadFull(f, buf, 0); !errors.Is(err, walerr.ErrIncompleteRead) {
		t.Fatalf("ReadFull through a short read: %v", err)
	}
	s.ClearFaults()

	s.FailReads("/f", 3)
	if n, err := f.ReadAt(buf, 0); n != 3 || !errors.Is(err, simfs.ErrInjected) || !errors.Is(err, syscall.EIO) {
		t.Fatalf("failed read: %d %v", n, err)
	}
	s.ClearFaults()

	s.ChunkReads(3)
	if n, err := f.ReadAt(buf, 0); n < 1 || n > 3 || err != nil {
		t.Fatalf("chunked read: %d %v", n, err)
	}
	clear(buf)
	if err := walerr.ReadFull(f, buf, 0); err != nil || string(buf) != "0123456789" {
		t.Fatalf("ReadFull through chunks: %q %v", buf, err)
	}
	s.ClearFaults()
	if n, err := f.ReadAt(buf, 0); n != 10 || err != nil {
		t.Fatalf("clean read: %d %v", n, err)
	}
	if n, err := f.ReadAt(make([]byte, 20), 5); n != 5 || err != io.EOF {
		t.Fatalf("read past the end: %d %v", n, err)
	}
	c := s.Counters()
	if c.ShortReads != 2 || c.ReadFaults != 1 || c.ChunkedReads < 2 {
		t.Fatalf("counters %+v", c)
	}
}

func TestWriteFaults(t *testing.T) {
	s := simfs.New(2)
	f := open(t, s, "/f", db.OpenReadWrite)
	s.FailAppend("/f", 2)
	must(t, f.Append([]byte("first")))
	if err := f.Append([]byte("second")); !errors.Is(err, simfs.ErrInjected) {
		t.Fatalf("second append: %v", err)
	}
	if got := string(s.Bytes("/f")); len(got) < 5 || len(got) >= 11 || got[:5] != "first" || got[5:] != "second"[:len(got)-5] {
		t.Fatalf("after a failed append: %q (want a strict prefix of it)", got)
	}
	must(t, f.Append([]byte("third"))) // one-shot

	s.FailSync("/f", 1)
	if err := f.Sync(); !errors.Is(err, simfs.ErrInjected) {
		t.Fatalf("sync: %v", err)
	}
	if d, _ := s.Durable("/f"); d != 0 {
		t.Fatalf("a failed sync made %d bytes durable", d)
	}
	must(t, f.Sync())

	must(t, f.Append([]byte("more")))
	s.CrashOnSync("/f", 1)
	if err := f.Sync(); !errors.Is(err, simfs.ErrCrashed) {
		t.Fatalf("crash on sync: %v", err)
	}
	if _, err := s.OpenFile("/g", db.OpenReadWrite); !errors.Is(err, simfs.ErrCrashed) {
		t.Fatalf("open while down: %v", err)
	}
	s.Crash(simfs.TornTail)
	c := s.Counters()
	if c.AppendFaults != 1 || c.SyncFaults != 1 || c.Crashes != 1 {
		t.Fatalf("counters %+v", c)
	}
}

func TestOpenModesAndLock(t *testing.T) {
	s := simfs.New(3)
	if _, err := s.OpenFile("/f", db.OpenReadOnly); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read-only open of a missing file: %v", err)
	}
	a := open(t, s, "/f", db.OpenReadWrite)
	if _, err := s.OpenFile("/f", db.OpenCreateNew); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("create-new of an existing file: %v", err)
	}
	b := open(t, s, "/f", db.OpenReadWrite)
	must(t, a.Lock())
	if err := b.Lock(); !errors.Is(err, db.ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	must(t, a.Close())
	must(t, b.Lock())
	ro := open(t, s, "/f", db.OpenReadOnly)
	if err := ro.Append([]byte("x")); !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("append through a read-only handle: %v", err)
	}
}

// Clones share nothing and make the same seeded choices.
func TestCloneIsIndependentAndDeterministic(t *testing.T) {
	s := simfs.New(4)
	f := open(t, s, "/f", db.OpenReadWrite)
	must(t, s.SyncDir("/"))
	must(t, f.Append(bytes.Repeat([]byte("x"), 1000)))
	c1, c2 := s.Clone(), s.Clone()
	r1, r2 := c1.Crash(simfs.TornTail), c2.Crash(simfs.TornTail)
	if r1[0] != r2[0] || !bytes.Equal(c1.Bytes("/f"), c2.Bytes("/f")) {
		t.Fatalf("clones crashed differently: %+v %+v", r1, r2)
	}
	if len(s.Bytes("/f")) != 1000 {
		t.Fatal("crashing a clone changed the original")
	}
	v := s.Versions()["/f"]
	must(t, f.Append([]byte("y")))
	if s.Versions()["/f"] == v || c1.Versions()["/f"] == s.Versions()["/f"] {
		t.Fatal("versions do not track changes")
	}
}

// ReadAt is safe from many goroutines at once, faults and all (run with -race).
func TestConcurrentReads(t *testing.T) {
	s := simfs.New(5)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	s.WriteFile("/f", data)
	s.ChunkReads(100)
	f := open(t, s, "/f", db.OpenReadOnly)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 5000)
			for i := range 50 {
				off := int64((g*977 + i*131) % (len(data) - len(buf)))
				if err := walerr.ReadFull(f, buf, off); err != nil || !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
					t.Errorf("read at %d: %v", off, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// A name is durable once its directory is synced: before that, a crash may take a created
// file away (its synced bytes with it), undo a removal, or undo a rename; in order.
func TestDirectoryEntries(t *testing.T) {
	seen := map[string]int{}
	for seed := range uint64(64) {
		s := simfs.New(seed)
		s.WriteFile("/d/old", []byte("old"))
		f := open(t, s, "/d/new", db.OpenCreateNew)
		must(t, f.Append([]byte("synced")))
		must(t, f.Sync())
		if s.Synced("/d/new") {
			t.Fatal("a created file counts as synced before its directory is")
		}
		must(t, s.Rename("/d/new", "/d/old")) // replaces
		if names, err := s.ReadDir("/d"); err != nil || len(names) != 1 || names[0] != "old" {
			t.Fatalf("ReadDir: %v %v", names, err)
		}
		s.Crash(simfs.TornTail)
		got := string(s.Bytes("/d/old"))
		switch {
		case got == "synced" && !s.Exists("/d/new"):
			seen["renamed"]++
		case got == "old" && s.Exists("/d/new") && string(s.Bytes("/d/new")) == "synced":
			seen["created"]++
		case got == "old" && !s.Exists("/d/new"):
			seen["nothing"]++
		default:
			t.Fatalf("seed %d: after the crash /d/old=%q, /d/new exists %v", seed, got, s.Exists("/d/new"))
		}
	}
	if len(seen) != 3 {
		t.Fatalf("outcomes over 64 seeds: %v", seen)
	}
	// Synced, the directory keeps them all.
	s := simfs.New(1)
	f := open(t, s, "/d/a", db.OpenCreateNew)
	must(t, f.Append([]byte("a")))
	must(t, f.Sync())
	must(t, s.SyncDir("/d"))
	if !s.Synced("/d/a") {
		t.Fatal("not synced after fsync and SyncDir")
	}
	must(t, s.Remove("/d/a"))
	must(t, s.SyncDir("/d"))
	s.Crash(simfs.TornTail)
	if s.Exists("/d/a") {
		t.Fatal("a synced removal came back")
	}
}

// A truncation is durable once the file is synced: before that a crash may undo it.
func TestTruncationNeedsSync(t *testing.T) {
	seen := map[bool]int{}
	for seed := range uint64(32) {
		s := simfs.New(seed)
		s.WriteFile("/f", []byte("0123456789"))
		f := open(t, s, "/f", db.OpenReadWrite)
		must(t, f.Truncate(4))
		if d, p := s.Durable("/f"); d != 10 || p != -6 {
			t.Fatalf("an unsynced truncation: durable %d pending %d", d, p)
		}
		reps := s.Crash(simfs.TornTail)
		got := string(s.Bytes("/f"))
		if got != "0123" && got != "0123456789" || len(reps) != 1 || reps[0].Untruncated != (got != "0123") {
			t.Fatalf("seed %d: %q %+v", seed, got, reps)
		}
		seen[got == "0123"]++
	}
	if len(seen) != 2 {
		t.Fatalf("outcomes: %v", seen)
	}
	s := simfs.New(1)
	s.WriteFile("/f", []byte("0123456789"))
	f := open(t, s, "/f", db.OpenReadWrite)
	must(t, f.Truncate(4))
	must(t, f.Sync())
	s.Crash(simfs.TornTail)
	if got := string(s.Bytes("/f")); got != "0123" {
		t.Fatalf("a synced truncation: %q", got)
	}
}

// A failed fsync loses the pages it should have written, as Linux does: reads still see
// them, a later fsync succeeds, and after a crash the disk has zeros there.
func TestFailedSyncLosesData(t *testing.T) {
	s := simfs.New(1)
	s.WriteFile("/f", []byte("durable"))
	f := open(t, s, "/f", db.OpenReadWrite)
	must(t, f.Append([]byte("LOST")))
	s.FailSync("/f", 1)
	if err := f.Sync(); !errors.Is(err, simfs.ErrInjected) {
		t.Fatal(err)
	}
	if got := string(s.Bytes("/f")); got != "durableLOST" {
		t.Fatalf("the page cache: %q", got)
	}
	must(t, f.Sync()) // the error was reported once
	must(t, f.Append([]byte("next")))
	must(t, f.Sync())
	s.Crash(simfs.TornTail)
	if got := s.Bytes("/f"); string(got) != "durable\x00\x00\x00\x00next" {
		t.Fatalf("after the crash: %q", got)
	}
	// Truncating the lost bytes away and syncing is what saves the file.
	s = simfs.New(1)
	s.WriteFile("/f", []byte("durable"))
	f = open(t, s, "/f", db.OpenReadWrite)
	must(t, f.Append([]byte("LOST")))
	s.FailSync("/f", 1)
	f.Sync()
	must(t, f.Truncate(7))
	must(t, f.Sync())
	s.Crash(simfs.ZeroTail)
	if got := string(s.Bytes("/f")); got != "durable" {
		t.Fatalf("after cutting back: %q", got)
	}
}

// A full disk: an append writes what fits and fails with ENOSPC; truncating frees space.
func TestNoSpace(t *testing.T) {
	s := simfs.New(1)
	s.SetCapacity(10)
	f := open(t, s, "/f", db.OpenReadWrite)
	must(t, f.Append([]byte("0123")))
	if err := f.Append([]byte("456789abc")); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("append past the capacity: %v", err)
	}
	if got := string(s.Bytes("/f")); got != "0123456789" || s.Used() != 10 {
		t.Fatalf("after ENOSPC: %q", got)
	}
	must(t, f.Truncate(4))
	must(t, f.Append([]byte("xy")))
	if c := s.Counters(); c.NoSpace != 1 {
		t.Fatalf("counters %+v", c)
	}
}

// CrashAtChange: the k-th change of any kind does not happen, and the machine is down.
func TestCrashAtChange(t *testing.T) {
	s := simfs.New(1)
	f := open(t, s, "/f", db.OpenReadWrite) // change 1 (creation)
	s.CrashAtChange(3)
	must(t, f.Append([]byte("a"))) // 1
	must(t, f.Sync())              // 2
	if err := s.SyncDir("/"); !errors.Is(err, simfs.ErrCrashed) {
		t.Fatalf("the third change: %v", err)
	}
	if _, err := f.Size(); !errors.Is(err, simfs.ErrCrashed) {
		t.Fatalf("after going down: %v", err)
	}
	if c := s.Counters(); c.SyncDirs != 0 || c.Changes != 4 {
		t.Fatalf("counters %+v", c)
	}
	s.Crash(simfs.TornTail)
	if _, err := s.OpenFile("/g", db.OpenCreateNew); err != nil {
		t.Fatalf("after the crash: %v", err)
	}
}
