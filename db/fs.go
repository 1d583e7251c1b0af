package db

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/streamwal/recovery/walerr"
)

// FS is the filesystem seam: the database touches storage only through it, so tests run the
// real engine on a simulated filesystem (package db/simfs). OS is the real one.
type FS interface {
	// OpenFile opens the file at path in the given mode. ReadOnly requires the file to exist;
	// ReadWrite creates it (empty) when missing; CreateNew creates it and fails with an error
	// matching fs.ErrExist when it exists. A creation is durable once the directory is synced
	// (SyncDir). Only regular files: anything else (a FIFO, a device, a directory) is refused,
	// without blocking.
	OpenFile(path string, mode OpenMode) (File, error)
	// SyncDir makes the directory entries of dir durable (new files in it survive a crash).
	SyncDir(dir string) error
	// Remove deletes the file at path (a sidecar that could not be written whole).
	Remove(path string) error
	// Rename makes newpath name oldpath's file, atomically replacing any file newpath named
	// (rename(2)); like creations and removals, it is durable once the directory is synced.
	Rename(oldpath, newpath string) error
	// ReadDir lists the names (not paths) of the entries of dir, sorted.
	ReadDir(dir string) ([]string, error)
	// Resolve returns the path of the file that path names, every symbolic link followed (path
	// itself, cleaned, when there is no link on the way; an error when the file does not
	// exist). A database's rewrite and its sidecars go beside that file, never beside a link.
	Resolve(path string) (string, error)
	// CreateLike creates path, which must not exist, as a new empty file for reads and appends
	// (as OpenCreateNew) with the permission bits, owner and group of the file at like. When it
	// cannot give the new file those, it removes it and fails with an error matching
	// ErrIdentity: a rewrite that went on would change who may open the database.
	CreateLike(path, like string) (File, error)
}

// OpenMode says how FS.OpenFile opens a file.
type OpenMode uint8

const (
	OpenReadOnly  OpenMode = iota // reads only; the file must exist
	OpenReadWrite                 // reads and appends; created empty when missing
	OpenCreateNew                 // reads and appends; the file must not exist yet
)

func (m OpenMode) String() string {
	switch m {
	case OpenReadOnly:
		return "read-only"
	case OpenReadWrite:
		return "read-write"
	case OpenCreateNew:
		return "create-new"
	}
	return fmt.Sprintf("OpenMode(%d)", uint8(m))
}

// File is one open file: positional reads, append, fsync, truncate, size, lock, close.
//
// ReadAt must be safe to call from several goroutines at once (recovery's pipeline reads
// ahead while its applier may read to classify damage). The other methods are called by one
// goroutine at a time.
type File interface {
	io.ReaderAt
	// Append writes the slices, in order, at the end of the file as one write (writev): all
	// of them or an error. After an error, a prefix of the bytes may be in the file.
	Append(p ...[]byte) error
	// Sync makes everything written so far durable.
	Sync() error
	// Truncate cuts the file to size bytes. A size past the end may grow the file, reading
	// back as zeros (a sidecar's runs of zeros become holes that way); a File that cannot
	// grow may refuse it or leave the size alone, and the zeros are then written.
	Truncate(size int64) error
	// Size is the file's current size.
	Size() (int64, error)
	// Lock takes an exclusive lock on the file without blocking; it fails with an error
	// matching ErrLocked when another handle holds it. Close releases it. The lock belongs to
	// the file, not to its name: after a rename replaced the file a handle has open, the lock
	// on it protects nothing, which is why the database checks Is after every Lock.
	Lock() error
	// Is reports whether path (symbolic links followed) names this file now: false when path
	// names another file or nothing.
	Is(path string) (bool, error)
	Close() error
}

// OS is the operating system's filesystem: pread, O_APPEND writes (writev), fdatasync (fsync
// where fdatasync does not exist), flock for the exclusive lock, rename(2). It opens only
// regular files: on unix the open is non-blocking and the file is checked with fstat before
// it is used, so a FIFO is refused rather than waited on.
var OS FS = osFS{}

type osFS struct{}

