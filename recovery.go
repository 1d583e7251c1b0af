// Package recovery opens an embedded database's write-ahead log by streaming it: records are
// read in large sequential reads into a bounded pool of buffers, verified (CRC-32, op parsing)
// in parallel, and replayed strictly in file order by one applier that also makes every
// decision about damage, exactly as a sequential loop would.
//
//	res, err := recovery.Recover(ctx, f, recovery.ApplyFunc(func(r recovery.Record) error {
//		it := r.Ops()
//		for it.Next() {
//			key, value := it.Key(), it.Value() // alias a pooled buffer: copy what you keep
//			...
//		}
//		return nil
//	}), recovery.WithParallelism(0))
//
// A torn tail from a crash is cut off and reported (Result.Truncation); corruption with
// evidence of later writes behind it refuses to open (ErrCorruptWAL) and touches nothing; a
// short read is an I/O error (ErrIncompleteRead), never a reason to truncate. The rules are in
// docs/classification.md, the design in docs/design.md.
package recovery

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/pipeline"
	"github.com/streamwal/recovery/walerr"
)

// File is the read side of a log: positional reads and a size (bytes.Reader,
// io.SectionReader and the database's files all qualify).
type File interface {
	io.ReaderAt
	Size() int64
}

// WritableFile is a File that recovery may cut and sync. Recover needs one only when it
// decides a truncation and is not read-only.
type WritableFile interface {
	File
	Truncate(size int64) error
	Sync() error
}

// CurrentSizer is implemented by a WritableFile that can measure its size now (as opposed to
// the size at open, which Size reports). Before cutting, Recover checks that the file has not
// changed size since it was opened.
type CurrentSizer interface {
	CurrentSize() (int64, error)
}

// The names below are the types a caller of Recover meets, given here so that one import
// suffices; each is documented in its own package (apply, format, classify, walerr), which a
// program needing only that piece may import alone.

// Record, Applier and friends: see package apply.
type (
	Record  = apply.Record
	Applier = apply.Applier
	// ApplyFunc adapts a function to Applier.
	ApplyFunc = apply.Func
	// Preparer is per-record work done in parallel before the Applier sees a record. A
	// runtime.Goexit in it during read-ahead (parallelism > 1) ends the caller's goroutine,
	// where parallelism 1 returns a decision: see WithPrepare.
	Preparer    = apply.Preparer
	PrepareFunc = apply.PrepareFunc
	Op          = format.Op
	Layout      = format.Layout
)

// Discard is an Applier that keeps nothing.
var Discard = apply.Discard

// Layouts.
const (
	LayoutUnknown = format.LayoutUnknown
	LayoutLegacy  = format.LayoutLegacy
	LayoutV1      = format.LayoutV1
)

// Mode, Truncation and Reason: see package classify.
type (
	Mode       = classify.Mode
	Truncation = classify.Truncation
	Reason     = classify.Reason
)

const (
	Tolerate    = classify.Tolerate
	Strict      = classify.Strict
	PointInTime = classify.PointInTime

	ReasonTornHeader  = classify.TornHeader
	ReasonTornTail    = classify.TornTail
	ReasonDamagedTail = classify.DamagedTail
	ReasonCorrupt     = classify.Corrupt
)

// Errors: see package walerr.
type (
	Error = walerr.Error
	Code  = walerr.Code
)

const (
	CodeNotADatabase       = walerr.NotADatabase
	CodeUnsupportedVersion = walerr.UnsupportedVersion
	CodeCorruptWAL         = walerr.CorruptWAL
	CodeIncompleteRead     = walerr.IncompleteRead
	CodeRecordTooLarge     = walerr.RecordTooLarge
	CodeTailDamage         = walerr.TailDamage
	CodeIO                 = walerr.IO
	CodeCanceled           = walerr.Canceled
	CodeInvalidArgument    = walerr.InvalidArgument
	CodeApplyFailed        = walerr.ApplyFailed
)

var (
	ErrNotADatabase       = walerr.ErrNotADatabase
	ErrUnsupportedVersion = walerr.ErrUnsupportedVersion
	ErrCorruptWAL         = walerr.ErrCorruptWAL
	ErrIncompleteRead     = walerr.ErrIncompleteRead
	ErrRecordTooLarge     = walerr.ErrRecordTooLarge
	ErrTailDamage         = walerr.ErrTailDamage
	ErrIO                 = walerr.ErrIO
	ErrCanceled           = walerr.ErrCanceled
	ErrInvalidArgument    = walerr.ErrInvalidArgument
	ErrApplyFailed        = walerr.ErrApplyFailed
)

// CodeOf returns err's Code, or "" when err is not a recovery error.
func CodeOf(err error) Code { return walerr.CodeOf(err) }

