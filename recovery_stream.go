package recovery

import (
	"context"
	"fmt"
	"io"
	"runtime"

	"github.com/streamwal/recovery/pipeline"
	"github.com/streamwal/recovery/walerr"
)

// DefaultStreamSpool is how much of a stream RecoverStream holds after a bad record to
// classify it (WithStreamSpool).
const DefaultStreamSpool = 64 << 20

// WithStreamSpool sets how many bytes RecoverStream holds after the first bad record of a
// stream to search them for evidence of a later write, as a file's recovery searches the rest
// of the file (default 64 MiB). A stream with more than that after a bad record is refused with
// CORRUPT_WAL: the damage cannot be proven to be a torn tail. RecoverStream only.
func WithStreamSpool(n int64) Option { return func(o *options) { o.spool = n } }

// RecoverStream replays the log that r yields (a pipe, a socket, an HTTP body: read once, in
// order, never seeked) into app, with the same decisions as Recover on a file of the same
// bytes, the same typed errors and offsets, CRCs verified in parallel, and memory bounded by
// the pool (WithPoolDepth x WithReadSize), a read-ahead of up to 256 KiB, the largest record
// (twice while its buffer grows with its bytes), and, after a bad record, the spool
// (WithStreamSpool).
//
// A stream cannot be cut: a torn or damaged tail is reported in Result.Truncation with
// Result.Truncated false, never dropped silently; the caller decides (db.Restore refuses it
// unless asked for the prefix). ReadOnly and WithBeforeTruncate have nothing to do here.
// Result.Size is the bytes read from the stream. Result.Parallelism is the verifiers' bound.
//
// The shape is the design's literal one (docs/design.md): one source goroutine reads header,
// then payload, into pooled buffers; a bounded errgroup of verifiers checks them; the caller's
// goroutine is the one ordered applier. A panic in r's Read or in the Preparer is raised again
// on the caller's goroutine as a *Panic; a runtime.Goexit in the Preparer ends the caller's
// goroutine; a panic in the Applier happens on the caller's goroutine itself. When RecoverStream
// returns while the source is inside r's Read (the context is done, or the decision was made
// with more of the stream unread), that goroutine is left there: it reads nothing more and
// exits when the Read returns.
func RecoverStream(ctx context.Context, r io.Reader, app Applier, opts ...Option) (Result, error) {
	if r == nil {
		return Result{}, walerr.New(walerr.InvalidArgument, -1, "nil Reader")
	}
	o := options{readSize: DefaultReadSize, maxRecord: DefaultMaxRecord, spool: DefaultStreamSpool}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.check(); err != nil {
		return Result{}, err
	}
	if o.spool < 0 {
		return Result{}, walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("stream spool %d < 0", o.spool))
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
	if err := ctx.Err(); err != nil {
		return Result{}, walerr.Wrap(walerr.Canceled, 0, err, "recovery not started")
	}
	cfg := pipeline.StreamConfig{
		Config: pipeline.Config{
			Parallelism: o.parallelism, Depth: o.depth, ReadSize: o.readSize, MaxRecord: uint32(o.maxRecord), Mode: o.mode,
			Preparer: o.prepare, Progress: o.progress, Verified: o.verified,
		},
		Spool: o.spool,
	}
	pre, pst, err := pipeline.RunStream(ctx, r, app, cfg)
	res := Result{Layout: pre.Layout, Size: max(pst.Read, 0)}
	if pre.TornHeader && err == nil {
		res.Truncation = &Truncation{Offset: 0, Bytes: res.Size, Reason: ReasonTornHeader, Detail: "a prefix of the file header and nothing else"}
		if o.mode == Strict {
			return res, walerr.New(walerr.TailDamage, 0, "the stream is a torn file header and nothing else (torn_header); strict mode refuses it")
		}
		return res, nil
	}
	if pre.Layout != LayoutUnknown && !pre.Empty && (err == nil || pst.End > 0) {
		res.Parallelism = pst.Workers
	}
	res.Records, res.Ops, res.Bytes = pst.Records, pst.Ops, pst.Bytes
	res.LargestRecord, res.End = pst.LargestRecord, pst.End
	res.PeakBuffered = pst.Allocated
	res.Size = max(res.Size, res.End)
	res.Truncation = pst.Truncation
	return res, err
}
