// Package db is the embedded database that recovery opens: a single-process, ordered key-value
// store whose one file is the write-ahead log (its contract: docs/database.md; its bytes:
// docs/format.md).
//
//	d, err := db.Open(path, db.WithRecovery(recovery.WithParallelism(0)))
//	err = d.Update(func(tx *db.Tx) error { return tx.Set([]byte("k"), []byte("v")) })
//	err = d.View(func(tx *db.Tx) error {
//		for k, v := range tx.Range(nil, nil) { ... }
//		return nil
//	})
//	err = d.Close()
//
// A read-write transaction that returns nil commits: its ops become ONE record, appended and
// fsync'd before the new state is visible to anyone. Writers' functions are serialized; the
// records of transactions that commit while a group is being synced share the next append and
// fdatasync (group commit). Readers see the snapshot published when they began (a
// copy-on-write clone of the B-tree, never a copy of the store). If an append or fsync fails,
// the database removes the failed bytes, latches into a failed state (ErrFailed) and refuses
// writes until it is reopened. One writer per file (an exclusive lock, ErrLocked); a ReadOnly
// open takes no lock and writes nothing. Compact (or WithAutoCompact) rewrites the log as the
// live state, beside it, then renames it over it.
//
// Open replays the log through recovery.Recover. Before recovery cuts a torn or damaged tail,
// the bytes it cuts are copied to a sidecar file "<path>.cut-<offset>" beside the database and
// synced, so recovery never destroys a byte; every cut is reported to the OnTruncate callback.
// Sidecars lists them and RemoveSidecars deletes them.
package db

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/recoveryopts"
	"github.com/streamwal/recovery/walerr"
)

// Option configures Open.
type Option func(*options)

type options struct {
	fs         FS
	recovery   []recovery.Option
	onTruncate func(TruncationReport)
	noSidecar  bool
	readOnly   bool
	maxRecord  int64
	serial     bool

	autoCompact float64
	onCompact   func(CompactResult, error)
}

// WithRecovery passes options through to recovery.Recover (recovery.WithParallelism(n),
// WithMode, WithReadSize, WithPoolDepth, WithProgress). recovery's ReadOnly,
// WithMaxRecordSize, WithBeforeTruncate and WithPrepare are the database's own settings (the
// writer's record limit, the sidecar copy, the store's loader): Open refuses them with
// INVALID_ARGUMENT; use this package's ReadOnly, WithMaxRecordSize and OnTruncate.
func WithRecovery(opts ...recovery.Option) Option {
	return func(o *options) { o.recovery = append(o.recovery, opts...) }
}

// OnTruncate registers a callback told about every truncation Open's recovery decides (and,
// in a writable open, carried out), with the sidecar file that holds the cut bytes. It is
// called by Open, on Open's goroutine, after recovery and before Open returns.
func OnTruncate(fn func(TruncationReport)) Option { return func(o *options) { o.onTruncate = fn } }

// WithoutSidecar turns off the sidecar copy of the bytes recovery cuts: they are then lost.
func WithoutSidecar() Option { return func(o *options) { o.noSidecar = true } }

// ReadOnly opens the database for inspection: no lock, no write of any kind (a tail that
// recovery would cut is only reported), and every Update fails with ErrReadOnly.
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithoutGroupCommit makes every commit its own append and fdatasync, under the writers' lock
// (the behaviour before group commit; for comparison and for callers that want it).
func WithoutGroupCommit() Option { return func(o *options) { o.serial = true } }

// WithFS sets the filesystem (default OS).
func WithFS(f FS) Option { return func(o *options) { o.fs = f } }

// WithMaxRecordSize sets the largest record the writer writes and recovery accepts (default
// recovery.DefaultMaxRecord, 1 GiB; at most 0xFFFFFFFE). A transaction whose record would be
// larger fails with ErrTxTooLarge.
func WithMaxRecordSize(n int64) Option { return func(o *options) { o.maxRecord = n } }

