package db

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/walerr"
)

// RestoreInfo says what Restore wrote.
type RestoreInfo struct {
	Received int64 `json:"received_bytes"` // bytes read from the stream
	Size     int64 `json:"size"`           // bytes of the database file written (Received less a tail cut with RestorePrefix)
	Records  int64 `json:"records"`
	Ops      int64 `json:"ops"`
	// Tail is the bytes at the end of the stream that were not a whole, verified record,
	// left out with RestorePrefix (0 otherwise: Restore refuses such a stream).
	Tail int64 `json:"tail_bytes"`
}

// RestoreOption configures Restore.
type RestoreOption func(*restoreOptions)

type restoreOptions struct {
	fs        FS
	prefix    bool
	expect    *BackupInfo
	par       int
	maxRecord int64
}

// RestorePrefix makes Restore keep the verified prefix of a stream whose end is not a whole
// record (a stream cut off, or damaged at its end) instead of refusing it; RestoreInfo.Tail
// says how much was left out. Corruption before the end is refused all the same.
func RestorePrefix() RestoreOption { return func(o *restoreOptions) { o.prefix = true } }

// RestoreExpect gives the BackupInfo of the backup the stream holds (a full backup's, or the
// last increment's when the stream is a full backup and its increments, whose Start is then
// 0): the stream must end exactly where it ended, with the same last record. A raw log cut
// at a record boundary is a shorter log that verifies: only this tells the two apart.
func RestoreExpect(info BackupInfo) RestoreOption {
	return func(o *restoreOptions) { o.expect = &info }
}

// RestoreWithFS sets the filesystem (default OS).
func RestoreWithFS(fsys FS) RestoreOption { return func(o *restoreOptions) { o.fs = fsys } }

// RestoreMaxRecordSize sets the largest record the restore's verification accepts (default
// recovery.DefaultMaxRecord: a database opened with a larger WithMaxRecordSize needs it here).
func RestoreMaxRecordSize(n int64) RestoreOption { return func(o *restoreOptions) { o.maxRecord = n } }

// RestoreParallelism sets the parallelism of the recovery that verifies the restored log
// (recovery.WithParallelism; default 0, one worker per CPU).
func RestoreParallelism(n int) RestoreOption { return func(o *restoreOptions) { o.par = n } }

// Restore writes the database file at path from r, a backup stream (a log as Backup writes
// it: a full backup, and its increments after it), in bounded memory, verified as it arrives:
// recovery.RecoverStream checks every record in parallel (the same decisions, typed errors
// and offsets as an open), and each run of verified records is appended to a new file beside
// path ("<path>.replace") as soon as it is verified, so the file never holds a byte that did
// not verify (a v1 file header is written with its reserved bytes zero). The file is synced,
// and only then renamed into place, and the directory synced. A crash at any instant leaves the old file (or none) or the
// new one, whole. A stream whose end is not a whole record is refused with TAIL_DAMAGE and its
// offset (RestorePrefix keeps the prefix instead); corruption in it is refused with
// CORRUPT_WAL; either way nothing under path changes. An existing file at path is replaced as
// Replace does: never while a writer has it open (ErrLocked), keeping its mode, owner and
// group, through a symbolic link to the file it names. A missing one is created (mode 0644
// less the umask).
func Restore(ctx context.Context, r io.Reader, path string, opts ...RestoreOption) (RestoreInfo, error) {
	o := restoreOptions{fs: OS}
	for _, opt := range opts {
		opt(&o)
	}
	var info RestoreInfo
	write := func(ctx context.Context, f File) error {
		var err error
		info, err = restoreInto(ctx, f, r, &o)
		return err
	}
	target, exists, err := restoreTarget(o.fs, path)
	switch {
	case err != nil:
		return info, fmt.Errorf("db: restore %s: %w", path, err)
	case exists:
		err = Replace(ctx, path, write, WithFS(o.fs))
	default:
		err = create(ctx, o.fs, target, write)
	}
	return info, err
}

