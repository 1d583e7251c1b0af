// Package pipeline replays a log's records, from its first record on, through the stages of
// recovery: Run for a file (positional reads), RunStream for a stream read once, in order.
// recovery.Recover is Run with the file's prefix read first (classify.ReadPrefix) and the
// decided cut carried out after; a caller who has read the prefix itself may call Run.
// recovery.RecoverStream is RunStream, which reads the stream's prefix itself and never cuts.
// Everything exported here is stable.
//
// The stages are internal: internal/reader reads and carves chunks (source.Check on each
// header), internal/verifier verifies their records (verify.Payload), internal/replay replays
// them into the caller's apply.Applier in file order and hands the first damage to classify,
// and bufpool bounds the memory they hold. Run wires them:
//
//	each of n workers, over and over:                      buffers come back
//	  pool.Get ─► claim chunk k (file order) ─► slots[k%D]◄──────────────────────┐
//	  read chunk k          (in parallel: its extent is fixed in advance)        │
//	  wait carry k ─► carve ─► carry k+1   (the one sequential step: headers)   │
//	  verify chunk k        (CRC + ops, on the core that just read it)           │
//	  ready ─► if nobody is applying: apply every ready chunk from the head,     │
//	           in file order (replay, classify, release) ────────────────────────┘
//
// Reads and checksums run in parallel, each chunk checked by the goroutine that read it while
// its bytes are in that core's cache. Only the walk over record headers (the carry) and the
// decisions are sequential, and the decisions are made by one applier at a time, strictly in
// file order: whichever worker finds the next chunk ready wins a compare-and-swap on the
// applying flag (nobody ever waits for it) and replays what is ready. The caller's goroutine only waits; no
// goroutine is woken per chunk to apply it. Parallelism 1 (or a log of one chunk) is the same
// steps in a plain loop on the caller's goroutine, with no goroutines at all.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/bufpool"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/chunk"
	"github.com/streamwal/recovery/internal/panics"
	"github.com/streamwal/recovery/internal/reader"
	"github.com/streamwal/recovery/internal/replay"
	"github.com/streamwal/recovery/internal/verifier"
	"github.com/streamwal/recovery/walerr"
)

// Config sizes the pipeline and carries the caller's hooks. It has no defaults: Run and
// RunStream refuse (INVALID_ARGUMENT) a parallelism outside [1, MaxParallelism], a read size
// outside [1, MaxReadSize], a maximum record size of 0 or 0xFFFFFFFF, an unknown mode, and in
// parallel a depth outside [2, MaxDepth]. recovery.Recover fills it from its options
// (WithParallelism, WithPoolDepth, WithReadSize, WithMaxRecordSize, WithMode, WithPrepare,
// WithProgress, WithVerifiedBytes), which document each setting and its default.
type Config struct {
	// Parallelism is Run's number of workers, 1 being the sequential loop on the caller's
	// goroutine (no goroutine started); RunStream's bound on verifiers at once (a stream
	// always has its source goroutine).
	Parallelism int
	// Depth is the number of pooled buffers: Run's in parallel (the sequential loop uses
	// one), RunStream's at any parallelism (at least 2).
	Depth     int
	ReadSize  int           // bytes per chunk (Run) or per pooled buffer (RunStream)
	MaxRecord uint32        // largest payload accepted, and so the largest a read is sized for
	Mode      classify.Mode // what classification may decide (the zero value is Tolerate)

	Preparer apply.Preparer             // may be nil; run on the workers (recovery.WithPrepare)
	Progress func(applied, total int64) // may be nil; called by the applier after each chunk
	// Verified, if not nil, gets the bytes of the records replayed, headers included, in file
	// order, after the Applier had them (recovery.WithVerifiedBytes).
	Verified func(off int64, b []byte) error
}

// Upper bounds on Config, so that a typo cannot start a million goroutines or make a pool of a
// million buffers (the pool makes every buffer's header up front) and runs out of memory
// instead of being refused.
const (
	MaxParallelism = 1024
	MaxDepth       = 4096
	MaxReadSize    = 1 << 30
)