// TruncationReport describes one cut recovery decided at Open.
type TruncationReport struct {
	Path string // the database file
	recovery.Truncation
	// Sidecar is the file beside the database holding exactly the cut bytes, synced before the
	// cut; "" when none was written (WithoutSidecar, or a read-only open, which cuts nothing).
	Sidecar string
	// Truncated says the cut was made (false in a read-only open: only decided).
	Truncated bool
}

// DB is an open database. Its methods are safe for concurrent use.
type DB struct {
	path      string // as the caller gave it, for messages and reports
	real      string // the file path names, symbolic links followed: what a rewrite replaces
	fs        FS
	readOnly  bool
	maxRecord int64
	res       recovery.Result
	trunc     *TruncationReport

	closed atomic.Bool
	pub    atomic.Pointer[tree] // the committed state readers see; never mutated once stored
	inFn   atomic.Int64         // the goroutine running an Update's function, 0 when none

	mu     sync.Mutex // serializes writers' functions and Close; guards f, w, layout
	f      File       // nil once closed (and always for a read-only open)
	w      *tree      // the state writers clone (the last queued commit's); never mutated itself
	layout format.Layout
	serial bool // WithoutGroupCommit

	// compacting1 holds a token while a compaction or a backup runs (one at a time): a channel,
	// not a mutex, so that waiting for it stops when Close begins (closed).
	compacting1 chan struct{}
	closeCtx    context.Context // done when Close begins
	closeNow    context.CancelFunc
	autoCompact float64 // WithAutoCompact's multiple, 0 for none
	onCompact   func(CompactResult, error)
	live        int64          // the live pairs' share of a compacted log (pairSize), when autoCompact
	compacting  bool           // an automatic compaction is running (guarded by mu)
	bg          sync.WaitGroup // the automatic compaction's goroutine
	closing     atomic.Bool

	cmu     sync.Mutex // guards the commit queue and what the group's leader changes
	idle    sync.Cond  // on cmu: signalled when no group is being written
	queue   []*pending // records waiting for the next group
	leading bool       // a group is being written; its leader hands over to queue[0]
	size    int64      // bytes in the file that are durable: where the next group goes
	end     int64      // size plus the queued records: where the next queued record goes
	failed  error      // the append or fsync error that latched the database
	iov     [][]byte   // the leader's reusable list of the pieces of a group
}

// hdrRoom is the space reserved in front of a transaction's payload for the framing that goes
// with it: the v1 file header (first record of a new file) and a record header, so a commit
// is written with ONE append and no copy of the payload.
const hdrRoom = format.FileHeaderSize + format.V1HeaderSize

var noHeader [hdrRoom]byte

// keepBuf is the largest transaction buffer kept for reuse.
const keepBuf = 1 << 20

// Open opens (creating if missing, unless ReadOnly) the database in the file at path and
// recovers it. A symbolic link is followed, and stays: the database is the file it names, and
// the database's own files (a compaction's new log, sidecars) go beside that file. Errors: ErrLocked when another writer has it; recovery's typed errors
// (recovery.ErrCorruptWAL, ErrIncompleteRead, ErrIO, ...) when the log cannot be replayed, with
// the file untouched.
func Open(path string, opts ...Option) (*DB, error) {
	return OpenContext(context.Background(), path, opts...)
}

