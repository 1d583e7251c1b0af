package db

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/walerr"
)

// A backup is the log itself: the bytes of a prefix of the database's file, up to a record
// boundary, copied exactly. Every prefix of the log that ends at a record boundary is a
// consistent state (a record is one whole transaction), so the copy is a database file of the
// same layout that this library and the TypeScript kernel open as they are, and restoring it
// is opening it; a raw prefix is also what makes an incremental backup possible (the bytes
// appended since the previous one, in the same layout). A compacted state would be smaller
// for a store with much overwritten data, but it takes the store's snapshot into memory-bound
// work on the writer's side and cannot be continued incrementally; Compact before a backup
// when that matters.

// BackupInfo says what a backup holds: the log's bytes [Start, End).
type BackupInfo struct {
	Start int64 `json:"start"` // where in the log the bytes written begin: 0 for a full backup
	End   int64 `json:"end"`   // where they end: an incremental backup after this one starts here
	// Records and Ops count the whole records (each one committed transaction) written, and
	// their ops.
	Records int64 `json:"records"`
	Ops     int64 `json:"ops"`
	// Last is the checksum of the payload of the record that ends at End (0 when none does: an
	// empty backup).
	Last uint32 `json:"last_crc"`
	// Prefix is the CRC-32C of the log's bytes [0, End), all of them (an incremental backup's
	// too: it reads the log from its start anyway). An incremental backup after this one
	// checks that the log's first End bytes still have it, which they do not once the file was
	// rewritten (compacted, restored or replaced), and RestoreExpect checks the restored file
	// against it.
	Prefix uint32 `json:"prefix_crc32c"`
	// Tail is the bytes of the file after End that were not backed up: a commit still being
	// written by the writer (BackupFile, from another process), or damage (then End is where
	// recovery would cut the log, and `walrec verify` says what it is).
	Tail int64 `json:"tail_bytes"`
}

// Bytes is the number of bytes written: End - Start.
func (b BackupInfo) Bytes() int64 { return b.End - b.Start }

// BackupOption configures Backup and BackupFile.
type BackupOption func(*backupOptions)

type backupOptions struct {
	since     *BackupInfo
	par       int
	maxRecord int64
}

// Since makes the backup incremental: only the bytes appended after prev (the BackupInfo of
// an earlier backup of the same database, full or incremental) are written, and the result's
// Start is prev.End. When the log was rewritten since prev (a compaction, a restore, a
// replace), it fails with ErrRewritten and writes nothing: take a full backup.
func Since(prev BackupInfo) BackupOption {
	return func(o *backupOptions) { o.since = &prev }
}

// BackupMaxRecordSize sets the largest record the backup's verification accepts (default
// recovery.DefaultMaxRecord; DB.Backup uses the database's own).
func BackupMaxRecordSize(n int64) BackupOption { return func(o *backupOptions) { o.maxRecord = n } }

// BackupParallelism sets the parallelism of the recovery that verifies the bytes as they are
// copied (recovery.WithParallelism; default 0, one worker per CPU).
func BackupParallelism(n int) BackupOption { return func(o *backupOptions) { o.par = n } }