func (c Config) check() error {
	switch {
	case c.Parallelism < 1 || c.Parallelism > MaxParallelism:
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: parallelism %d outside [1, %d]", c.Parallelism, MaxParallelism))
	case c.Parallelism > 1 && (c.Depth < 2 || c.Depth > MaxDepth):
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: depth %d outside [2, %d]", c.Depth, MaxDepth))
	case c.ReadSize < 1 || c.ReadSize > MaxReadSize:
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: read size %d outside [1, %d]", c.ReadSize, MaxReadSize))
	case c.MaxRecord < 1 || c.MaxRecord == math.MaxUint32:
		// 0xFFFFFFFF is the length an erased (0xFF) header checks out with: a maximum that
		// admits it would cut an erased tail on its header alone, without the evidence search.
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: maximum record size %d outside [1, %d]", c.MaxRecord, uint32(math.MaxUint32-1)))
	case c.Mode > classify.PointInTime:
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: unknown mode %d", c.Mode))
	case uint64(c.MaxRecord)+uint64(c.ReadSize)+format.V1HeaderSize > math.MaxInt:
		// A record's buffer (its header, and up to a read past it) is sized in ints.
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: maximum record size %d plus read size %d does not fit this platform's int", c.MaxRecord, c.ReadSize))
	}
	return nil
}

// job is what a pooled buffer carries through the pipeline.
type job struct {
	chunk.Batch
	err      error       // a read error the stream cannot go past: reported in file order
	panicked bool        // the caller's ReadAt or Preparer panicked on this chunk (value in panicV)
	panicV   any         // re-raised when the applier reaches the chunk, as the loop would
	ready    atomic.Bool // the worker is done with the chunk: the applier may take it
}

type buffer = bufpool.Buffer[job]

// Run replays the records of the log in r (size bytes, of the given layout, whose prefix the
// caller has read: classify.ReadPrefix) into app, strictly in file order, and classifies the
// first damage as recovery.Recover does. It returns what was replayed, the cut classification
// decided (Stats.Truncation: Run never writes, the caller carries it out) and the memory
// accounting. Its errors are recovery's: a *walerr.Error with a code and an offset, nil when
// the log ends clean or at a decided cut.
//
// It returns once the stream is decided or ctx is done, without waiting for reads that the
// outcome no longer needs. What may outlive the call is exactly this: a worker goroutine
// that is in a call of the caller's ReadAt (r's, the evidence search's included) at that
// moment, or that had passed the check before one just then, with the one buffer it reads into
// (its chunk's pooled buffer, or a window of the search). Stats.Stragglers counts them, and
// Stats.Out the pooled buffers they still hold (at most one each). When such a ReadAt
// returns, whatever it returned (bytes, an error, a panic, a runtime.Goexit) is discarded, the
// buffer goes back to the pool and the goroutine exits; the pool's memory is handed on only
// after the last of them has. No read starts once a worker has seen ctx done or Run stopping:
// every read checks both just before its call. So r's ReadAt may be called, and return, shortly
// after Run returned, on a file the caller may have cut or closed meanwhile: what such a read
// returns is never looked at. Every other goroutine Run started has exited when it returns,
// and every other buffer is back; a call of the caller's Applier, Preparer or progress callback
// in flight is waited for. The sequential loop (parallelism 1, or one chunk) reads on the
// caller's goroutine: nothing outlives it.
//
// A panic in the caller's code (the Applier, the Preparer, r's ReadAt) is re-raised on the
// caller's goroutine once everything else has stopped, as a *recovery.Panic carrying the
// value and the stack where it happened, where the sequential loop would raise it: one in a read the loop would not have made (read-ahead past the point where the stream
// is decided) is dropped with that read. A runtime.Goexit in that code cannot be kept for
// later: it ends the recovery (and, re-raised, the caller's goroutine) wherever it happens,
// read-ahead included, where parallelism 1 may return a decision instead; one in a straggler's
// ReadAt, after Run returned, ends only the straggler.
func Run(ctx context.Context, r io.ReaderAt, size int64, layout format.Layout, app apply.Applier, cfg Config) (Stats, error) {
	if err := cfg.check(); err != nil {
		return Stats{}, err
	}
	if r == nil || app == nil {
		return Stats{}, walerr.New(walerr.InvalidArgument, -1, "pipeline: nil reader or applier")
	}
	if layout != format.LayoutV1 && layout != format.LayoutLegacy {
		return Stats{}, walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: unknown layout %v", layout))
	}
	if size < layout.FirstRecord() {
		return Stats{}, walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: size %d is before the first record of a %v log", size, layout))
	}
	if int64(cfg.ReadSize) > math.MaxInt64-size {
		// A chunk's end (its start plus the read size) would overflow: every chunk would
		// look empty and the stream would end undecided, with nothing replayed.
		return Stats{}, walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: read size %d overflows a %d-byte file's offsets", cfg.ReadSize, size))
	}
	st := &replay.Stage{
		Applier: app, Preparer: cfg.Preparer, Layout: layout, Progress: cfg.Progress, Verified: cfg.Verified,
		File: r, Size: size, Classify: classify.Config{Layout: layout, MaxRecord: cfg.MaxRecord, Mode: cfg.Mode},
		Stats: replay.Stats{End: layout.FirstRecord()},
	}
	src := reader.New(size, layout, cfg.ReadSize, cfg.MaxRecord)
	var stats Stats
	var err error
	if cfg.Parallelism == 1 || src.Chunks() == 1 { // one chunk: nothing to do in parallel
		stats, err = sequential(ctx, r, src, st)
	} else {
		stats, err = parallel(ctx, r, src, cfg, st)
	}
	stats.Replayed = replayed(st, err)
	return stats, err
}

