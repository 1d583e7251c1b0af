//go:build unix

package db_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
)

// hookFS runs beforeLock before every Lock of a file it opened (not of files it creates like
// another), so that a test can rewrite the database between an opener's open and its lock.
type hookFS struct {
	db.FS
	beforeLock func()
}

func (h hookFS) OpenFile(path string, mode db.OpenMode) (db.File, error) {
	f, err := h.FS.OpenFile(path, mode)
	if err != nil {
		return nil, err
	}
	return hookFile{File: f, before: h.beforeLock}, nil
}

type hookFile struct {
	db.File
	before func()
}

func (f hookFile) Lock() error {
	if f.before != nil {
		f.before()
	}
	return f.File.Lock()
}

// An opener that opened the path before a compaction renamed the new log over it, and takes
// its lock after the compaction closed (and so unlocked) the old file, must not get the
// database: it is LOCKED, because the file the path names now is the writer's. Before the
// check, it locked the unlinked old file and its commits vanished.
func TestOpenBetweenItsOpenAndLockOfACompactionIsLocked(t *testing.T) {
	for _, sim := range []bool{false, true} {
		t.Run(fmt.Sprintf("simfs=%v", sim), func(t *testing.T) {
			var base db.FS = db.OS
			path := filepath.Join(t.TempDir(), "x.db")
			if sim {
				base, path = simfs.New(1), "/x.db"
			}
			w, err := db.Open(path, db.WithFS(base))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			set(t, w, "a", "1")
			var once sync.Once
			compacted := false
			hook := hookFS{FS: base, beforeLock: func() {
				once.Do(func() {
					if _, err := w.Compact(); err != nil {
						t.Error(err)
					}
					compacted = true
				})
			}}
			second, err := db.Open(path, db.WithFS(hook))
			if !compacted {
				t.Fatal("the hook did not run: the test did not compact between the open and the lock")
			}
			if err == nil {
				set(t, second, "lost", "commit")
				second.Close()
				t.Fatal("a second writer opened the database while the first had it open (its commit went to the replaced file)")
			}
			if !errors.Is(err, db.ErrLocked) {
				t.Fatalf("err = %v, want ErrLocked", err)
			}
			set(t, w, "b", "2")
			if got := state(t, w); !slices.Equal(got, []kv{{"a", "1"}, {"b", "2"}}) {
				t.Fatalf("state %v", got)
			}
		})
	}
}

