package db

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

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

// saveCut keeps the bytes recovery is about to cut in a sidecar beside the database (see
// writeSidecar) and returns its name.
func (db *DB) saveCut(ctx context.Context, t recovery.Truncation) (string, error) {
	name, _, err := writeSidecar(ctx, db.fs, db.real, db.f, t, dirOf(db.real))
	return name, err
}

// ErrNoSpace is in the chain of a sidecar's error when its bytes would not fit in the free
// space of its directory (runs of zeros among them take none: they become holes).
var ErrNoSpace = errors.New("not enough free space for the sidecar")

// WriteSidecar keeps the bytes [t.Offset, t.Offset+t.Bytes) of src, which recovery is about to
// cut from the database file at path, in a sidecar file in dir (dir "" is path's own
// directory), exactly as Open does before a cut: "<base>.cut-<offset>" (".1", ".2"... when that
// name holds other bytes; an existing sidecar holding these very bytes is reused), written under
// a temporary name, synced, renamed, and the directory synced. Each 1 MiB block of the cut
// bytes (counted from the cut's start; the last may be shorter) that is all zeros becomes a
// hole, which takes no disk space (a preallocated or sparse tail); it refuses with ErrNoSpace,
// before the disk fills, when the other bytes would not fit. It returns the sidecar's name and
// the zero bytes kept as holes. For tools that cut a log without opening the database
// (walrec recover). fsys nil is the OS; an FS with a method FreeSpace(dir string) (int64,
// error) has its free space checked (the OS's has).
func WriteSidecar(ctx context.Context, fsys FS, path string, src io.ReaderAt, t recovery.Truncation, dir string) (name string, holes int64, err error) {
	if t.Offset < 0 || t.Bytes < 0 || t.Offset > math.MaxInt64-t.Bytes {
		return "", 0, (&Error{Code: walerr.InvalidArgument, Path: path, Offset: t.Offset, Detail: fmt.Sprintf("a sidecar of %d bytes at offset %d", t.Bytes, t.Offset)})
	}
	if fsys == nil {
		fsys = OS
	}
	if dir == "" {
		dir = dirOf(path)
	}
	return writeSidecar(ctx, fsys, path, src, t, dir)
}

func writeSidecar(ctx context.Context, fsys FS, path string, src io.ReaderAt, t recovery.Truncation, dir string) (string, int64, error) {
	base := fmt.Sprintf("%s.cut-%d", filepath.Join(dir, filepath.Base(path)), t.Offset)
	tmp := base + tmpSuffix
	wrap := func(name string, err error) error {
		if CodeOf(err) == "" { // an open, append, sync, rename: I/O
			err = walerr.Wrap(walerr.IO, t.Offset, err, "cannot save the bytes to be cut; nothing was cut")
		}
		return fmt.Errorf("db: write sidecar %s: %w", name, err)
	}

	// An existing sidecar holding exactly these bytes is the sidecar: nothing to write.
	name, same, err := sidecarName(fsys, path, base, src, t)
	if err != nil {
		return "", 0, wrap(base, err)
	}
	if same {
		// Its name may be an earlier crash's rename whose directory sync never came.
		if err := fsys.SyncDir(dir); err != nil {
			return "", 0, wrap(name, err)
		}
		return name, 0, nil
	}

	// A temporary file left by a crash mid-copy is incomplete by definition: replace it.
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", 0, wrap(tmp, err)
	}
	budget := int64(-1)
	if fsp, ok := fsys.(interface {
		FreeSpace(dir string) (int64, error)
	}); ok {
		if free, err := fsp.FreeSpace(dir); err == nil {
			budget = free
		}
	}
	sf, err := fsys.OpenFile(tmp, OpenCreateNew)
	if err != nil {
		return "", 0, wrap(tmp, err)
	}
	holes, err := copySparse(ctx, sf, src, t.Offset, t.Offset+t.Bytes, budget)
	if err == nil {
		err = sf.Sync()
	}
	if cerr := sf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil {
		err = fsys.SyncDir(dir)
	}
	if err != nil {
		// A partial copy must not pass for a sidecar, nor fill the disk: remove it (best
		// effort; the error reported is the one that stopped the copy).
		_ = fsys.Remove(tmp)
		if errors.Is(err, syscall.ENOSPC) && !errors.Is(err, ErrNoSpace) { // the budget was an estimate
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		if errors.Is(err, ErrNoSpace) {
			err = walerr.Wrap(walerr.IO, t.Offset, err, fmt.Sprintf(
				"the %d bytes to be cut do not fit in the %d bytes free in %s (zeros among them would take none); nothing was cut", t.Bytes, budget, dir)).
				WithHint("free some space, or keep the sidecar on another filesystem")
		}
		return "", 0, wrap(name, err)
	}
	return name, holes, nil
}

// sidecarName finds where the bytes of t go: an existing sidecar for this offset that holds
// exactly them (same is true), or the first free name.
func sidecarName(fsys FS, path, base string, src io.ReaderAt, t recovery.Truncation) (name string, same bool, err error) {
	for i := 0; i < maxSidecars; i++ {
		name = base
		if i > 0 {
			name = fmt.Sprintf("%s.%d", base, i)
		}
		f, err := fsys.OpenFile(name, OpenReadOnly)
		if errors.Is(err, fs.ErrNotExist) {
			return name, false, nil
		}
		if err != nil {
			return "", false, err
		}
		same, err := sameBytes(f, src, t.Offset, t.Bytes)
		f.Close()
		if err != nil {
			return "", false, err
		}
		if same {
			return name, true, nil
		}
	}
	return "", false, newError(CodeSidecars, path, fmt.Sprintf(
		"%d sidecars for offset %d already hold other bytes; nothing was cut. Keep what you need and remove them (walrec sidecars -clear, or db.RemoveSidecars)",
		maxSidecars, t.Offset), nil)
}