// Replayed is what the ordered applier replayed, and the cut it decided.
type Replayed struct {
	Records       int64 // records replayed
	Ops           int64 // ops replayed
	Bytes         int64 // record bytes replayed, headers included
	LargestRecord int64 // largest payload replayed
	End           int64 // offset just past the last replayed record
	// Truncation is the cut classification decided, nil if none. With an error it is nil, but
	// for strict mode's TAIL_DAMAGE: then it is the cut that was refused.
	Truncation *classify.Truncation
}

// replayed is what st replayed, and the cut it decided: kept with no error, or with strict
// mode's refusal of it; a cut decided just before another error (the context ended, a read
// failed) is not the outcome, and is dropped.
func replayed(st *replay.Stage, err error) Replayed {
	r := Replayed{
		Records: st.Stats.Records, Ops: st.Stats.Ops, Bytes: st.Stats.Bytes,
		LargestRecord: st.Stats.LargestRecord, End: st.Stats.End, Truncation: st.Truncation,
	}
	if err != nil && walerr.CodeOf(err) != walerr.TailDamage {
		r.Truncation = nil
	}
	return r
}

// release gives a buffer back, with the large-record buffer its batch may hold.
func release(src *reader.Reader, pool *bufpool.Pool[job], b *buffer) {
	src.ReleaseBig(&b.Meta.Batch)
	pool.Put(b)
}

func auxOf(src *reader.Reader, b *buffer) []byte {
	if b.Meta.Big {
		return src.Big()
	}
	return b.Aux
}

// Stats is what a run reports: what was replayed, the pool's accounting (the shared buffer for
// large records included) and how many workers ran.
type Stats struct {
	Replayed
	bufpool.Stats
	Workers int // 1: the sequential loop (parallelism 1, or a log of one chunk)
	// Stragglers is how many workers were still inside the caller's ReadAt when Run returned
	// (see Run); Out counts the pooled buffers they hold. Each gives its buffer back and exits
	// when its ReadAt returns.
	Stragglers int
}

func stats(src *reader.Reader, pool *bufpool.Pool[job], workers int) Stats {
	s := pool.Stats()
	s.Allocated += int64(src.BigHeld())
	s.PeakOut += int64(src.BigHeld())
	return Stats{Stats: s, Workers: workers}
}