// The measurement, in one process: a writer compacting in a loop beside another
// opener. Every open while the writer holds the database must be LOCKED, and every commit the
// writer was acknowledged must be in the file afterwards.
func TestNoSecondWriterWhileCompactingInALoop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	w := mustOpen(t, path)
	const rounds = 300
	var stop atomic.Bool
	var got, locked atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for !stop.Load() {
			d, err := db.Open(path)
			switch {
			case err == nil:
				got.Add(1)
				_ = d.Update(func(tx *db.Tx) error { return tx.Set([]byte("intruder"), []byte("x")) })
				d.Close()
			case errors.Is(err, db.ErrLocked):
				locked.Add(1)
			default:
				t.Error(err)
				return
			}
		}
	})
	for i := range rounds {
		set(t, w, fmt.Sprintf("k%04d", i), "v")
		if _, err := w.Compact(); err != nil {
			t.Error(err)
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if n := got.Load(); n > 0 {
		t.Errorf("%d opens got the lock while the writer held the database (%d were LOCKED)", n, locked.Load())
	}
	d := mustOpen(t, path, db.ReadOnly())
	defer d.Close()
	st := state(t, d)
	if len(st) != rounds {
		t.Fatalf("%d pairs after %d acknowledged commits (first %v)", len(st), rounds, st[:min(3, len(st))])
	}
}

// Compaction keeps the database's permission bits (set-group-ID included), and, as root, its
// owner and group.
func TestCompactKeepsModeOwnerAndGroup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.db")
	d := mustOpen(t, path)
	defer d.Close()
	set(t, d, "k", "v")
	mode := fs.FileMode(0o600) | fs.ModeSetgid
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	root := os.Geteuid() == 0
	if root {
		if err := os.Chown(path, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := d.Compact(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode() != mode {
		t.Errorf("mode after compaction %v, want %v", fi.Mode(), mode)
	}
	if st := fi.Sys().(*syscall.Stat_t); root && (st.Uid != 1234 || st.Gid != 5678) {
		t.Errorf("owner after compaction %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
	set(t, d, "after", "compaction")
	if got := state(t, d); len(got) != 2 {
		t.Fatalf("state %v", got)
	}
}

// A process that cannot give the rewrite the database's owner refuses with IDENTITY before
// writing anything: the database is byte for byte as it was, with its owner and mode, and no
// new file is left beside it. The refusing process runs as another user (this test binary,
// re-executed as uid 4321), so the test needs root to start it.
func TestCompactRefusesWhenTheOwnerCannotBeKept(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a process as another user")
	}
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} { // both made by t.TempDir
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "x.db")
	d := mustOpen(t, path)
	for i := range 50 {
		set(t, d, fmt.Sprintf("k%02d", i), "v")
		set(t, d, fmt.Sprintf("k%02d", i), "w") // something to compact away
	}
	d.Close()
	if err := os.Chown(path, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	before := readFile(t, path)
	exe := filepath.Join(dir, "child.test")
	if err := os.WriteFile(exe, readFile(t, os.Args[0]), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "DB_TEST_CHILD=compact", "DB_TEST_PATH="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 4321, Gid: 4321}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if want := "code=IDENTITY"; !slices.Contains(splitLines(string(out)), want) {
		t.Fatalf("child said %q, want a line %q", out, want)
	}
	if got := readFile(t, path); string(got) != string(before) {
		t.Fatal("the database changed")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1234 || fi.Mode().Perm() != 0o666 {
		t.Fatalf("owner %d mode %v", st.Uid, fi.Mode())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() != "x.db" && e.Name() != "child.test" {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}

func splitLines(s string) []string {
	var out []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		out = append(out, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return out
}

func init() { testChildren["compact"] = childCompact }

// childCompact is the refusing process of TestCompactRefusesWhenTheOwnerCannotBeKept.
func childCompact() int {
	d, err := db.Open(os.Getenv("DB_TEST_PATH"))
	if err != nil {
		fmt.Println("open:", err)
		return 1
	}
	defer d.Close()
	_, err = d.Compact()
	fmt.Printf("code=%s\n%v\n", db.CodeOf(err), err)
	return 0
}

// Through a symbolic link in another directory, compaction rewrites the file the link names,
// in that file's directory: the link stays a link to it, nothing new appears beside the link,
// and later commits land in the real file. A torn tail cut through the link leaves its
// sidecar beside the real file, and Sidecars through the link lists it.
func TestCompactAndSidecarsThroughASymbolicLink(t *testing.T) {
	realDir, linkDir := t.TempDir(), t.TempDir()
	real := filepath.Join(realDir, "real.db")
	link := filepath.Join(linkDir, "link.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, link) // created through the link
	set(t, d, "a", "1")
	set(t, d, "a", "2")
	if _, err := d.Compact(); err != nil {
		t.Fatal(err)
	}
	set(t, d, "b", "3")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the link is no longer a link: %v %v", fi, err)
	}
	if to, _ := os.Readlink(link); to != real {
		t.Fatalf("the link names %q", to)
	}
	if ents, _ := os.ReadDir(linkDir); len(ents) != 1 {
		t.Fatalf("the link's directory holds %d entries", len(ents))
	}
	d = mustOpen(t, real, db.ReadOnly())
	if got := state(t, d); !slices.Equal(got, []kv{{"a", "2"}, {"b", "3"}}) {
		t.Fatalf("the real file holds %v", got)
	}
	d.Close()

	// A torn tail, cut through the link.
	f, err := os.OpenFile(real, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 0, 9, 1, 2, 3})
	f.Close()
	var rep db.TruncationReport
	d = mustOpen(t, link, db.OnTruncate(func(r db.TruncationReport) { rep = r }))
	d.Close()
	if filepath.Dir(rep.Sidecar) != realDir {
		t.Fatalf("sidecar %q, want it beside %s", rep.Sidecar, real)
	}
	for _, p := range []string{link, real} {
		list, err := db.Sidecars(p)
		if err != nil || len(list) != 1 || list[0].Path != rep.Sidecar {
			t.Fatalf("Sidecars(%s) = %v, %v; want [%s]", p, list, err, rep.Sidecar)
		}
	}
	if removed, err := db.RemoveSidecars(link); err != nil || len(removed) != 1 {
		t.Fatalf("RemoveSidecars through the link: %v %v", removed, err)
	}
}

// A compaction refuses (IDENTITY) when another program renamed something over the database's
// path while it was open: renaming its rewrite over the path would replace a file that is not
// this database's. Nothing is rewritten.
func TestCompactRefusesWhenThePathNamesAnotherFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	d := mustOpen(t, path)
	defer d.Close()
	set(t, d, "k", "v")
	other := filepath.Join(dir, "other")
	if err := os.WriteFile(other, []byte("someone else's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	_, err := d.Compact()
	if !errors.Is(err, db.ErrIdentity) {
		t.Fatalf("err = %v, want ErrIdentity", err)
	}
	if got := string(readFile(t, path)); got != "someone else's" {
		t.Fatalf("the file at the path was replaced: %q", got)
	}
}

// Replace holds the database's lock: it refuses a database a writer has open (LOCKED) and
// leaves it as it was; on a closed one it keeps the mode, writes through a link to the real
// file, and leaves nothing beside it; an error from the writer leaves the old file.
func TestReplace(t *testing.T) {
	ctx := context.Background()
	realDir := t.TempDir()
	real := filepath.Join(realDir, "x.db")
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	d := mustOpen(t, real)
	set(t, d, "k", "v")
	before := readFile(t, real)
	write := func(_ context.Context, f db.File) error { return f.Append([]byte("new bytes")) }
	if err := db.Replace(ctx, link, write); !errors.Is(err, db.ErrLocked) {
		t.Fatalf("Replace of an open database: %v, want ErrLocked", err)
	}
	if string(readFile(t, real)) != string(before) {
		t.Fatal("a database in use was replaced")
	}
	d.Close()
	if err := os.Chmod(real, 0o640); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	if err := db.Replace(ctx, link, func(context.Context, db.File) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if string(readFile(t, real)) != string(before) {
		t.Fatal("a failed replacement changed the file")
	}
	if err := db.Replace(ctx, link, write); err != nil {
		t.Fatal(err)
	}
	if got := string(readFile(t, real)); got != "new bytes" {
		t.Fatalf("after Replace: %q", got)
	}
	if fi, err := os.Stat(real); err != nil || fi.Mode() != 0o640 {
		t.Fatalf("mode %v %v", fi.Mode(), err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatal("the link was replaced")
	}
	if ents, _ := os.ReadDir(realDir); len(ents) != 1 {
		t.Fatalf("%d entries beside the file", len(ents))
	}
	if err := db.Replace(ctx, filepath.Join(realDir, "missing"), write); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Replace of a missing file: %v", err)
	}
}