// Backup writes a hot backup of the database to w while writers go on: the log's bytes up to
// its durable end when Backup began (every acknowledged commit by then, no partial
// transaction), each record's checksum verified on the way (recovery's parallel pipeline in
// read-only mode), in bounded memory. No commit waits for it; a compaction does (one runs at a
// time, and a backup counts as one). Close during a backup makes it fail (the file it reads is
// closed). With Since, it writes only the bytes
// appended after an earlier backup. When it fails, what w received is not a backup: discard it
// (walrec backup writes a temporary file and renames it only once complete).
func (db *DB) Backup(ctx context.Context, w io.Writer, opts ...BackupOption) (BackupInfo, error) {
	if db.readOnly {
		return BackupInfo{}, newError(CodeReadOnly, db.path, "a read-only open keeps no file to back up: use db.BackupFile", nil)
	}
	done, err := db.compactTurn(ctx, "Backup") // the file stays the database's file while it is read
	if err != nil {
		return BackupInfo{}, err
	}
	defer done()
	// Close stops it: its reads fail once the file is closed, and its context ends here.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(db.closeCtx, cancel)()
	db.mu.Lock()
	if db.f == nil {
		db.mu.Unlock()
		return BackupInfo{}, newError(CodeClosed, db.path, "Backup after Close", nil)
	}
	f := db.f
	db.cmu.Lock()
	end := db.size // durable: a group boundary, so a record boundary
	db.cmu.Unlock()
	db.mu.Unlock()
	opts = append([]BackupOption{BackupMaxRecordSize(db.maxRecord)}, opts...)
	info, err := backupLog(ctx, &recFile{f: f, size: end}, end, w, db.path, opts)
	if db.closeCtx.Err() != nil {
		return info, newError(CodeClosed, db.path, "Close came during the backup: what was written is not a backup", err)
	}
	if err == nil && info.Tail > 0 {
		// The durable bytes were verified when they were written or replayed: a tail in
		// them is damage that happened since, not a commit in flight.
		err = newError(CodeFailed, db.path, fmt.Sprintf("the log's durable bytes no longer verify from offset %d: the file was damaged while open", info.End), nil)
	}
	return info, err
}

// BackupFile writes a backup of the database file at path to w from any process, while its
// writer (in another process, or this one) goes on: it opens the file read-only and takes no
// lock, and writes the longest prefix of the file as it was at the open that ends at a record
// boundary and verifies (Tail says how many bytes after it were left: a commit still being
// written). A file that recovery would refuse (a corruption in the middle) is refused the
// same way. A compaction meanwhile does not disturb it: the open file is the old log, whole.
// fsys nil is the OS's filesystem.
func BackupFile(ctx context.Context, fsys FS, path string, w io.Writer, opts ...BackupOption) (BackupInfo, error) {
	if fsys == nil {
		fsys = OS
	}
	f, err := fsys.OpenFile(path, OpenReadOnly)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("db: backup %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return BackupInfo{}, fmt.Errorf("db: backup %s: size: %w", path, err)
	}
	return backupLog(ctx, &recFile{f: f, size: size}, size, w, path, opts)
}

// backupLog writes the verified prefix of the first size bytes of src to w (from the
// incremental start on): recovery, read-only, hands over each run of records it verified and
// replayed (recovery.WithVerifiedBytes), and they are written as they are, so the log is read
// once. Every byte of the prefix, written or not, goes through the prefix checksum.
func backupLog(ctx context.Context, src io.ReaderAt, size int64, w io.Writer, path string, opts []BackupOption) (BackupInfo, error) {
	var o backupOptions
	for _, opt := range opts {
		opt(&o)
	}
	c := &backupCopier{src: src, w: w, path: path}
	if o.since != nil {
		if o.since.End < 0 || o.since.End > size || o.since.Start > o.since.End {
			return BackupInfo{}, rewritten(path, *o.since, fmt.Sprintf("the log is %d bytes now", size))
		}
		c.since, c.written = o.since, o.since.End
		c.checked = o.since.End == 0 && o.since.Prefix == 0 // an empty base: nothing to check
	}
	ropts := []recovery.Option{recovery.ReadOnly(), recovery.WithParallelism(o.par), recovery.WithVerifiedBytes(c.write)}
	if o.maxRecord > 0 {
		ropts = append(ropts, recovery.WithMaxRecordSize(o.maxRecord))
	}
	res, err := recovery.Recover(ctx, &sized{src, size}, c, ropts...)
	if err != nil {
		if walerr.CodeOf(err) == walerr.ApplyFailed && c.err != nil {
			err = c.err // the copier's own error (a write, the since check)
		}
		return c.info(), err
	}
	end := res.End
	if res.Truncation != nil {
		end = res.Truncation.Offset
	}
	if c.summed < end { // a v1 log of a file header and no record: the header is the backup
		if err := c.through(end); err != nil {
			return c.info(), err
		}
	}
	if c.since != nil && !c.checked {
		return c.info(), rewritten(path, *c.since, "the log no longer reaches where it ended")
	}
	c.end, c.tail = end, size-end
	return c.info(), nil
}