// sequential is the reference: read, carve, verify, apply, chunk after chunk.
func sequential(ctx context.Context, r io.ReaderAt, src *reader.Reader, st *replay.Stage) (_ Stats, err error) {
	pool := bufpool.New[job](1)
	var held *buffer
	defer func() {
		// The caller's ReadAt, Applier or Preparer panicked: raised again with its stack, as
		// the parallel path raises a worker's (a *panics.Recovered at every parallelism).
		if p := recover(); p != nil {
			panic(panics.Wrap(p))
		}
	}()
	defer func() { // also when the Applier or ReadAt panics: the pool is closed clean
		if held != nil {
			release(src, pool, held)
		}
		pool.Close()
		src.Close()
	}()
	c := src.Start()
	for k := range src.Chunks() {
		if err := ctx.Err(); err != nil {
			return stats(src, pool, 1), canceled(st, err)
		}
		held, _ = pool.Get(ctx) // never blocks: the one buffer is back
		var readErr error
		if !src.Skips(k, c) {
			readErr = src.Read(ctx, r, held, k)
		}
		c, err = src.Carve(ctx, r, held, readErr, &held.Meta.Batch, k, c)
		if err != nil && walerr.CodeOf(err) == walerr.Canceled && ctx.Err() != nil {
			// A read that would have started after ctx was done: none did. The same error as
			// the check above gives, at the offset replayed so far.
			release(src, pool, held)
			held = nil
			return stats(src, pool, 1), canceled(st, ctx.Err())
		}
		done := err != nil
		if !done {
			verifier.Batch(st.Layout, &held.Meta.Batch, held.B, auxOf(src, held), st.Preparer)
			held.SetMetaBytes(held.Meta.MetaBytes())
			done, err = st.Batch(ctx, &held.Meta.Batch, held.B, auxOf(src, held))
		}
		release(src, pool, held)
		held = nil
		if done {
			return stats(src, pool, 1), err
		}
	}
	return stats(src, pool, 1), errNoDecision
}

var (
	errNoDecision = errors.New("pipeline: the stream ended without a decision")
	errStopped    = errors.New("pipeline: stopped")
	errFault      = errors.New("pipeline: a worker panicked or exited")
)

// fault is the first panic (or runtime.Goexit) of a worker, re-raised on the caller.
type fault struct {
	mu     sync.Mutex
	set    bool
	value  any
	goexit bool
}

func (f *fault) record(v any, goexit bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.set {
		f.set, f.value, f.goexit = true, v, goexit
	}
}

func parallel(ctx context.Context, file io.ReaderAt, src *reader.Reader, cfg Config, st *replay.Stage) (Stats, error) {
	n := int(min(int64(cfg.Parallelism), src.Chunks()))
	r := &run{
		src:     src,
		pool:    bufpool.New[job](cfg.Depth),
		total:   src.Chunks(),
		depth:   int64(cfg.Depth),
		slots:   make([]atomic.Pointer[buffer], cfg.Depth),
		done:    make(chan struct{}),
		joined:  make(chan struct{}),
		workers: make([]worker, n),
	}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	defer r.cancel(errStopped)
	// The applier works on a copy of the stage, copied back once Run no longer waits for it:
	// an applier abandoned inside the evidence search's ReadAt writes nothing after (its read
	// unwinds it), but Run returns before that read does. Its reads go through its worker's
	// gate, like the chunks'.
	stage := *st
	stage.File = applierFile{r: r, f: st.File}
	r.st = &stage
	// carries[k%m] holds the carry into chunk k. m = depth+1 slots suffice: chunk k holds a
	// buffer only once chunk k-depth has released its own, so has long taken its carry.
	r.carries = make([]chan reader.Carry, cfg.Depth+1)
	for i := range r.carries {
		r.carries[i] = make(chan reader.Carry, 1)
	}
	r.carries[0] <- src.Start()
	r.waiting.Store(int64(n))
	r.refs.Store(int64(n) + 1) // each worker's, and the caller's: the last one closes the pool
	for i := range r.workers {
		w := &r.workers[i]
		w.r, w.file = r, file
		go r.worker(w)
	}

	select { // the caller waits; the workers read, verify and apply
	case <-r.done:
	case <-r.ctx.Done():
	}
	r.cancel(errStopped)
	stragglers, theirs := r.stop()
	<-r.joined // every worker but the stragglers has exited: nobody else touches any buffer
	for i := range r.slots {
		if b := r.slots[i].Load(); b != nil && !slices.Contains(theirs, b) {
			release(src, r.pool, b)
		}
	}
	st.Stats, st.Truncation = stage.Stats, stage.Truncation
	stats := stats(src, r.pool, n)
	stats.Stragglers = stragglers
	r.unref()
	if r.flt.set {
		if r.flt.goexit {
			runtime.Goexit()
		}
		panic(r.flt.value)
	}
	if r.decided {
		return stats, r.err
	}
	if err := ctx.Err(); err != nil {
		return stats, canceled(st, err)
	}
	return stats, errNoDecision
}