// sameBytes reports whether side holds exactly src's bytes [off, off+n).
func sameBytes(side File, src io.ReaderAt, off, n int64) (bool, error) {
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

// copySparse appends src's bytes [from, to) to dst, leaving each whole MiB of zeros as a hole
// (dst is extended by Truncate past its end; a file that cannot be extended that way gets the
// zeros written). With budget >= 0 it stops with ErrNoSpace before writing more than budget
// bytes. It returns the zero bytes left as holes.
func copySparse(ctx context.Context, dst File, src io.ReaderAt, from, to, budget int64) (holes int64, err error) {
	const chunk = 1 << 20
	buf := make([]byte, min(to-from, chunk))
	var size, zeros, written int64 // dst's size; a run of zeros not yet in dst
	flush := func() error {
		if zeros == 0 {
			return nil
		}
		// Grow by truncation (a hole), if the file really grew: File.Truncate promises only
		// to cut, and a copy one byte short must never pass for the sidecar.
		if err := dst.Truncate(size + zeros); err == nil && sizeIs(dst, size+zeros) {
			holes += zeros
		} else { // cannot grow by truncation: write them
			if err == nil { // it claimed to: put the size back before appending
				if err := dst.Truncate(size); err != nil || !sizeIs(dst, size) {
					return fmt.Errorf("the sidecar cannot be put back to %d bytes: %v", size, err)
				}
			}
			zbuf := make([]byte, min(zeros, chunk))
			for z := zeros; z > 0; {
				n := min(z, int64(len(zbuf)))
				if budget >= 0 && written+n > budget {
					return ErrNoSpace
				}
				if err := dst.Append(zbuf[:n]); err != nil {
					return err
				}
				written += n
				z -= n
			}
		}
		size += zeros
		zeros = 0
		return nil
	}
	for off := from; off < to; {
		if err := ctx.Err(); err != nil {
			return holes, walerr.Wrap(walerr.Canceled, off, err, "stopped while keeping the cut bytes; nothing was cut")
		}
		n := min(int64(len(buf)), to-off)
		p := buf[:n]
		if err := walerr.ReadFull(src, p, off); err != nil {
			return holes, err
		}
		off += n
		if allZero(p) {
			zeros += n
			continue
		}
		if err := flush(); err != nil {
			return holes, err
		}
		if budget >= 0 && written+n > budget {
			return holes, ErrNoSpace
		}
		if err := dst.Append(p); err != nil {
			return holes, err
		}
		size += n
		written += n
	}
	if err := flush(); err != nil {
		return holes, err
	}
	if !sizeIs(dst, to-from) {
		return holes, fmt.Errorf("the sidecar does not hold the %d bytes written to it", to-from)
	}
	return holes, nil
}

func sizeIs(f File, n int64) bool {
	size, err := f.Size()
	return err == nil && size == n
}

// copyRange appends src's bytes [from, to) to dst, every byte written.
func copyRange(dst File, src io.ReaderAt, from, to int64) error {
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

func allZero(p []byte) bool {
	for len(p) >= 8 {
		if binary.LittleEndian.Uint64(p) != 0 {
			return false
		}
		p = p[8:]
	}
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
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
// numbered and partial variants), by offset then name. Through a symbolic link, they are the
// sidecars beside the file the link names, where Open writes them. Only WithFS of the options
// applies.
func Sidecars(path string, opts ...Option) ([]Sidecar, error) {
	o := options{fs: OS}
	for _, opt := range opts {
		opt(&o)
	}
	return sidecarsOf(o.fs, path)
}

// realPath is the file path names, symbolic links followed; path itself when that file does
// not exist (its sidecars may outlive it).
func realPath(fsys FS, path string) string {
	if real, err := fsys.Resolve(path); err == nil {
		return real
	}
	return path
}

func sidecarsOf(fsys FS, path string) ([]Sidecar, error) {
	shown := path
	path = realPath(fsys, path)
	names, err := fsys.ReadDir(dirOf(path))
	if err != nil {
		return nil, fmt.Errorf("db: list sidecars of %s: %w", shown, err)
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
		f, err := fsys.OpenFile(full, OpenReadOnly)
		if err != nil {
			return nil, fmt.Errorf("db: list sidecars of %s: %w", shown, err)
		}
		size, err := f.Size()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("db: list sidecars of %s: %w", shown, err)
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
	// Opened read-only: removing sidecars never creates the database.
	if f, _, err := openLocked(o.fs, path, OpenReadOnly, true); err == nil {
		defer f.Close()
	} else if errors.Is(err, ErrLocked) {
		return nil, err
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("db: remove sidecars of %s: %w", path, err)
	}
	list, err := sidecarsOf(o.fs, path)
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
		if err := o.fs.SyncDir(dirOf(realPath(o.fs, path))); err != nil {
			return done, fmt.Errorf("db: remove sidecars of %s: sync directory: %w", path, err)
		}
	}
	return done, nil
}