// OpenContext is Open that stops when ctx is done while the log is being recovered or the
// store read back: it then fails with CANCELED, the file as it was (a cut already made and
// reported stays made) and no lock held.
func OpenContext(ctx context.Context, path string, opts ...Option) (*DB, error) {
	o := options{fs: OS, maxRecord: recovery.DefaultMaxRecord}
	for _, opt := range opts {
		opt(&o)
	}
	if owned := recoveryopts.Owned(o.recovery); len(owned) > 0 {
		return nil, &Error{Code: walerr.InvalidArgument, Path: path, Offset: -1,
			Detail: fmt.Sprintf("db.WithRecovery(%s): the database sets this itself (the writer and recovery must agree on it)", strings.Join(owned, ", ")),
			Hint:   "use db.ReadOnly(), db.WithMaxRecordSize, db.OnTruncate instead"}
	}
	if m := o.autoCompact; !(m == 0 || m > 1) || math.IsInf(m, 0) { // before anything is cut
		return nil, &Error{Code: walerr.InvalidArgument, Path: path, Offset: -1, Detail: fmt.Sprintf("WithAutoCompact(%v): the multiple must be more than 1 (0: off)", m)}
	}
	mode := OpenReadWrite
	if o.readOnly {
		mode = OpenReadOnly
	}
	f, real, err := openLocked(o.fs, path, mode, !o.readOnly)
	if err != nil {
		return nil, err
	}
	db := &DB{path: path, real: real, fs: o.fs, readOnly: o.readOnly, maxRecord: o.maxRecord, f: f, serial: o.serial,
		autoCompact: o.autoCompact, onCompact: o.onCompact,
		compacting1: make(chan struct{}, 1)}
	db.closeCtx, db.closeNow = context.WithCancel(context.Background())
	db.idle.L = &db.cmu
	opened := false
	defer func() {
		if !opened { // an error, or a panic (an OnTruncate callback, an Applier): no leaked lock
			f.Close()
		}
	}()
	if err := db.open(ctx, &o); err != nil {
		return nil, err
	}
	opened = true
	if db.readOnly { // everything is in memory now
		db.f = nil
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("db: open %s: close: %w", path, err)
		}
	}
	return db, nil
}

func (db *DB) open(ctx context.Context, o *options) error {
	f := db.f
	size, err := f.Size()
	if err != nil {
		return fmt.Errorf("db: open %s: size: %w", db.path, err)
	}
	if !db.readOnly {
		// The file may have just been created, here or by an earlier open (or another tool)
		// that died before syncing its directory: make its name durable before anything is
		// committed into it, or a crash could take the whole log with it.
		if err := db.fs.SyncDir(dirOf(db.real)); err != nil {
			return fmt.Errorf("db: open %s: sync directory: %w", db.path, err)
		}
	}
	ld := newLoaderFor(size)
	end, err := db.replay(ctx, o, ld, size)
	if err != nil {
		return err
	}
	db.size, db.end = end, end
	db.layout = db.res.Layout
	if end == 0 {
		db.layout = format.LayoutV1 // new files are v1: the header goes with the first record
	}
	if db.w, err = ld.finish(ctx, f, end, db.res.Parallelism); err != nil {
		return fmt.Errorf("db: open %s: %w", db.path, err)
	}
	db.pub.Store(db.w.Clone())
	if db.autoCompact > 0 && !db.readOnly {
		db.w.Ascend(func(it item) bool { db.live += pairSize(it); return true })
	}
	return nil
}

