package db

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/walerr"
)

// compactSuffix names the new log while Compact writes it beside the old one.
const compactSuffix = ".compact"

// compactChunk is the most payload Compact puts in one record (a pair larger than that gets a
// record of its own): records of about a megabyte keep the rewrite's memory bounded and the
// replay's records few.
const compactChunk = 1 << 20

// CompactResult says what a compaction did.
type CompactResult struct {
	Before, After int64 // the log's size when the snapshot was taken, and after (Carried included)
	Pairs         int   // live pairs in the snapshot, written
	Records       int   // records written for them
	// Carried is the bytes of the commits made while the snapshot was written, copied into the
	// new log before the switch.
	Carried  int64
	Duration time.Duration
}

// WithAutoCompact compacts the log in the background whenever, after a commit, it is larger
// than multiple times the live data (the size of a log holding only the live pairs) and at
// least 1 MiB. At most one compaction runs at a time; Close waits for it. done, if not nil,
// is told the outcome of each one (on the compaction's goroutine). multiple must be > 1.
func WithAutoCompact(multiple float64, done func(CompactResult, error)) Option {
	return func(o *options) { o.autoCompact, o.onCompact = multiple, done }
}

// autoCompactFloor: a log smaller than this is never compacted automatically.
const autoCompactFloor = 1 << 20

// pairSize is a pair's share of a log that holds only the live pairs: its set op.
func pairSize(it item) int64 { return 1 + 4 + 4 + int64(len(it.kv)) }

// Compact rewrites the log as the live state: a new file in the same format and layout (one
// set per live pair, in key order, in records of about a megabyte), written beside the old
// one as "<path>.compact" and fsynced, then renamed over it, and the directory fsynced. A
// crash at any instant leaves either the old log or the new one, each complete.
//
// The rewritten file is the same database to everyone else: it has the old file's permission
// bits, owner and group (ErrIdentity, before anything is written, when this process cannot
// give it them), it is locked before it is renamed into place (no other writer can take the
// database at any instant of the switch), and through a symbolic link it is the file the link
// names that is rewritten, in that file's directory, and the link stays.
//
// Readers are never blocked, and writers only while the commits made during the rewrite are
// copied to the new file and the file is switched: the snapshot is the store's copy-on-write
// view, streamed to the file through a bounded buffer (big values are written from the store's
// own copy). A failure before the rename leaves the old log in use and removes the new file;
// a failed directory sync after it latches the database (ErrFailed): which name a crash would
// keep is unknown, though both hold every acknowledged commit.
func (db *DB) Compact() (CompactResult, error) { return db.CompactContext(context.Background()) }

// CompactContext is Compact that stops when ctx is done while the snapshot is being written:
// the new file is removed, the old log stays in use, and the error is CANCELED.
func (db *DB) CompactContext(ctx context.Context) (CompactResult, error) {
	if db.readOnly {
		return CompactResult{}, newError(CodeReadOnly, db.path, "the database was opened with db.ReadOnly()", nil)
	}
	if goid() == db.inFn.Load() {
		return CompactResult{}, newError(CodeNested, db.path, "Compact called from inside an Update's function (it would wait for itself)", nil)
	}
	done, err := db.compactTurn(ctx, "Compact")
	if err != nil {
		return CompactResult{}, err
	}
	defer done()
	start := time.Now()
	snap, err := db.snapshot()
	if err != nil {
		return CompactResult{}, err
	}
	res := CompactResult{Before: snap.from}
	if err := db.stillAtPath(); err != nil {
		return res, err
	}
	nf, tmp, err := newReplacement(db.fs, db.real, compactSuffix)
	if err != nil {
		return res, fmt.Errorf("db: compact %s: %w", db.path, err)
	}
	switched := false
	defer func() {
		if !switched {
			nf.Close()
			_ = db.fs.Remove(tmp)
		}
	}()
	size, err := writeSnapshot(ctx, nf, snap.t, snap.layout, min(compactChunk, snap.maxRecord), &res)
	if err == nil {
		err = nf.Sync()
	}
	if err != nil {
		return res, fmt.Errorf("db: compact %s: write %s: %w", db.path, tmp, err)
	}
	switched, err = db.switchTo(nf, tmp, snap, size, &res)
	res.Duration = time.Since(start)
	return res, err
}

// compactSnapshot is the state a compaction writes: the durable state when it began.
type compactSnapshot struct {
	t         *tree
	from      int64 // the log's durable size then: the commits after it are carried over
	layout    format.Layout
	maxRecord int64
}

// snapshot takes the durable state, with no group in flight, as a copy-on-write clone.
func (db *DB) snapshot() (compactSnapshot, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.f == nil {
		return compactSnapshot{}, newError(CodeClosed, db.path, "Compact after Close", nil)
	}
	from, err := db.quiesce()
	if err != nil {
		return compactSnapshot{}, err
	}
	return compactSnapshot{db.w.Clone(), from, db.layout, db.maxRecord}, nil
}

