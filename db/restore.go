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
// it: a full backup, and its increments after it), in bounded memory: the stream is written
// to a new file beside path ("<path>.replace"), every record of it verified by recovery (the
// same decisions, typed errors and offsets as an open), synced, and only then renamed into
// place, and the directory synced. A crash at any instant leaves the old file (or none) or the
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

// restoreChunk is the size of the copies from the stream to the new file.
const restoreChunk = 1 << 20

// restoreInto copies the stream into f, then verifies what it wrote with a read-only recovery
// of it and keeps (or refuses) accordingly.
func restoreInto(ctx context.Context, f File, r io.Reader, o *restoreOptions) (RestoreInfo, error) {
	var info RestoreInfo
	buf := make([]byte, restoreChunk)
	for {
		if err := ctx.Err(); err != nil {
			return info, walerr.Wrap(walerr.Canceled, info.Received, err, "restore stopped; nothing was replaced")
		}
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if werr := f.Append(buf[:n]); werr != nil {
				return info, walerr.Wrap(walerr.IO, info.Received, werr, "writing the restored file")
			}
			info.Received += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return info, walerr.Wrap(walerr.IO, info.Received, err, "reading the backup stream")
		}
	}
	var last lastRecord
	res, err := recovery.Recover(ctx, &recFile{f: f, size: info.Received}, &last, recovery.ReadOnly(),
		recovery.WithParallelism(o.par))
	info.Records, info.Ops, info.Size = res.Records, res.Ops, info.Received
	if err != nil {
		return info, err
	}
	if t := res.Truncation; t != nil {
		if !o.prefix {
			return info, walerr.New(walerr.TailDamage, t.Offset, fmt.Sprintf(
				"the stream ends with %d bytes that are not a whole, verified record (%s): a backup cut off or damaged at its end; nothing was replaced", t.Bytes, t.Reason)).
				WithHint("walrec restore --prefix keeps the records before it")
		}
		if err := f.Truncate(t.Offset); err != nil {
			return info, walerr.Wrap(walerr.IO, t.Offset, err, "cutting the stream's tail from the restored file")
		}
		info.Size, info.Tail = t.Offset, t.Bytes
	}
	if e := o.expect; e != nil {
		if err := expected(f, info, last, *e); err != nil {
			return info, err
		}
	}
	return info, nil
}

// lastRecord is the Applier of a restore's verification: it keeps where the last record is.
type lastRecord struct {
	off int64 // -1 before the first
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
