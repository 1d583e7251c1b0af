package db

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/walerr"
)

// maxSidecars bounds the sidecars kept for one offset: "<path>.cut-<offset>", then ".1" up to
// ".<maxSidecars-1>". A cut whose bytes equal an existing sidecar's reuses it (repeated
// crashes at one offset leave one file), so only different bytes cut at the same offset take
// a new name; past the bound, Open fails with ErrSidecars (SIDECARS_FULL) rather than destroy
// bytes, and the user clears them (Sidecars, RemoveSidecars, `walrec sidecars`).
const maxSidecars = 100

// tmpSuffix marks a sidecar being written; it gets its final name only once complete and
// synced, so a crash never leaves a partial sidecar under a sidecar's name.
const tmpSuffix = ".tmp"

// saveCut copies the bytes recovery is about to cut, [t.Offset, t.Offset+t.Bytes), to a
// sidecar "<path>.cut-<offset>" (".1", ".2"... appended if that name holds different bytes:
// an older sidecar is never overwritten) and returns its name. The copy is written under a
// temporary name, synced, renamed, and the directory synced. It streams through a bounded
// buffer.
func (db *DB) saveCut(t recovery.Truncation) (string, error) {
	base := fmt.Sprintf("%s.cut-%d", db.path, t.Offset)
	tmp := base + tmpSuffix
	wrap := func(name string, err error) error {
		if walerr.CodeOf(err) == "" && CodeOf(err) == "" { // an open, append, sync, rename: I/O
			err = walerr.Wrap(walerr.IO, t.Offset, err, "cannot save the bytes to be cut; nothing was cut")
		}
		return fmt.Errorf("db: write sidecar %s: %w", name, err)
	}

	// An existing sidecar holding exactly these bytes is the sidecar: nothing to write.
	name, same, err := db.sidecarName(base, t)
	if err != nil {
		return "", wrap(base, err)
	}
	if same {
		// Its name may be an earlier crash's rename whose directory sync never came.
		if err := db.fs.SyncDir(dirOf(name)); err != nil {
			return "", wrap(name, err)
		}
		return name, nil
	}

	// A temporary file left by a crash mid-copy is incomplete by definition: replace it.
	if err := db.fs.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", wrap(tmp, err)
	}
	sf, err := db.fs.OpenFile(tmp, OpenCreateNew)
	if err != nil {
		return "", wrap(tmp, err)
	}
	err = copyRange(sf, db.f, t.Offset, t.Offset+t.Bytes)
	if err == nil {
		err = sf.Sync()
	}
	if cerr := sf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = db.fs.Rename(tmp, name)
	}
	if err == nil {
		err = db.fs.SyncDir(dirOf(name))
	}
	if err != nil {
		// A partial copy must not pass for a sidecar, nor fill the disk: remove it (best
		// effort; the error reported is the one that stopped the copy).
		_ = db.fs.Remove(tmp)
		return "", wrap(name, err)
	}
	return name, nil
}

// sidecarName finds where the bytes of t go: an existing sidecar for this offset that holds
// exactly them (same is true), or the first free name.
func (db *DB) sidecarName(base string, t recovery.Truncation) (name string, same bool, err error) {
	for i := 0; i < maxSidecars; i++ {
		name = base
		if i > 0 {
			name = fmt.Sprintf("%s.%d", base, i)
		}
		f, err := db.fs.OpenFile(name, OpenReadOnly)
		if errors.Is(err, fs.ErrNotExist) {
			return name, false, nil
		}
		if err != nil {
			return "", false, err
		}
		same, err := sameBytes(f, db.f, t.Offset, t.Bytes)
		f.Close()
		if err != nil {
			return "", false, err
		}
		if same {
			return name, true, nil
		}
	}
	return "", false, newError(CodeSidecars, db.path, fmt.Sprintf(
		"%d sidecars for offset %d already hold other bytes; nothing was cut. Keep what you need and remove them (walrec sidecars -clear, or db.RemoveSidecars)",
		maxSidecars, t.Offset), nil)
}

