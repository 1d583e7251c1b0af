package db

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"

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
	fs     FS
	prefix bool
	expect *BackupInfo
	par    int
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
	err := Replace(ctx, path, write, WithFS(o.fs))
	if errors.Is(err, fs.ErrNotExist) && info.Received == 0 {
		err = create(ctx, o.fs, path, write)
	}
	return info, err
}

// create writes a new file at path, which does not exist, through "<path>.replace", renamed
// into place once written and synced.
func create(ctx context.Context, fsys FS, path string, write func(context.Context, File) error) error {
	tmp := path + replaceSuffix
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("db: restore %s: remove a stale %s: %w", path, tmp, err)
	}
	f, err := fsys.OpenFile(tmp, OpenCreateNew)
	if err != nil {
		return fmt.Errorf("db: restore %s: %w", path, err)
	}
	done := false
	defer func() {
		f.Close()
		if !done {
			_ = fsys.Remove(tmp)
		}
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
	if err := fsys.Rename(tmp, path); err != nil {
		return fmt.Errorf("db: restore %s: rename: %w", path, err)
	}
	done = true
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
	var last lastRecord
	write := func(off int64, b []byte) error {
		if info.Size == 0 && off > 0 { // the v1 file header, before the first record
			if err := f.Append(format.FileHeader[:off]); err != nil {
				return walerr.Wrap(walerr.IO, 0, err, "writing the restored file")
			}
			info.Size = off
		}
		if err := f.Append(b); err != nil {
			return walerr.Wrap(walerr.IO, off, err, "writing the restored file")
		}
		info.Size = off + int64(len(b))
		return nil
	}
	res, err := recovery.RecoverStream(ctx, r, &last, recovery.WithParallelism(o.par), recovery.WithVerifiedBytes(write))
	info.Received, info.Records, info.Ops = res.Size, res.Records, res.Ops
	if err != nil {
		return info, err
	}
	if info.Size == 0 && res.Layout == recovery.LayoutV1 && res.Size >= format.FileHeaderSize {
		// A v1 log of a file header and no record (whatever tail follows).
		if err := f.Append(format.FileHeader[:]); err != nil {
			return info, walerr.Wrap(walerr.IO, 0, err, "writing the restored file")
		}
		info.Size = format.FileHeaderSize
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
		if err := expected(f, info, last, *e); err != nil {
			return info, err
		}
	}
	return info, nil
}

// lastRecord is the Applier of a restore: it keeps where the last record is.
type lastRecord struct {
	off int64
	hdr int
	n   int64
}

func (l *lastRecord) Apply(r recovery.Record) error {
	l.off, l.hdr = r.Offset, int(r.PayloadOffset()-r.Offset)
	l.n++
	return nil
}

// payloadCRC reads the last record's payload checksum from its (verified) header in f.
func (l *lastRecord) payloadCRC(f io.ReaderAt) (uint32, error) {
	h := make([]byte, l.hdr)
	if err := walerr.ReadFull(f, h, l.off); err != nil {
		return 0, err
	}
	if l.hdr == format.LegacyHeaderSize {
		return format.DecodeLegacyHeader(h).PayloadCRC, nil
	}
	return binary.BigEndian.Uint32(h[8:]), nil
}

// expected checks that the restored log ends where the backup it should hold ended, with the
// same last record.
func expected(f File, info RestoreInfo, last lastRecord, e BackupInfo) error {
	if info.Size != e.End {
		what := "shorter"
		if info.Size > e.End {
			what = "longer"
		}
		return walerr.New(walerr.IncompleteRead, info.Size, fmt.Sprintf(
			"the stream holds a log of %d bytes, %s than the backup it should hold (%d bytes): nothing was replaced", info.Size, what, e.End))
	}
	if last.n == 0 {
		return nil
	}
	crc, err := last.payloadCRC(f)
	if err != nil {
		return err
	}
	if crc != e.Last {
		return walerr.New(walerr.CorruptWAL, last.off, "the stream's last record is not the backup's last record: nothing was replaced")
	}
	return nil
}