// IsCorruption reports whether err says the log is damaged or is not a log we can read
// (as opposed to I/O, cancellation or a bad argument).
func IsCorruption(err error) bool { return walerr.IsCorruption(err) }

// Result is what a recovery did, in a form a caller can log.
type Result struct {
	Layout        Layout
	Size          int64 // file size at open
	Records       int64 // records replayed
	Ops           int64 // ops replayed
	Bytes         int64 // record bytes replayed, headers included
	LargestRecord int64 // largest payload replayed
	End           int64 // offset just past the last replayed record
	Parallelism   int   // workers that ran (1: the sequential loop, also for a log of one chunk; at most one per chunk; 0 when no record was read: an empty file, a torn file header, a refused prefix)
	PeakBuffered  int64 // most bytes the buffer pool ever held (its own accounting)

	// Truncation is the cut recovery decided, nil if none. Truncated says it was carried out
	// (false in read-only mode, where it is only reported).
	Truncation *Truncation
	Truncated  bool
}

// Defaults, chosen by measurement (docs/benchmarks.md).
const (
	DefaultReadSize  = 1 << 20
	DefaultMaxRecord = classify.DefaultMaxRecord
)

// Upper bounds on the knobs, so that a typo cannot allocate a billion buffers.
const (
	maxDepth       = pipeline.MaxDepth
	maxParallelism = pipeline.MaxParallelism
)

type options struct {
	parallelism    int
	depth          int
	readSize       int
	maxRecord      int64
	mode           Mode
	readOnly       bool
	progress       func(applied, total int64)
	beforeTruncate func(Truncation) error
	prepare        Preparer
	spool          int64 // RecoverStream only
	verified       func(off int64, b []byte) error
}

// Option configures Recover and RecoverStream.
type Option func(*options)

// WithParallelism sets the number of worker goroutines, each of which reads, verifies and (in
// turn, in file order) applies whole chunks: 1 is the plain sequential loop (no goroutines at
// all), 0 (the default) is GOMAXPROCS, n > 1 is n workers. For RecoverStream it bounds the
// verifiers at once (a stream always has its source goroutine).
func WithParallelism(n int) Option { return func(o *options) { o.parallelism = n } }

// WithPoolDepth sets how many buffers the pool holds (a file's recovery in parallel; a
// stream's always, at least 2); default parallelism + 3.
// Each buffer holds a read, the record that runs past it (up to a read), 4 bytes per record and,
// with a Preparer (WithPrepare), the words it returns and 4 more bytes per record;
// a record larger than a read is held once, in one shared buffer. With records much smaller
// than a read, peak recovery memory is about depth x read size (docs/design.md, "The memory
// bound", has the exact bound).
func WithPoolDepth(d int) Option { return func(o *options) { o.depth = d } }

// WithReadSize sets the size of each sequential read (default 1 MiB, from 4 KiB to 1 GiB).
func WithReadSize(n int) Option { return func(o *options) { o.readSize = n } }

// WithMaxRecordSize sets the largest payload recovery accepts (default 1 GiB, at most
// 0xFFFFFFFE). A larger record refuses with ErrRecordTooLarge and is never buffered.
func WithMaxRecordSize(n int64) Option { return func(o *options) { o.maxRecord = n } }

// WithPrepare runs p on every verified record in the parallel stage, on the workers, before
// the Applier receives it with p's words in Record.Prepared (see Preparer): the heavy
// per-record work a store needs (parsing, hashing, checksums) then runs on every core, and the
// ordered applier only links. At parallelism 1 it runs on the caller's goroutine, just before
// each chunk is applied.
//
// In parallel p also runs on read-ahead: records past the point where the stream is decided
// (a damaged record, a failing Applier), which parallelism 1 never prepares. A panic in p there
// is dropped with the read-ahead, and the decision is returned as at parallelism 1. A
// runtime.Goexit in p there (t.Fatal in a test's Preparer, say) cannot be kept for later: it
// ends the recovery and, raised again on it, the caller's goroutine (Recover does not return),
// where parallelism 1 returns a decision. A panic or Goexit in p on a record that is applied
// reaches the caller at every parallelism.
func WithPrepare(p Preparer) Option { return func(o *options) { o.prepare = p } }

// WithVerifiedBytes registers fn, which gets the log's own bytes of the records replayed,
// headers included, in file order, right after the Applier had them: off is where b starts in
// the file (the file header, before the first record of a v1 log, is not among them), and b
// aliases a pooled buffer, valid during the call only. Every byte fn gets was verified; fn
// gets no byte of a record that was not replayed. Backups and restores copy a log with it,
// without reading it twice. An error from fn stops recovery as the Applier's does
// (APPLY_FAILED).
func WithVerifiedBytes(fn func(off int64, b []byte) error) Option {
	return func(o *options) { o.verified = fn }
}

// WithMode sets what recovery may do about damage (default Tolerate).
func WithMode(m Mode) Option { return func(o *options) { o.mode = m } }