// replay recovers the file's size bytes into ld through recovery.Recover, with the caller's
// recovery options and the database's own (the record limit, read-only, the sidecar copy
// before a cut, the loader's Preparer), reports a cut to OnTruncate, makes what was replayed
// durable, and returns where the log now ends.
func (db *DB) replay(ctx context.Context, o *options, ld *loader, size int64) (int64, error) {
	ropts := append(slices.Clone(o.recovery), recovery.WithMaxRecordSize(o.maxRecord),
		recovery.WithPrepare(recovery.PrepareFunc(ld.prepare)))
	sidecar := ""
	switch {
	case db.readOnly:
		ropts = append(ropts, recovery.ReadOnly())
	case !o.noSidecar:
		ropts = append(ropts, recovery.WithBeforeTruncate(func(t recovery.Truncation) (err error) {
			sidecar, err = db.saveCut(ctx, t)
			return err
		}))
	}
	res, err := recovery.Recover(ctx, &recFile{f: db.f, size: size}, ld, ropts...)
	if err != nil {
		return 0, fmt.Errorf("db: open %s: %w", db.path, err)
	}
	db.res = res
	end := size
	if t := res.Truncation; t != nil {
		if !res.Truncated && !db.readOnly {
			return 0, &Error{Code: walerr.InvalidArgument, Path: db.path, Offset: t.Offset, Detail: fmt.Sprintf(
				"recovery decided to cut %d bytes (%s) but did not; appending after them would bury them mid-log", t.Bytes, t.Reason)}
		}
		if res.Truncated {
			end = t.Offset
		}
		db.trunc = &TruncationReport{Path: db.path, Truncation: *t, Sidecar: sidecar, Truncated: res.Truncated}
		if o.onTruncate != nil {
			o.onTruncate(*db.trunc)
		}
	}
	if !db.readOnly && !res.Truncated {
		// What was replayed is now visible, so it must be durable: bytes appended before an
		// fsync failed (or by a process that died before its fsync) may still be only in the
		// page cache. (A cut has already been synced by recovery.)
		if err := db.f.Sync(); err != nil {
			return 0, fmt.Errorf("db: open %s: sync the replayed log: %w", db.path, err)
		}
	}
	return end, nil
}

// RecoveryFile is a database file as recovery sees it: a recovery.WritableFile whose Size is
// size (the one measured at open) and whose CurrentSize asks the file, so that recovery refuses
// to cut a file that grew meanwhile. For tools that recover a file they opened through an FS
// (walrec recover); Open uses it itself.
func RecoveryFile(f File, size int64) recovery.WritableFile { return &recFile{f: f, size: size} }

// recFile is RecoveryFile's type.
type recFile struct {
	f    File
	size int64
}

func (r *recFile) ReadAt(p []byte, off int64) (int, error) { return r.f.ReadAt(p, off) }
func (r *recFile) Size() int64                             { return r.size }
func (r *recFile) CurrentSize() (int64, error)             { return r.f.Size() }
func (r *recFile) Truncate(size int64) error               { return r.f.Truncate(size) }
func (r *recFile) Sync() error                             { return r.f.Sync() }

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Recovery is what Open's recovery did.
func (db *DB) Recovery() recovery.Result { return db.res }

// Truncation is the cut Open's recovery decided, nil if none (also told to OnTruncate).
func (db *DB) Truncation() *TruncationReport {
	if db.trunc == nil {
		return nil
	}
	t := *db.trunc
	return &t
}

// Update runs fn in a read-write transaction. If fn returns nil and the transaction made any
// change, its ops are committed as one record: appended, fsync'd, then made visible; Update
// returns once its own record is durable. If fn returns an error (or panics), nothing is
// applied and the error is returned. Functions run one at a time, so fn sees every earlier
// commit (a commit waiting for its group's fsync included). Update or Close called from inside
// fn fails with ErrNested rather than waiting for itself (Close then closes nothing).
//
// Group commit: while one group of records is being written and synced, the transactions
// that commit meanwhile queue up, and the next group is written with one append and synced
// with one fdatasync (each transaction is still its own record). If a group's append or
// fsync fails, every Update in it, and every one queued behind it, fails with ErrFailed.
func (db *DB) Update(fn func(*Tx) error) error {
	if db.readOnly {
		return newError(CodeReadOnly, db.path, "the database was opened with db.ReadOnly()", nil)
	}
	g := goid()
	if g == db.inFn.Load() {
		return newError(CodeNested, db.path, "Update called from inside an Update's function (it would wait for itself)", nil)
	}
	p, lead, err := db.prepare(fn, g)
	switch {
	case err != nil || p == nil:
		return err
	case p.done: // committed under the writers' lock (WithoutGroupCommit)
		return p.err
	case !lead:
		if r := <-p.ch; !r.lead {
			return r.err
		}
	}
	return db.lead(p)
}