// run is the state of one parallel recovery.
type run struct {
	src    *reader.Reader
	st     *replay.Stage // the applier's copy
	pool   *bufpool.Pool[job]
	total  int64 // chunks
	depth  int64
	ctx    context.Context
	cancel context.CancelCauseFunc
	flt    fault

	carries []chan reader.Carry

	claimMu sync.Mutex
	next    int64       // the next chunk to claim; guarded by claimMu
	ended   atomic.Bool // a carve ended the stream: claim nothing more

	// slots[k%depth] is claimed chunk k's buffer until the applier releases it. At most depth
	// chunks are claimed and not yet released, so a slot is free again when it is reused.
	slots []atomic.Pointer[buffer]

	// The applier is whichever worker set applying (a compare-and-swap: nobody ever waits for
	// it). It replays every ready chunk from head on, in order. Guarded by applying: head,
	// the Stage, cur. (An atomic rather than sync.Mutex.TryLock: the hand-off below needs a
	// failed attempt to be ordered after the ready flag it follows, which a failed TryLock
	// does not promise.)
	applying atomic.Bool
	head     atomic.Int64 // written by the applier; read after it too, to look for work
	cur      *worker      // the applier's worker, whose gate its evidence reads go through
	// Set once, by the applier that decided, before done is closed.
	decided bool
	err     error
	done    chan struct{}

	// Stopping. The caller sets stopping, then abandons every worker inside a read (a
	// straggler); it waits (joined) only for the others. refs counts the caller and every
	// worker until it has exited or, a straggler, given its buffer back: the last one out
	// closes the pool.
	workers  []worker
	stopping atomic.Bool
	waiting  atomic.Int64 // workers the caller still waits for
	joined   chan struct{}
	refs     atomic.Int64
}

// A worker's state, as its gate sees it. Only the worker sets reading and idle; only the
// caller sets abandoned, and only from reading: a straggler never reads again.
const (
	idle int32 = iota
	reading
	abandoned
)

// worker is one worker goroutine's state, and its gate into the caller's ReadAt.
type worker struct {
	r     *run
	file  io.ReaderAt
	state atomic.Int32
	buf   *buffer // the chunk it has claimed and not yet marked ready (nil otherwise)
	_     [64]byte
}

// abandonedRead unwinds a straggler from the ReadAt that returned after Run did, through the
// stages (which then write nothing more) to its worker's deferred function.
type abandonedRead struct{}

// gated calls f.ReadAt, unless Run is returning (errStopped: no read starts then). If Run
// abandons the worker while the call is in flight, the call's outcome is thrown away and
// the worker unwinds (abandonedRead) as soon as it returns.
func (w *worker) gated(f io.ReaderAt, p []byte, off int64) (int, error) {
	w.state.Store(reading)
	if w.r.stopping.Load() { // ordered with stop's: either it sees reading, or we see stopping
		w.leave()
		return 0, errStopped
	}
	defer w.leave() // also when ReadAt panics or calls runtime.Goexit
	return f.ReadAt(p, off)
}

func (w *worker) leave() {
	if !w.state.CompareAndSwap(reading, idle) {
		panic(abandonedRead{})
	}
}

// ReadAt is the worker's gated read of the log (the chunks and the carver's reads).
func (w *worker) ReadAt(p []byte, off int64) (int, error) { return w.gated(w.file, p, off) }

// applierFile is the stage's File as the applier reads it: through its worker's gate.
type applierFile struct {
	r *run
	f io.ReaderAt
}

func (a applierFile) ReadAt(p []byte, off int64) (int, error) { return a.r.cur.gated(a.f, p, off) }