func (osFS) OpenFile(path string, mode OpenMode) (File, error) {
	var flag int
	switch mode {
	case OpenReadOnly:
		flag = os.O_RDONLY
	case OpenReadWrite:
		flag = os.O_RDWR | os.O_CREATE | os.O_APPEND
	case OpenCreateNew:
		flag = os.O_RDWR | os.O_CREATE | os.O_EXCL | os.O_APPEND
	default:
		return nil, fmt.Errorf("db: unknown open mode %d", mode)
	}
	f, err := openRegularPerm(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

// notRegular is the error for a path that is not a regular file.
func notRegular(path string, mode fs.FileMode) error {
	return &Error{Code: walerr.InvalidArgument, Path: path, Offset: -1, Detail: fmt.Sprintf("not a regular file (%s): a database is a regular file", mode.Type())}
}

func (osFS) Remove(path string) error { return os.Remove(path) }

func (osFS) Resolve(path string) (string, error) { return filepath.EvalSymlinks(path) }

// Link makes newpath name oldpath's file, failing (fs.ErrExist) if newpath exists: unlike
// Rename, it never replaces a file (a restore puts a new database in place with it).
func (osFS) Link(oldpath, newpath string) error { return os.Link(oldpath, newpath) }

func (osFS) CreateLike(path, like string) (File, error) {
	fi, err := os.Stat(like)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, notRegular(like, fi.Mode())
	}
	// Created readable by its owner only, so that no one else can open it before it has the
	// old file's owner and mode.
	f, err := openRegularPerm(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if err := keepOwner(f, fi); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, newError(CodeIdentity, like, fmt.Sprintf(
			"cannot give the new file %s the owner and group of the database (%s); nothing was written, the database is as it was: run this as the database's owner (or root)",
			path, ownerOf(fi)), err)
	}
	// After the owner: chown(2) may clear set-user-ID and set-group-ID bits.
	if err := f.Chmod(fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, newError(CodeIdentity, like, fmt.Sprintf(
			"cannot give the new file %s the mode of the database (%s); nothing was written, the database is as it was", path, fi.Mode().Perm()), err)
	}
	// fchmod clears a set-group-ID bit without an error when the process is not in the file's
	// group: check that the mode is the one asked for.
	if got, err := f.Stat(); err != nil || got.Mode() != fi.Mode() {
		f.Close()
		_ = os.Remove(path)
		return nil, newError(CodeIdentity, like, fmt.Sprintf(
			"cannot give the new file %s the mode of the database (%s); nothing was written, the database is as it was", path, fi.Mode()), err)
	}
	return &osFile{f: f}, nil
}
func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

func (osFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ents))
	for i, e := range ents {
		out[i] = e.Name()
	}
	return out, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct {
	f      *os.File
	locked bool // Lock succeeded: Close releases the lock before it closes
}

func (o *osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

func (o *osFile) Append(ps ...[]byte) error {
	if len(ps) == 1 {
		n, err := o.f.Write(ps[0]) // O_APPEND: at the end, whatever the offset
		if err == nil && n != len(ps[0]) {
			err = io.ErrShortWrite
		}
		return err
	}
	return writev(o.f, ps)
}

func (o *osFile) Sync() error               { return syncData(o.f) }
func (o *osFile) Truncate(size int64) error { return o.f.Truncate(size) }
func (o *osFile) Close() error {
	if o.locked {
		unlockFile(o.f)
	}
	return o.f.Close()
}

func (o *osFile) Is(path string) (bool, error) {
	named, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	mine, err := o.f.Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(named, mine), nil
}

func (o *osFile) Size() (int64, error) {
	fi, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (o *osFile) Lock() error {
	err := lockFile(o.f)
	if errors.Is(err, errWouldBlock) {
		return newError(CodeLocked, o.f.Name(),
			"another writer (this process or another) has it open; close that one first, or open with db.ReadOnly() to inspect it", err)
	}
	o.locked = err == nil
	return err
}

// dirOf is the directory holding path, for SyncDir.
func dirOf(path string) string { return filepath.Dir(path) }