// backupCopier is the Applier of a backup (it counts the records) and its writer of verified
// bytes, which keeps the prefix checksum and checks an incremental backup's base.
type backupCopier struct {
	src     io.ReaderAt
	w       io.Writer
	path    string
	since   *BackupInfo
	checked bool   // the log's first since.End bytes were found to be the base's
	prefix  uint32 // CRC-32C of the log's bytes [0, summed)
	summed  int64
	written int64 // the log's bytes before this are written (or skipped: before since.End)
	records int64
	ops     int64
	lastOff int64 // the last record replayed: its offset and header size
	lastHdr int
	last    uint32 // its payload's checksum, taken from its header
	end     int64
	tail    int64
	err     error
}

func (c *backupCopier) Apply(r recovery.Record) error {
	end := r.PayloadOffset() + int64(len(r.Payload))
	c.lastOff, c.lastHdr = r.Offset, int(r.PayloadOffset()-r.Offset)
	if c.since != nil && end <= c.since.End {
		return nil
	}
	if c.since != nil && r.Offset < c.since.End { // a record across the old end: not a boundary
		c.err = rewritten(c.path, *c.since, "a record runs across where it ended")
		return c.err
	}
	c.records++
	c.ops += int64(r.NumOps())
	return nil
}

// write takes the verified bytes b at offset off of the log: the bytes before them that no
// record holds (a v1 file header) first, then b, through the prefix checksum and, past where
// an incremental backup starts, to the output.
func (c *backupCopier) write(off int64, b []byte) error {
	if c.summed < off {
		if err := c.through(off); err != nil {
			return err
		}
	}
	if h := c.lastOff - off; h >= 0 && h+int64(c.lastHdr) <= int64(len(b)) && c.lastHdr >= 8 {
		c.last = binary.BigEndian.Uint32(b[h+int64(c.lastHdr)-4:]) // a header's last word is its payload's CRC
	}
	return c.take(off, b)
}

// through takes the file's bytes [summed, to) from the file (the v1 file header).
func (c *backupCopier) through(to int64) error {
	h := make([]byte, to-c.summed)
	if err := walerr.ReadFull(c.src, h, c.summed); err != nil {
		c.err = err
		return err
	}
	return c.take(c.summed, h)
}

// take sums b (at off, where the sum stands) and writes what comes after written.
func (c *backupCopier) take(off int64, b []byte) error {
	if c.since != nil && !c.checked && off+int64(len(b)) >= c.since.End {
		k := c.since.End - off
		c.prefix = crc32.Update(c.prefix, castagnoli, b[:k])
		if c.prefix != c.since.Prefix {
			c.err = rewritten(c.path, *c.since, "its first bytes are not the ones backed up")
			return c.err
		}
		c.checked = true
		b, off = b[k:], c.since.End
	}
	c.prefix = crc32.Update(c.prefix, castagnoli, b)
	c.summed = off + int64(len(b))
	if skip := c.written - off; skip > 0 {
		if skip >= int64(len(b)) {
			return nil
		}
		b, off = b[skip:], c.written
	}
	if len(b) == 0 {
		return nil
	}
	if _, err := c.w.Write(b); err != nil {
		c.err = walerr.Wrap(walerr.IO, off, err, "writing the backup")
		return c.err
	}
	c.written = off + int64(len(b))
	return nil
}

// castagnoli is CRC-32C's table (hardware-accelerated where the CPU has it).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// info is what the copier has written.
func (c *backupCopier) info() BackupInfo {
	b := BackupInfo{End: c.end, Records: c.records, Ops: c.ops, Tail: c.tail, Prefix: c.prefix, Last: c.last}
	if c.since != nil {
		b.Start = c.since.End
		if c.records == 0 {
			b.Last = c.since.Last
		}
	}
	if b.End == 0 {
		b.End = c.summed
	}
	return b
}

// rewritten is the error for an incremental backup whose base is no longer in the log.
func rewritten(path string, prev BackupInfo, why string) error {
	return newError(CodeRewritten, path, fmt.Sprintf(
		"the log was rewritten (compacted, restored or replaced) since the backup that ended at offset %d (%s): only a full backup is possible", prev.End, why), nil)
}

// sized is a ReaderAt with a fixed size, for recovery.
type sized struct {
	io.ReaderAt
	size int64
}

func (s *sized) Size() int64 { return s.size }
