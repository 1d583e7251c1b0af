package db

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FS is the filesystem seam: the database touches storage only through it, so tests run the
// real engine on a simulated filesystem (package db/simfs). OS is the real one.
type FS interface {
	// OpenFile opens the file at path in the given mode. ReadOnly requires the file to exist;
	// ReadWrite creates it (empty) when missing; CreateNew creates it and fails with an error
	// matching fs.ErrExist when it exists.
	OpenFile(path string, mode OpenMode) (File, error)
	// SyncDir makes the directory entries of dir durable (new files in it survive a crash).
	SyncDir(dir string) error
	// Remove deletes the file at path (a sidecar that could not be written whole).
	Remove(path string) error
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
	// Append writes p at the end of the file, all of it or an error.
	Append(p []byte) error
	// Sync makes everything written so far durable.
	Sync() error
	// Truncate cuts the file to size bytes.
	Truncate(size int64) error
	// Size is the file's current size.
	Size() (int64, error)
	// Lock takes an exclusive lock on the file without blocking; it fails with an error
	// matching ErrLocked when another handle holds it. Close releases it.
	Lock() error
	Close() error
}

// OS is the operating system's filesystem: pread, O_APPEND writes, fdatasync (fsync where
// fdatasync does not exist), flock for the exclusive lock.
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
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	return &osFile{f: f}, nil
}

func (osFS) Remove(path string) error { return os.Remove(path) }

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
	f *os.File
}

func (o *osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }

func (o *osFile) Append(p []byte) error {
	n, err := o.f.Write(p) // O_APPEND: at the end, whatever the offset
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	return err
}

func (o *osFile) Sync() error               { return syncData(o.f) }
func (o *osFile) Truncate(size int64) error { return o.f.Truncate(size) }
func (o *osFile) Close() error              { return o.f.Close() }

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
	return err
}

// dirOf is the directory holding path, for SyncDir.
func dirOf(path string) string { return filepath.Dir(path) }