// ReadOnly makes Recover report what it would cut instead of cutting: it never writes.
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithProgress registers a callback, called by the applier (see Applier) after each chunk
// with the offset replayed so far and the file size (0 for a stream, whose size is not known).
func WithProgress(fn func(applied, total int64)) Option {
	return func(o *options) { o.progress = fn }
}

// WithBeforeTruncate registers a callback that runs after a truncation is decided and before
// the file is cut (the database copies the bytes to a sidecar file there). An error from it
// aborts recovery with the file untouched.
func WithBeforeTruncate(fn func(Truncation) error) Option {
	return func(o *options) { o.beforeTruncate = fn }
}

func (o *options) check() error {
	bad := func(format string, a ...any) error {
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf(format, a...))
	}
	switch {
	case o.parallelism < 0:
		return bad("parallelism %d < 0", o.parallelism)
	case o.readSize < 4<<10 || o.readSize > 1<<30:
		return bad("read size %d outside [4 KiB, 1 GiB]", o.readSize)
	case o.maxRecord < 1 || o.maxRecord > classify.MaxRecordLimit:
		return bad("maximum record size %d outside [1, %d]", o.maxRecord, int64(classify.MaxRecordLimit))
	case o.mode > PointInTime:
		return bad("unknown mode %d", o.mode)
	case o.depth < 0 || o.depth == 1 || o.depth > maxDepth:
		return bad("pool depth %d outside [2, %d] (0: the default)", o.depth, maxDepth)
	case o.parallelism > maxParallelism:
		return bad("parallelism %d > %d", o.parallelism, maxParallelism)
	case uint64(o.maxRecord)+uint64(o.readSize)+format.V1HeaderSize > math.MaxInt:
		return bad("maximum record size %d plus read size %d does not fit this platform's int", o.maxRecord, o.readSize)
	}
	return nil
}

// Recover replays the log in f into app and returns what it did. See the package comment.
//
// Every error is a *Error (errors.As), with a Code and an Offset. On error the Result still
// describes what was measured before the failure (size, layout, the records replayed: the
// caller should discard what app received), and the file is untouched, with one exception
// that Result.Truncated reports: when the cut was made but the sync after it failed (code
// IO_ERROR), the cut is in the file but may not survive a crash. When a cut was decided but
// not made (strict mode's TAIL_DAMAGE, a WithBeforeTruncate hook that failed, a file that
// cannot be cut), Result.Truncation is that cut and Result.Truncated is false.
//
// Recover returns as soon as the outcome is decided or ctx is done: it does not wait for reads
// the outcome no longer needs (read-ahead past the decision; after ctx ended, any read a
// stalled disk holds, the evidence search's included). What may outlive the call is exactly
// this: a worker goroutine in a call of f.ReadAt at that moment (or entering one it had
// checked for just before), with the one buffer it reads into. When that ReadAt returns,
// whatever it returned (bytes, an error, a panic, a runtime.Goexit) is discarded, the buffer
// is released and the goroutine exits. No read starts once a worker has seen ctx done or the
// recovery stopping. So f's ReadAt may still be called and return shortly after Recover
// returned, after Recover cut the file or after the caller closed it: its result is never
// used. A call of the Applier, the Preparer or the progress callback in flight is waited for.
// At parallelism 1 every read is made on the caller's goroutine, and nothing outlives the call.
func Recover(ctx context.Context, f File, app Applier, opts ...Option) (Result, error) {
	if f == nil {
		return Result{}, walerr.New(walerr.InvalidArgument, -1, "nil File").
			WithHint("check the error from opening the file before recovering it")
	}
	o := options{readSize: DefaultReadSize, maxRecord: DefaultMaxRecord}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(); err != nil {
		return Result{}, err
	}
	if app == nil {
		app = Discard
	}
	if o.parallelism == 0 {
		o.parallelism = runtime.GOMAXPROCS(0)
	}
	if o.depth == 0 {
		o.depth = o.parallelism + 3
	}
	size := f.Size()
	res := Result{Size: size}
	if size < 0 {
		return res, walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("file reports size %d", size))
	}
	if err := ctx.Err(); err != nil {
		return res, walerr.Wrap(walerr.Canceled, 0, err, "recovery not started")
	}

	pre, err := classify.ReadPrefix(ctx, f, size, uint32(o.maxRecord))
	res.Layout = pre.Layout
	if err != nil || pre.Empty {
		return res, err
	}
	if pre.TornHeader {
		res.Truncation = &Truncation{Offset: 0, Bytes: size, Reason: ReasonTornHeader, Detail: "a prefix of the file header and nothing else"}
		if o.mode == Strict {
			return res, walerr.New(walerr.TailDamage, 0, "the file is a torn file header and nothing else (torn_header); strict mode keeps it").
				WithHint("the file is untouched")
		}
		return finish(f, &o, res)
	}

	cfg := pipeline.Config{
		Parallelism: o.parallelism, Depth: o.depth, ReadSize: o.readSize, MaxRecord: uint32(o.maxRecord), Mode: o.mode,
		Preparer: o.prepare, Progress: o.progress, Verified: o.verified,
	}
	pst, err := pipeline.Run(ctx, f, size, pre.Layout, app, cfg)
	res.Parallelism = pst.Workers
	res.Records, res.Ops, res.Bytes = pst.Records, pst.Ops, pst.Bytes
	res.LargestRecord, res.End = pst.LargestRecord, pst.End
	res.PeakBuffered = pst.Allocated
	res.Truncation = pst.Truncation // with an error: the cut strict mode refused, never made
	if err != nil {
		return res, err
	}
	return finish(f, &o, res)
}