// sameBytes reports whether side holds exactly src's bytes [off, off+n).
func sameBytes(side, src File, off, n int64) (bool, error) {
	size, err := side.Size()
	if err != nil || size != n {
		return false, err
	}
	a := make([]byte, min(n, 1<<20))
	b := make([]byte, len(a))
	for done := int64(0); done < n; {
		k := int(min(int64(len(a)), n-done))
		if err := walerr.ReadFull(side, a[:k], done); err != nil {
			return false, err
		}
		if err := walerr.ReadFull(src, b[:k], off+done); err != nil {
			return false, err
		}
		if !bytes.Equal(a[:k], b[:k]) {
			return false, nil
		}
		done += int64(k)
	}
	return true, nil
}

// copyRange appends src's bytes [from, to) to dst.
func copyRange(dst File, src File, from, to int64) error {
	buf := make([]byte, min(to-from, 1<<20))
	for off := from; off < to; {
		n := int(min(int64(len(buf)), to-off))
		if err := walerr.ReadFull(src, buf[:n], off); err != nil {
			return err
		}
		if err := dst.Append(buf[:n]); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// Sidecar is one file beside a database holding bytes that recovery cut from it.
type Sidecar struct {
	Path   string // the sidecar file
	Offset int64  // where in the database file its bytes were
	Size   int64  // how many bytes it holds
	// Partial says the file is a copy that was being written when the process stopped
	// ("<name>.tmp"): its bytes are a prefix at best, and no cut was made after it.
	Partial bool
}

// Sidecars lists the sidecars of the database at path ("<path>.cut-<offset>" and its
// numbered and partial variants), by offset then name. Only WithFS of the options applies.
func Sidecars(path string, opts ...Option) ([]Sidecar, error) {
	o := options{fs: OS}
	for _, opt := range opts {
		opt(&o)
	}
	names, err := o.fs.ReadDir(dirOf(path))
	if err != nil {
		return nil, fmt.Errorf("db: list sidecars of %s: %w", path, err)
	}
	prefix := filepath.Base(path) + ".cut-"
	var out []Sidecar
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		rest, partial := strings.CutSuffix(rest, tmpSuffix)
		digits, num, _ := strings.Cut(rest, ".")
		off, err := strconv.ParseInt(digits, 10, 64)
		if err != nil || off < 0 || strconv.FormatInt(off, 10) != digits {
			continue
		}
		if num != "" {
			if k, err := strconv.Atoi(num); err != nil || k < 1 || strconv.Itoa(k) != num || partial {
				continue
			}
		}
		full := filepath.Join(dirOf(path), name)
		f, err := o.fs.OpenFile(full, OpenReadOnly)
		if err != nil {
			return nil, fmt.Errorf("db: list sidecars of %s: %w", path, err)
		}
		size, err := f.Size()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("db: list sidecars of %s: %w", path, err)
		}
		out = append(out, Sidecar{Path: full, Offset: off, Size: size, Partial: partial})
	}
	slices.SortFunc(out, func(a, b Sidecar) int {
		if a.Offset != b.Offset {
			return int(min(max(a.Offset-b.Offset, -1), 1))
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

// RemoveSidecars deletes the sidecars of the database at path (what Sidecars lists) and syncs
// the directory, and returns what it removed. It takes the database's lock while it works,
// so it fails with ErrLocked while a writer has the database open. The bytes in them are
// gone: keep what you need first. Only WithFS of the options applies.
func RemoveSidecars(path string, opts ...Option) ([]Sidecar, error) {
	o := options{fs: OS}
	for _, opt := range opts {
		opt(&o)
	}
	if f, err := o.fs.OpenFile(path, OpenReadOnly); err == nil {
		// Open read-only: removing sidecars never creates the database.
		defer f.Close()
		if err := f.Lock(); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("db: remove sidecars of %s: %w", path, err)
	}
	list, err := Sidecars(path, opts...)
	if err != nil {
		return nil, err
	}
	var done []Sidecar
	for _, s := range list {
		if err := o.fs.Remove(s.Path); err != nil {
			return done, fmt.Errorf("db: remove sidecar %s: %w", s.Path, err)
		}
		done = append(done, s)
	}
	if len(done) > 0 {
		if err := o.fs.SyncDir(dirOf(path)); err != nil {
			return done, fmt.Errorf("db: remove sidecars of %s: sync directory: %w", path, err)
		}
	}
	return done, nil
}
