package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/streamwal/recovery/db"
)

// freeSpace is how many bytes an unprivileged writer can still put in the filesystem holding
// dir (ok = false where it cannot be measured). Tests replace it to simulate a full disk.
var freeSpace = func(dir string) (free int64, ok bool) {
	fsp, can := db.OS.(interface{ FreeSpace(string) (int64, error) })
	if !can {
		return 0, false // not measurable here: writers rely on the write errors alone
	}
	free, err := fsp.FreeSpace(dir)
	return free, err == nil
}

// notRegular is the error for a path that exists and is not a regular file.
func notRegular(path string, fi fs.FileInfo) error {
	if fi.IsDir() {
		return &fs.PathError{Op: "open", Path: path, Err: syscall.EISDIR}
	}
	return &fs.PathError{Op: "open", Path: path, Err: errors.New("not a regular file (" + kindOf(fi) + ")")}
}

// pathCause is err without the operation and path a *fs.PathError adds: "no such file or
// directory".
func pathCause(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// kindOf names a file's type for a person.
func kindOf(fi fs.FileInfo) string {
	switch m := fi.Mode(); {
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	}
	return fi.Mode().Type().String()
}

// ownFile is a regular file this process created: it is the only kind of file a command
// removes when it fails or is stopped.
type ownFile struct {
	path string
	fi   fs.FileInfo // the file as created (for os.SameFile)
}

// createOwn creates path, which must not exist, as a new regular file (O_EXCL: never an
// existing file, never a FIFO or device, which O_EXCL refuses without opening).
func createOwn(path string, perm fs.FileMode) (*os.File, *ownFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, nil, err
	}
	return f, &ownFile{path: path, fi: fi}, nil
}

// remove deletes the file if the name still refers to the regular file this process created
// (it may have been renamed or replaced meanwhile: then it is left alone).
func (o *ownFile) remove() error {
	if o == nil {
		return nil
	}
	fi, err := os.Lstat(o.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if !fi.Mode().IsRegular() || !os.SameFile(fi, o.fi) {
		return fmt.Errorf("%s is no longer the file walrec created; left alone", o.path)
	}
	return os.Remove(o.path)
}

// syncDir makes dir's entries durable (a new or renamed file in it survives a crash), as the
// database does.
func syncDir(dir string) error { return db.OS.SyncDir(dir) }

// needSpace refuses to write need bytes into dir when its filesystem has less free.
func needSpace(dir string, need int64, what string) error {
	free, ok := freeSpace(dir)
	if !ok || need <= free {
		return nil
	}
	return fmt.Errorf("%s needs %s but only %s is free in %s", what, bytesHuman(need), bytesHuman(free), dirName(dir))
}

// dirName is dir for messages ("." reads badly).
func dirName(dir string) string {
	if dir == "." {
		if wd, err := os.Getwd(); err == nil {
			return wd
		}
	}
	return dir
}

// bytesHuman writes n bytes exactly, with a binary-unit approximation when that helps.
func bytesHuman(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%s bytes (%.1f GiB)", group(n), float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%s bytes (%.1f MiB)", group(n), float64(n)/(1<<20))
	}
	return group(n) + " bytes"
}

// resolve follows symbolic links to the file they name, so that what a command writes beside
// a database goes beside the database, not beside a link to it. A path that does not exist
// (yet) resolves to itself.
func resolve(path string) string {
	if r, err := filepath.EvalSymlinks(path); err == nil {
		return r
	}
	return path
}

// pauseHere lets a test stop a command at a known step: when testPause names point,
// testPaused runs there (the signal tests announce the point and wait for the signal).
// Both are unset outside tests.
func pauseHere(ctx context.Context, point string) {
	if testPause == point && testPaused != nil {
		testPaused(ctx, point)
	}
}

var (
	testPause  string
	testPaused func(ctx context.Context, point string)
)

// pauseOnce is a progress callback that pauses at point the first time it is called (after
// recovery's first chunk), or nil outside such a test.
func pauseOnce(ctx context.Context, point string) func(applied, total int64) {
	if testPause != point || testPaused == nil {
		return nil
	}
	var once sync.Once
	return func(int64, int64) { once.Do(func() { pauseHere(ctx, point) }) }
}

// createNew makes out, which must not exist, a new regular file holding what write writes:
// written under a temporary name beside it, synced, and linked to out only once complete (a
// link never replaces a file that appeared meanwhile), the directory synced. On any failure
// or stop the temporary file is removed and nothing is left under out's name. cmd names the
// command in the refusal of an existing out.
func createNew(out, cmd string, write func(w io.Writer) error) error {
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s exists; %s never replaces a file", quoteName(out), cmd)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(out)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(out)+".walrec-"+cmd+"-*")
	if err != nil {
		return err
	}
	fi, err := tmp.Stat()
	if err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	own := &ownFile{path: tmp.Name(), fi: fi}
	err = write(tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		if err = os.Link(own.path, out); err == nil {
			err = os.Remove(own.path)
			own = nil
		}
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil && own != nil {
		own.remove()
	}
	return err
}
