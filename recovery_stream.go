package recovery

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
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
// the pool (WithPoolDepth x WithReadSize), the largest record, and, after a bad record, the
// spool (WithStreamSpool).
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
	pre, pending, err := streamPrefix(r, uint32(o.maxRecord))
	res := Result{Layout: pre.Layout, Size: int64(len(pending))}
	if err != nil || pre.Empty {
		return res, err
	}
	if pre.TornHeader {
		res.Truncation = &Truncation{Offset: 0, Bytes: int64(len(pending)), Reason: ReasonTornHeader, Detail: "a prefix of the file header and nothing else"}
		if o.mode == Strict {
			return res, walerr.New(walerr.TailDamage, 0, "the stream is a torn file header and nothing else (torn_header); strict mode refuses it")
		}
		return res, nil
	}
	base := int64(0)
	if pre.Layout == format.LayoutV1 {
		pending, base = nil, format.FileHeaderSize
	}
	st := &apply.Stage{
		Applier:  app,
		Preparer: o.prepare,
		Layout:   pre.Layout,
		Progress: o.progress,
		Verified: o.verified,
		Classify: classify.Config{Layout: pre.Layout, MaxRecord: uint32(o.maxRecord), Mode: o.mode},
		Stats:    apply.Stats{End: pre.Layout.FirstRecord()},
	}
	cfg := pipeline.StreamConfig{
		Config: pipeline.Config{Parallelism: o.parallelism, Depth: o.depth, ReadSize: o.readSize, MaxRecord: uint32(o.maxRecord)},
		Spool:  o.spool,
	}
	pst, err := pipeline.RunStream(ctx, r, pending, base, cfg, st)
	res.Parallelism = pst.Workers
	res.Records, res.Ops, res.Bytes = st.Stats.Records, st.Stats.Ops, st.Stats.Bytes
	res.LargestRecord, res.End = st.Stats.LargestRecord, st.Stats.End
	res.PeakBuffered = pst.Allocated
	res.Size = max(pst.Read, res.End)
	res.Truncation = st.Truncation
	return res, err
}

// streamPrefix reads the start of a stream and classifies it as ReadPrefix classifies a file's:
// the 8 bytes of a v1 file header, or, with no magic, a legacy log's whole first record (its
// checksum and ops decide whether it is one). It returns the bytes it read.
func streamPrefix(r io.Reader, maxRecord uint32) (classify.Prefix, []byte, error) {
	head := make([]byte, format.FileHeaderSize)
	n, err := io.ReadFull(r, head)
	head = head[:n]
	switch {
	case errors.Is(err, io.EOF):
		return classify.Prefix{Empty: true}, nil, nil
	case err != nil && !errors.Is(err, io.ErrUnexpectedEOF):
		return classify.Prefix{}, head, walerr.Wrap(walerr.IO, int64(n), err, "read failed")
	case n < format.FileHeaderSize, bytes.Equal(head[:4], format.FileHeader[:4]):
		pre, err := classify.ReadPrefix(context.Background(), bytes.NewReader(head), int64(n), maxRecord)
		return pre, head, err
	}
	h := format.DecodeLegacyHeader(head)
	if h.Length > maxRecord {
		// Too large to hold: its checksum, streamed, decides as the file's does whether it
		// is a record at all.
		c := crc32.NewIEEE()
		m, err := io.CopyN(c, r, int64(h.Length))
		switch {
		case err != nil && !errors.Is(err, io.EOF):
			return classify.Prefix{}, head, walerr.Wrap(walerr.IO, format.LegacyHeaderSize+m, err, "read failed")
		case m < int64(h.Length) || c.Sum32() != h.PayloadCRC:
			return classify.Prefix{}, head, walerr.New(walerr.NotADatabase, 0, "no LRDB magic, and the bytes are not a legacy record either")
		}
		return classify.Prefix{Layout: format.LayoutLegacy}, head, walerr.New(walerr.RecordTooLarge, 0,
			fmt.Sprintf("record of %d bytes, over the maximum record size %d", h.Length, maxRecord))
	}
	// The buffer grows with the bytes that arrive, not with the length the header claims.
	var b bytes.Buffer
	b.Write(head)
	m, err := io.CopyN(&b, r, int64(h.Length))
	if err != nil && !errors.Is(err, io.EOF) {
		return classify.Prefix{}, b.Bytes(), walerr.Wrap(walerr.IO, format.LegacyHeaderSize+m, err, "read failed")
	}
	pre, err := classify.ReadPrefix(context.Background(), bytes.NewReader(b.Bytes()), int64(b.Len()), maxRecord)
	return pre, b.Bytes(), err
}