// pending is a transaction whose record waits in the commit queue.
type pending struct {
	pieces [][]byte    // the record's bytes, in order (framing, ops, big values)
	n      int64       // their total
	pub    *tree       // the state after it, for readers (cloned under the writers' lock: Clone writes to its source)
	buf    *[]byte     // the transaction's buffer, back to the pool once written
	ch     chan result // its outcome, or the order to lead the next group
	done   bool        // WithoutGroupCommit: committed already, with err
	err    error
}

type result struct {
	err  error
	lead bool
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// prepare runs fn under the writers' lock and queues its record. It returns nil when there is
// nothing to commit, and whether the caller leads the next group.
func (db *DB) prepare(fn func(*Tx) error, g int64) (p *pending, lead bool, err error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.f == nil {
		return nil, false, newError(CodeClosed, db.path, "Update after Close", nil)
	}
	if err := db.failedErr(); err != nil {
		return nil, false, err
	}
	bp := bufPool.Get().(*[]byte)
	tx := &Tx{db: db, t: db.w.Clone(), writable: true, buf: append((*bp)[:0], noHeader[:]...)}
	defer tx.close()
	db.inFn.Store(g)
	err = func() error {
		defer db.inFn.Store(0)
		return fn(tx)
	}()
	tx.close() // before the commit: nothing may change the tree once it is being published
	if err == nil {
		err = tx.err
	}
	if err != nil || tx.ops == 0 {
		db.putBuf(bp, tx.buf)
		return nil, false, err
	}
	db.cmu.Lock()
	if db.failed != nil { // a group failed while fn ran: what it built on is gone
		db.cmu.Unlock()
		db.putBuf(bp, tx.buf)
		return nil, false, db.failedErr()
	}
	p = db.frame(tx, bp)
	db.end += p.n
	end := db.end
	db.queue = append(db.queue, p)
	lead = !db.leading
	db.leading = true
	db.cmu.Unlock()
	db.w = tx.t // the next transaction builds on this one, durable or about to be
	db.live += tx.live
	db.maybeCompact(end)
	if db.serial {
		p.err, p.done = db.lead(p), true
	}
	return p, lead, nil
}

// maybeCompact starts an automatic compaction when the log, end bytes with the queued
// records, has outgrown the live data. Called with mu held.
func (db *DB) maybeCompact(end int64) {
	if db.autoCompact == 0 || db.compacting || db.closing.Load() {
		return
	}
	if end < autoCompactFloor || float64(end) <= db.autoCompact*float64(db.live+format.FileHeaderSize) {
		return
	}
	db.compacting = true
	db.bg.Add(1)
	go func() {
		defer db.bg.Done()
		res, err := db.Compact()
		db.mu.Lock()
		db.compacting = false
		db.mu.Unlock()
		if db.onCompact != nil {
			db.onCompact(res, err)
		}
	}()
}

func (db *DB) putBuf(bp *[]byte, b []byte) {
	if cap(b) <= keepBuf {
		*bp = b[:0]
		bufPool.Put(bp)
	}
}

// failedErr is the FAILED error when the database is latched, else nil.
func (db *DB) failedErr() error {
	db.cmu.Lock()
	defer db.cmu.Unlock()
	if db.failed != nil {
		return newError(CodeFailed, db.path, "an earlier commit failed; reopen the database to write again", db.failed)
	}
	return nil
}

// frame lays out the transaction's record in the file's layout: the header goes in place in
// front of tx.buf's payload, and big values are written from the store's own copy (tx.segs)
// rather than copied into the buffer, so a commit holds each value once. A new v1 file's first
// record carries the file header. Called with mu and cmu held (db.end says where the record
// goes).
func (db *DB) frame(tx *Tx, bp *[]byte) *pending {
	b := tx.buf
	n := uint32(tx.size)
	pieces, crc := gather(make([][]byte, 0, 1+2*len(tx.segs)), b, hdrRoom, tx.segs)
	start := hdrRoom - db.layout.HeaderSize()
	format.PutHeader(b[start:hdrRoom], db.layout, n, crc)
	if db.layout != format.LayoutLegacy && db.end == 0 {
		start = 0
		copy(b, format.FileHeader[:])
	}
	pieces[0] = b[start : hdrRoom+len(pieces[0])]
	*bp = b
	return &pending{pieces: pieces, n: int64(hdrRoom-start) + int64(n), pub: tx.t.Clone(), buf: bp, ch: make(chan result, 1)}
}

// lead writes the queued group that holds p with one append and one fsync, publishes the
// state after its last record, tells every member its outcome, and hands the lead to the
// first record queued meanwhile. Any failure latches the database, removes the group's bytes
// (truncate back to the last durable size, then sync) and fails the group and everything
// queued behind it: a commit that returned an error never comes back on a later open.
func (db *DB) lead(p *pending) error {
	db.cmu.Lock()
	group := db.queue
	db.queue = nil
	db.cmu.Unlock()

	iov := db.iov[:0]
	var n int64
	for _, q := range group {
		iov = append(iov, q.pieces...)
		n += q.n
	}
	err := db.f.Append(iov...)
	what := "commit not applied"
	if err != nil {
		err = fmt.Errorf("append of %d bytes (%d records) at offset %d: %w", n, len(group), db.size, err)
	} else if err = db.f.Sync(); err != nil {
		err = fmt.Errorf("fsync after appending %d bytes (%d records) at offset %d: %w", n, len(group), db.size, err)
		what = "commit not acknowledged"
	}
	clear(iov) // no reference to the values is kept
	db.iov = iov[:0]

	db.cmu.Lock()
	defer db.cmu.Unlock()
	if err != nil {
		err = db.latch(err, what)
		group = append(group, db.queue...) // built on the failed state: they fail too
		db.queue = nil
	} else {
		db.size += n
		db.pub.Store(group[len(group)-1].pub)
	}
	var mine error
	for _, q := range group {
		db.putBuf(q.buf, *q.buf)
		q.pieces, q.pub = nil, nil
		if q == p {
			mine = err
		} else {
			q.ch <- result{err: err}
		}
	}
	if len(db.queue) > 0 {
		db.queue[0].ch <- result{lead: true}
	} else {
		db.leading = false
		db.idle.Broadcast()
	}
	return mine
}

// latch records the failure that stops every later write, removes the failed group's bytes
// (truncate back to the last durable size, then sync) and returns the FAILED error for it.
// If the removal fails too, the error says the commit may or may not survive a crash. Called
// with cmu held.
func (db *DB) latch(cause error, what string) error {
	db.failed = cause
	db.end = db.size
	err := db.f.Truncate(db.size)
	if err == nil {
		err = db.f.Sync()
	}
	if err != nil {
		db.failed = fmt.Errorf("%w; removing its bytes failed too: %w", cause, err)
		return newError(CodeFailed, db.path, what+" (it may or may not survive a crash: its bytes could not be removed); the database refuses writes until it is reopened", db.failed)
	}
	return newError(CodeFailed, db.path, what+" (its bytes were removed from the log); the database refuses writes until it is reopened", db.failed)
}

// View runs fn in a read-only transaction over the state committed when it began.
func (db *DB) View(fn func(*Tx) error) error {
	if db.closed.Load() {
		return newError(CodeClosed, db.path, "View after Close", nil)
	}
	t := db.pub.Load()
	if t == nil {
		return newError(CodeClosed, db.path, "View after Close", nil)
	}
	tx := &Tx{db: db, t: t}
	defer tx.close()
	return fn(tx)
}

// Close waits for a running Update, then closes the file and releases the lock. Views that
// are running finish on their snapshot. Called from inside an Update's function, it returns
// ErrNested and closes nothing (it would wait for itself).
func (db *DB) Close() error {
	if goid() == db.inFn.Load() {
		return newError(CodeNested, db.path, "Close called from inside an Update's function (it would wait for itself); close after Update returns", nil)
	}
	db.closing.Store(true)
	db.closeNow() // a compaction or backup waiting for its turn gives up; a backup stops
	db.mu.Lock()  // a commit that started an automatic compaction before it saw closing is done
	db.mu.Unlock()
	db.bg.Wait() // and that compaction finishes first
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed.Swap(true) {
		return newError(CodeClosed, db.path, "Close twice", nil)
	}
	db.cmu.Lock()
	for db.leading { // the last group's records are durable before the file closes
		db.idle.Wait()
	}
	db.cmu.Unlock()
	db.pub.Store(nil)
	db.w = nil
	if db.f == nil {
		return nil
	}
	f := db.f
	db.f = nil
	if err := f.Close(); err != nil {
		return fmt.Errorf("db: close %s: %w", db.path, err)
	}
	return nil
}

// OpenLocked opens the database file at path as Open does, without recovering it, for tools
// that work on the file itself (walrec recover): it takes the file's exclusive lock
// (ErrLocked while a writer has it open) and checks that path still names the file it locked,
// opening it again when a rename replaced it in between. It returns the file, locked until it
// is closed, and the path of the file (symbolic links followed), beside which the database's
// own files go. Only WithFS of the options applies.
func OpenLocked(path string, mode OpenMode, opts ...Option) (File, string, error) {
	o := options{fs: OS}
	for _, opt := range opts {
		opt(&o)
	}
	return openLocked(o.fs, path, mode, true)
}

// compactTurn waits for the one compaction or backup that may run at a time, and returns
// the function that ends its turn; CLOSED once Close has begun, CANCELED when ctx ends first.
func (db *DB) compactTurn(ctx context.Context, what string) (func(), error) {
	select {
	case db.compacting1 <- struct{}{}:
		return func() { <-db.compacting1 }, nil
	case <-db.closeCtx.Done():
		return nil, newError(CodeClosed, db.path, what+" while the database is closing", nil)
	case <-ctx.Done():
		return nil, walerr.Wrap(walerr.Canceled, -1, ctx.Err(), what+" stopped while it waited for a running compaction or backup").WithPath(db.path)
	}
}

// maxReopen bounds how many times openLocked opens a path again because its file was replaced
// between the open and the lock.
const maxReopen = 100

// openLocked opens the file at path and, when lock is set, takes its exclusive lock and checks
// that path still names the file it locked: a rename may have replaced it between the open and
// the lock (a compaction, a restore, walrec gen --force), and a lock on the replaced file
// excludes no one. It then opens the path again. It returns the file and the path of the file
// (symbolic links followed).
func openLocked(fsys FS, path string, mode OpenMode, lock bool) (File, string, error) {
	for try := 0; ; try++ {
		f, err := fsys.OpenFile(path, mode)
		if err != nil {
			return nil, "", fmt.Errorf("db: open %s: %w", path, err)
		}
		if !lock {
			real, err := fsys.Resolve(path)
			if err != nil {
				real = path
			}
			return f, real, nil
		}
		if err := f.Lock(); err != nil {
			f.Close()
			if errors.Is(err, ErrLocked) {
				return nil, "", err
			}
			return nil, "", fmt.Errorf("db: open %s: lock: %w", path, err)
		}
		same := false
		real, err := fsys.Resolve(path)
		if err == nil {
			same, err = f.Is(real)
		}
		if errors.Is(err, fs.ErrNotExist) {
			err = nil // removed after the open: open it again
		}
		if err != nil {
			f.Close()
			return nil, "", fmt.Errorf("db: open %s: check the locked file is the one the path names: %w", path, err)
		}
		if same {
			return f, real, nil
		}
		f.Close()
		if try == maxReopen {
			return nil, "", newError(CodeLocked, path, fmt.Sprintf(
				"the file was replaced %d times between its open and its lock: another process is rewriting it", try+1), nil)
		}
	}
}