// finish carries out a decided truncation: hook, cut, sync.
func finish(f File, o *options, res Result) (Result, error) {
	t := res.Truncation
	if t == nil || o.readOnly {
		return res, nil
	}
	wf, ok := f.(WritableFile)
	if !ok {
		return res, walerr.New(walerr.InvalidArgument, t.Offset,
			fmt.Sprintf("recovery decided to cut %d bytes (%s) but the file cannot be truncated", t.Bytes, t.Reason)).
			WithHint("pass a WritableFile, or use ReadOnly to only report")
	}
	// The decision was made for the size the file had at open. A file that grew since (a
	// process appending without the database's lock) would lose the new bytes to the cut, and
	// they would be in no sidecar: refuse instead.
	if cs, ok := f.(CurrentSizer); ok {
		now, err := cs.CurrentSize()
		if err != nil {
			return res, walerr.Wrap(walerr.IO, t.Offset, err, "cannot measure the file before cutting it")
		}
		if now != res.Size {
			return res, walerr.New(walerr.IO, t.Offset, fmt.Sprintf(
				"the file changed size during recovery (%d bytes at open, %d now): something else is writing it; nothing was cut", res.Size, now)).
				WithHint("stop the other writer and retry")
		}
	}
	if ro, ok := f.(interface{ readOnly() bool }); ok && ro.readOnly() {
		return res, walerr.New(walerr.InvalidArgument, t.Offset,
			fmt.Sprintf("recovery decided to cut %d bytes (%s) but the file is open read-only; nothing was cut", t.Bytes, t.Reason)).
			WithHint("open the file read-write to repair it, or use ReadOnly to only report")
	}
	if o.beforeTruncate != nil {
		if err := o.beforeTruncate(*t); err != nil {
			return res, walerr.Wrap(walerr.IO, t.Offset, err,
				fmt.Sprintf("the hook before cutting %d bytes (%s) failed; nothing was cut", t.Bytes, t.Reason))
		}
	}
	if err := wf.Truncate(t.Offset); err != nil {
		return res, walerr.Wrap(walerr.IO, t.Offset, err, "truncate failed; nothing was cut")
	}
	res.Truncated = true
	if err := wf.Sync(); err != nil {
		return res, walerr.Wrap(walerr.IO, t.Offset, err, "the file was cut but the sync after it failed: the cut may not survive a crash").
			WithHint("retry the recovery; it is idempotent")
	}
	return res, nil
}

// OSFile adapts an *os.File to WritableFile, with the size it has now.
func OSFile(f *os.File) (WritableFile, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, walerr.Wrap(walerr.IO, -1, err, "stat failed")
	}
	return &osFile{File: f, size: fi.Size(), ro: openedReadOnly(f)}, nil
}

type osFile struct {
	*os.File
	size int64
	ro   bool
}

func (f *osFile) readOnly() bool { return f.ro }

func (f *osFile) Size() int64 { return f.size }

func (f *osFile) CurrentSize() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// String summarises the result on one line, for logs.
func (r Result) String() string {
	s := fmt.Sprintf("layout=%v size=%d records=%d ops=%d bytes=%d largest=%d end=%d parallelism=%d peak_buffered=%d",
		r.Layout, r.Size, r.Records, r.Ops, r.Bytes, r.LargestRecord, r.End, r.Parallelism, r.PeakBuffered)
	if t := r.Truncation; t != nil {
		verb := "would cut"
		if r.Truncated {
			verb = "cut"
		}
		s += fmt.Sprintf(" %s %d bytes at offset %d (%s: %s)", verb, t.Bytes, t.Offset, t.Reason, t.Detail)
	}
	return s
}

// NewRecord builds a Record (for an Applier's own tests): see apply.NewRecord.
func NewRecord(offset int64, headerSize int, payload []byte, numOps int, prepared []uint64) Record {
	return apply.NewRecord(offset, headerSize, payload, numOps, prepared)
}