// stop makes Run's return final: no read starts from here on, and every worker inside a read
// is abandoned to finish it alone. It returns how many were, and the buffers they hold.
func (r *run) stop() (stragglers int, theirs []*buffer) {
	r.stopping.Store(true)
	for i := range r.workers {
		w := &r.workers[i]
		if w.state.CompareAndSwap(reading, abandoned) {
			stragglers++
			if w.buf != nil {
				theirs = append(theirs, w.buf)
			}
		}
	}
	if stragglers > 0 && r.waiting.Add(-int64(stragglers)) == 0 {
		close(r.joined)
	}
	return stragglers, theirs
}

// exited is a worker's leaving (not a straggler's): the caller waits for the last one.
func (r *run) exited() {
	if r.waiting.Add(-1) == 0 {
		close(r.joined)
	}
}

// unref drops one reference to the pool and the shared buffer for large records; the last one
// closes them, handing their memory on. A straggler still writing into its buffer (either)
// holds one, so the memory is never handed on under it.
func (r *run) unref() {
	if r.refs.Add(-1) == 0 {
		r.pool.Close()
		r.src.Close()
	}
}

// worker claims chunks in file order and, for each, reads, carves and verifies it, then
// applies whatever is ready. A panic or Goexit (the caller's ReadAt or Applier) stops
// everyone; the caller re-raises it. A straggler (abandoned inside a read) gives its buffer
// back and exits, whatever its read returned.
func (r *run) worker(w *worker) {
	normal := false
	defer func() {
		if w.state.Load() == abandoned { // final: a straggler never reads again
			_ = recover() // abandonedRead, or what a caller's ReadAt raised after Run returned
			if w.buf != nil {
				release(r.src, r.pool, w.buf)
			}
			r.unref()
			return
		}
		if !normal { // a panic here, or a Goexit
			p := recover()
			if p != nil {
				p = panics.Wrap(p) // a chunk's panic the applier raised is one already: its stack is kept
			}
			r.flt.record(p, p == nil)
			r.cancel(errFault)
		}
		r.exited()
		r.unref()
	}()
	for {
		b, err := r.pool.Get(r.ctx)
		if err != nil {
			break
		}
		r.claimMu.Lock()
		if r.next >= r.total || r.ended.Load() || r.ctx.Err() != nil {
			r.claimMu.Unlock()
			release(r.src, r.pool, b)
			break
		}
		k := r.next
		r.next++
		b.Meta.ready.Store(false)
		b.Meta.err, b.Meta.panicked, b.Meta.panicV = nil, false, nil
		r.slots[k%r.depth].Store(b) // from here on the applier releases b (or the cleanup does)
		w.buf = b
		r.claimMu.Unlock()
		if !r.work(w, b, k) {
			break
		}
		w.buf = nil
		b.Meta.ready.Store(true)
		if r.applyReady(w) {
			break
		}
	}
	normal = true
}

// work reads, carves and verifies chunk k in b. It returns false when the pipeline is stopping.
func (r *run) work(w *worker, b *buffer, k int64) bool {
	j := &b.Meta
	in, out := r.carries[k%int64(len(r.carries))], r.carries[(k+1)%int64(len(r.carries))]
	var c reader.Carry
	have := false
	select {
	case c = <-in:
		have = true
	default:
	}
	var readErr error
	if !have || !r.src.Skips(k, c) { // read ahead of the carry: the extent is known
		readErr = r.catch(j, func() error { return r.src.Read(r.ctx, w, b, k) })
	}
	if !have {
		// The carry usually arrives within microseconds (the previous chunk's read began
		// just before ours): look a few times, yielding, before parking. On a small VM a
		// park and wake-up costs more than a whole 64 KiB chunk (BenchmarkTune at 64 KiB reads,
		// parallelism 2: 5.0 GB/s without this spin, 8.4 GB/s with it, alternated in one run).
		for range spins {
			if len(in) > 0 {
				break
			}
			runtime.Gosched()
		}
		select {
		case c = <-in:
		case <-r.ctx.Done():
			return false
		}
	}
	if j.panicked && r.src.Skips(k, c) {
		j.panicked, j.panicV = false, nil // a read the loop would not have made
	}
	if j.panicked {
		c = reader.Carry{Done: true}
	} else if err := r.catch(j, func() (err error) { c, err = r.src.Carve(r.ctx, w, b, readErr, &j.Batch, k, c); return err }); err != nil || j.panicked {
		j.err, c = err, reader.Carry{Done: true}
	}
	if c.Done {
		r.ended.Store(true)
	}
	select {
	case out <- c:
	case <-r.ctx.Done():
		return false
	}
	if j.err == nil && !j.panicked {
		r.catch(j, func() error {
			verifier.Batch(r.st.Layout, &j.Batch, b.B, auxOf(r.src, b), r.st.Preparer)
			return nil
		})
		b.SetMetaBytes(j.MetaBytes())
	}
	return true
}