// restoreTarget says whether a file exists at path (symbolic links followed) and, when none
// does, where the new one goes: path, or the name a dangling symbolic link at path names, so
// that the link stays and names the restored file.
func restoreTarget(fsys FS, path string) (target string, exists bool, err error) {
	if _, err := fsys.Resolve(path); err == nil {
		return path, true, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	if fsys != OS {
		return path, false, nil
	}
	target = path
	for range 40 { // a chain of links, each dangling at its end; a loop gives up
		fi, err := os.Lstat(target)
		if errors.Is(err, fs.ErrNotExist) {
			return target, false, nil
		}
		if err != nil {
			return "", false, err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return target, true, nil // it appeared meanwhile: Replace decides
		}
		to, err := os.Readlink(target)
		if err != nil {
			return "", false, err
		}
		if !filepath.IsAbs(to) {
			to = filepath.Join(filepath.Dir(target), to)
		}
		target = to
	}
	return "", false, fmt.Errorf("too many symbolic links at %s", path)
}

// create writes a new file at path, which does not exist, through "<path>.replace", locked from
// its creation, and puts it in place only if nothing appeared at path meanwhile (a link, which
// never replaces; the FS's Rename where it has no Link): a writer that created the database
// while the restore ran keeps it. A "<path>.replace" another restore holds (its lock) is left
// alone: LOCKED.
func create(ctx context.Context, fsys FS, path string, write func(context.Context, File) error) error {
	tmp := path + replaceSuffix
	if old, err := fsys.OpenFile(tmp, OpenReadOnly); err == nil {
		lerr := old.Lock()
		old.Close()
		if errors.Is(lerr, ErrLocked) {
			return newError(CodeLocked, path, "another restore of it is running (it holds "+tmp+")", nil)
		}
		if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("db: restore %s: remove a stale %s: %w", path, tmp, err)
		}
	}
	f, err := fsys.OpenFile(tmp, OpenCreateNew)
	if errors.Is(err, fs.ErrExist) {
		return newError(CodeLocked, path, "another restore of it is running (it created "+tmp+")", nil)
	}
	if err != nil {
		return fmt.Errorf("db: restore %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			if same, _ := f.Is(tmp); same {
				_ = fsys.Remove(tmp)
			}
		}
		f.Close()
	}()
	if err := f.Lock(); err != nil { // locked before it has the name, as a rewrite's
		return fmt.Errorf("db: restore %s: lock %s: %w", path, tmp, err)
	}
	if err := write(ctx, f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("db: restore %s: sync: %w", path, err)
	}
	if same, err := f.Is(tmp); err != nil || !same {
		return newError(CodeIdentity, path, tmp+" was replaced or removed by another program while the restore wrote it; nothing was put in place", err)
	}
	if l, ok := fsys.(interface {
		Link(oldpath, newpath string) error
	}); ok {
		if err := l.Link(tmp, path); errors.Is(err, fs.ErrExist) {
			return newError(CodeIdentity, path, "a file appeared at the path while the restore ran (a writer created the database?); it was left alone, nothing was put in place: restore again", err)
		} else if err != nil {
			return fmt.Errorf("db: restore %s: link: %w", path, err)
		}
		done = true
		if err := fsys.Remove(tmp); err != nil {
			return fmt.Errorf("db: restore %s: the file is in place, but %s could not be removed: %w", path, tmp, err)
		}
	} else {
		if err := fsys.Rename(tmp, path); err != nil {
			return fmt.Errorf("db: restore %s: rename: %w", path, err)
		}
		done = true
	}
	if err := fsys.SyncDir(dirOf(path)); err != nil {
		return fmt.Errorf("db: restore %s: the file is in place, but the directory could not be synced: %w", path, err)
	}
	return nil
}

// restoreInto recovers the stream (recovery.RecoverStream: parallel verification, the file's
// decisions) and appends to f the bytes of each run of records as soon as they are verified,
// so f never holds a byte that did not verify; then it keeps or refuses what it got.
func restoreInto(ctx context.Context, f File, r io.Reader, o *restoreOptions) (RestoreInfo, error) {
	var info RestoreInfo
	var prefix uint32 // CRC-32C of what f holds, for RestoreExpect
	add := func(off int64, b []byte) error {
		if err := f.Append(b); err != nil {
			return walerr.Wrap(walerr.IO, off, err, "writing the restored file")
		}
		prefix = crc32.Update(prefix, castagnoli, b)
		info.Size = off + int64(len(b))
		return nil
	}
	write := func(off int64, b []byte) error {
		if info.Size == 0 && off > 0 { // the v1 file header, before the first record
			if err := add(0, format.FileHeader[:off]); err != nil {
				return err
			}
		}
		return add(off, b)
	}
	ropts := []recovery.Option{recovery.WithParallelism(o.par), recovery.WithVerifiedBytes(write)}
	if o.maxRecord > 0 {
		ropts = append(ropts, recovery.WithMaxRecordSize(o.maxRecord))
	}
	res, err := recovery.RecoverStream(ctx, r, recovery.Discard, ropts...)
	info.Received, info.Records, info.Ops = res.Size, res.Records, res.Ops
	if err != nil {
		return info, err
	}
	if info.Size == 0 && res.Layout == recovery.LayoutV1 && res.Size >= format.FileHeaderSize {
		// A v1 log of a file header and no record (whatever tail follows).
		if err := add(0, format.FileHeader[:]); err != nil {
			return info, err
		}
	}
	if t := res.Truncation; t != nil {
		if !o.prefix {
			return info, walerr.New(walerr.TailDamage, t.Offset, fmt.Sprintf(
				"the stream ends with %d bytes that are not a whole, verified record (%s): a backup cut off or damaged at its end; nothing was replaced", t.Bytes, t.Reason)).
				WithHint("walrec restore --prefix keeps the records before it")
		}
		info.Tail = t.Bytes
	}
	if e := o.expect; e != nil {
		if info.Size != e.End {
			what := "shorter"
			if info.Size > e.End {
				what = "longer"
			}
			return info, walerr.New(walerr.IncompleteRead, info.Size, fmt.Sprintf(
				"the stream holds a log of %d bytes, %s than the backup it should hold (%d bytes): nothing was replaced", info.Size, what, e.End))
		}
		if prefix != e.Prefix {
			return info, walerr.New(walerr.CorruptWAL, 0, fmt.Sprintf(
				"the stream holds a log of the backup's length whose bytes are not the backup's (CRC-32C %08x, the backup's %08x): nothing was replaced", prefix, e.Prefix))
		}
	}
	return info, nil
}