// switchTo puts the new log nf (size bytes of the snapshot, written and synced under the name
// tmp) in the old one's place, with writers held: the commits made since the snapshot are
// copied into it and synced, it is renamed over the database's file, it becomes the file
// commits go to, the old one is closed, and the directory is synced. It reports whether the
// rename happened (after it, nf is the database's and must not be removed).
func (db *DB) switchTo(nf File, tmp string, snap compactSnapshot, size int64, res *CompactResult) (bool, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.f == nil {
		return false, newError(CodeClosed, db.path, "closed during Compact", nil)
	}
	to, err := db.quiesce()
	if err != nil {
		return false, err
	}
	from := snap.from
	if from == 0 && snap.layout != format.LayoutLegacy {
		from = min(format.FileHeaderSize, to) // the new file has its own header
	}
	if to > from {
		if err := copyRange(nf, db.f, from, to); err != nil {
			return false, fmt.Errorf("db: compact %s: carry the commits made meanwhile: %w", db.path, err)
		}
		if err := nf.Sync(); err != nil {
			return false, fmt.Errorf("db: compact %s: sync %s: %w", db.path, tmp, err)
		}
		res.Carried = to - from
		size += to - from
	}
	if err := db.stillAtPath(); err != nil {
		return false, err
	}
	if err := db.fs.Rename(tmp, db.real); err != nil {
		return false, fmt.Errorf("db: compact %s: rename: %w", db.path, err)
	}
	old := db.f
	db.f = nf
	if size == 0 { // a legacy log with nothing live: empty, as a new file, which is v1
		db.layout = format.LayoutV1
	}
	db.cmu.Lock()
	db.size, db.end = size, size
	db.cmu.Unlock()
	_ = old.Close()
	res.After = size
	if err := db.fs.SyncDir(dirOf(db.real)); err != nil {
		db.cmu.Lock()
		defer db.cmu.Unlock()
		db.failed = fmt.Errorf("directory sync after renaming the compacted log: %w", err)
		return true, newError(CodeFailed, db.path, "compaction renamed the new log but could not sync the directory: either log may be the one a crash keeps (both hold every acknowledged commit); the database refuses writes until it is reopened", db.failed)
	}
	return true, nil
}

// stillAtPath refuses a rewrite when the path no longer names the file the database has open
// and locked (someone else renamed or removed it): renaming the rewrite over the path would
// replace a file that is not this database's.
func (db *DB) stillAtPath() error {
	same, err := db.f.Is(db.real)
	if err != nil {
		return fmt.Errorf("db: %s: check the path still names the database's file: %w", db.path, err)
	}
	if !same {
		return newError(CodeIdentity, db.path, fmt.Sprintf(
			"%s no longer names the file this database has open (another program renamed, replaced or removed it); nothing was rewritten: close the database and find out what replaced it", db.real), nil)
	}
	return nil
}

// newReplacement creates the file that is to replace the file at real: "<real><suffix>" beside
// it (a stale one from a crash removed first), with real's permission bits, owner and group
// (CreateLike; ErrIdentity before anything is written when they cannot be kept), and locked
// before anything can rename it into place, so that the name never names an unlocked file.
func newReplacement(fsys FS, real, suffix string) (File, string, error) {
	tmp := real + suffix
	if err := fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("remove a stale %s: %w", tmp, err)
	}
	nf, err := fsys.CreateLike(tmp, real)
	if err != nil {
		return nil, "", err
	}
	if err := nf.Lock(); err != nil {
		nf.Close()
		_ = fsys.Remove(tmp)
		return nil, "", fmt.Errorf("lock %s: %w", tmp, err)
	}
	return nf, tmp, nil
}

// quiesce waits until no group is being written and returns the durable size, or the FAILED
// error. Called with mu held (so nothing new is queued).
func (db *DB) quiesce() (int64, error) {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	for db.leading {
		db.idle.Wait()
	}
	if db.failed != nil {
		return 0, newError(CodeFailed, db.path, "an earlier commit failed; reopen the database to write again", db.failed)
	}
	return db.size, nil
}

// writeSnapshot writes the file header (v1) and the pairs of t as set ops, in records of at
// most chunk payload bytes (a bigger pair alone in its record), and returns the bytes written.
func writeSnapshot(ctx context.Context, f File, t *tree, layout format.Layout, chunk int64, res *CompactResult) (int64, error) {
	var written int64
	if layout != format.LayoutLegacy {
		if err := f.Append(format.FileHeader[:]); err != nil {
			return 0, err
		}
		written = format.FileHeaderSize
	}
	hs := layout.HeaderSize()
	buf := make([]byte, hs, hs+int(min(chunk, 64<<10)))
	var big [][]byte // pieces: buf segments and big values, when a record holds a big value
	var segs []seg
	var payload int64
	flush := func() error {
		if payload == 0 {
			return nil
		}
		pieces, crc := gather(big[:0], buf, hs, segs)
		format.PutHeader(buf, layout, uint32(payload), crc)
		pieces[0] = buf[:hs+len(pieces[0])]
		if err := f.Append(pieces...); err != nil {
			return err
		}
		clear(pieces)
		big = pieces[:0]
		written += int64(hs) + payload
		res.Records++
		buf, segs, payload = buf[:hs], segs[:0], 0
		return nil
	}
	var err error
	t.Ascend(func(it item) bool {
		n := pairSize(it)
		if payload > 0 && payload+n > chunk {
			if err = ctx.Err(); err != nil { // once a record (about a megabyte)
				err = walerr.Wrap(walerr.Canceled, written, err, "compaction stopped; the old log stays in use")
				return false
			}
			if err = flush(); err != nil {
				return false
			}
		}
		k, v := it.key(), it.value()
		if len(v) >= bigValue {
			buf = format.AppendSet(buf, k, nil)
			binary.BigEndian.PutUint32(buf[len(buf)-4:], uint32(len(v)))
			segs = append(segs, seg{at: len(buf), val: v})
		} else {
			buf = format.AppendSet(buf, k, v)
		}
		payload += n
		res.Pairs++
		return true
	})
	if err == nil {
		err = flush()
	}
	if err != nil && walerr.CodeOf(err) == "" {
		err = walerr.Wrap(walerr.IO, written, err, "writing the compacted log")
	}
	if err != nil {
		return 0, err
	}
	return written, nil
}