// catch runs fn, the part of a chunk's work that calls the caller's code (ReadAt, the
// Preparer). A panic there is kept with the chunk and re-raised only when the applier reaches
// it: read-ahead must not turn a panic the sequential loop would never have met (past the
// point where the stream is decided) into the outcome. A runtime.Goexit cannot be kept: it
// ends the recovery wherever it happens (see the worker). A straggler's unwinding
// (abandonedRead) goes on through.
func (r *run) catch(j *job, fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(abandonedRead); ok {
				panic(p)
			}
			j.panicked, j.panicV = true, panics.Wrap(p) // its stack, taken here, before unwinding
		}
	}()
	return fn()
}

// spins is how many times a worker yields while it waits for a carry, before it parks.
const spins = 64

// applyReady applies every ready chunk from the head on, in file order, unless another worker
// is doing it (it will see what became ready: see below). It returns true once the stream is
// decided or the pipeline is stopping.
func (r *run) applyReady(w *worker) bool {
	for {
		if !r.applying.CompareAndSwap(false, true) {
			return false
		}
		r.cur = w
		stop := r.applyHeads()
		r.applying.Store(false)
		if stop {
			return true
		}
		// A chunk that became ready while we were applying was left to us (its worker's
		// compare-and-swap failed): look again now that we are done. Its ready flag was stored
		// before that failed compare-and-swap, and atomics are sequentially consistent, so
		// either it saw applying false (and applies itself) or this load sees the flag.
		if b := r.slots[r.head.Load()%r.depth].Load(); b == nil || !b.Meta.ready.Load() {
			return false
		}
	}
}

// applyHeads is the ordered applier (while applying is ours).
func (r *run) applyHeads() bool {
	for r.head.Load() < r.total {
		if r.decided || r.ctx.Err() != nil {
			return true
		}
		slot := &r.slots[r.head.Load()%r.depth]
		b := slot.Load()
		if b == nil || !b.Meta.ready.Load() {
			return false
		}
		if b.Meta.panicked { // the loop would have met this panic here
			v := b.Meta.panicV
			slot.Store(nil)
			release(r.src, r.pool, b)
			panic(v)
		}
		done, err := true, b.Meta.err
		if err == nil {
			done, err = r.st.Batch(r.ctx, &b.Meta.Batch, b.B, auxOf(r.src, b)) // may panic or Goexit
		}
		if r.stopping.Load() {
			// Run is returning (its context is done): a read this batch needed was refused,
			// and whatever it decided is not reported. The cleanup releases b.
			return true
		}
		slot.Store(nil)
		release(r.src, r.pool, b)
		r.head.Add(1)
		if done {
			r.decide(err)
			return true
		}
	}
	// Every chunk applied and none decided: the last chunk always carries a Stop or an error,
	// so this cannot happen; if it ever does, the caller returns errNoDecision, never hangs.
	if !r.decided {
		r.decide(errNoDecision)
	}
	return true
}

// decide records the outcome and stops the run at once: the read-ahead it no longer needs
// starts no new read.
func (r *run) decide(err error) {
	r.decided, r.err = true, err
	close(r.done)
	r.cancel(errStopped)
}

// canceled types a bare context error at the offset replayed so far; every other error is
// already typed.
func canceled(st *replay.Stage, err error) error {
	var we *walerr.Error
	if err != nil && !errors.As(err, &we) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return walerr.Wrap(walerr.Canceled, st.Stats.End, err, "recovery stopped")
	}
	return err
}
