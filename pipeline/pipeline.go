// Package pipeline wires the stages of recovery together.
//
//	workers (n goroutines), each for the next chunk k:        applier (the caller's goroutine)
//	  pool.Get ─ claim k, queue the buffer in file order ──►  inOrder (FIFO of claimed chunks)
//	  read chunk k (in parallel: its extent is fixed)                │
//	  wait for carry k ─ carve chunk k ─ send carry k+1  (the one    ▼
//	                                     sequential step)     wait for chunk k's ready,
//	  verify chunk k (CRC + ops, on the core that read it)    replay, classify in file order,
//	  ready ─────────────────────────────────────────────►    release the buffer ──► pool
//
// Reads and checksums run in parallel and each chunk is checked by the goroutine that just
// read it, while its bytes are in that core's cache; only the walk over record headers (the
// carry) and the decisions are sequential. Parallelism 1 is the same steps in a plain loop on
// the caller's goroutine, with no goroutines at all.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/bufpool"
	"github.com/streamwal/recovery/internal/chunk"
	"github.com/streamwal/recovery/source"
	"github.com/streamwal/recovery/verify"
	"github.com/streamwal/recovery/walerr"
)

// Config sizes the pipeline.
type Config struct {
	Parallelism int    // workers; 1 = the sequential loop, no goroutines
	Depth       int    // pooled buffers (parallel only; the sequential loop uses one)
	ReadSize    int    // bytes per chunk
	MaxRecord   uint32 // largest payload a read may be sized for
}

func (c Config) check() error {
	switch {
	case c.Parallelism < 1:
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: parallelism %d < 1", c.Parallelism))
	case c.Parallelism > 1 && c.Depth < 2:
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: depth %d < 2", c.Depth))
	case c.ReadSize < 1:
		return walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: read size %d < 1", c.ReadSize))
	case c.MaxRecord < 1:
		return walerr.New(walerr.InvalidArgument, -1, "pipeline: maximum record size 0")
	}
	return nil
}

// job is what a pooled buffer carries through the pipeline.
type job struct {
	chunk.Batch
	err   error         // a read error the stream cannot go past: reported in file order
	ready chan struct{} // the worker's "done" to the applier (capacity 1)
}

type buffer = bufpool.Buffer[job]

// Run streams the log in r (of the given size, layout st.Layout) into st, and returns the
// memory accounting. It returns only after every goroutine it started has exited and every
// buffer is back in the pool. A panic in the Applier or in r's ReadAt, and a runtime.Goexit in
// either, are re-raised on the caller's goroutine once everything has stopped, as the
// sequential loop would raise them.
func Run(ctx context.Context, r io.ReaderAt, size int64, cfg Config, st *apply.Stage) (bufpool.Stats, error) {
	if err := cfg.check(); err != nil {
		return bufpool.Stats{}, err
	}
	if r == nil || st == nil || st.Applier == nil {
		return bufpool.Stats{}, walerr.New(walerr.InvalidArgument, -1, "pipeline: nil reader, stage or applier")
	}
	src := source.New(r, size, st.Layout, cfg.ReadSize, cfg.MaxRecord)
	if cfg.Parallelism == 1 {
		return sequential(ctx, src, st)
	}
	return parallel(ctx, src, cfg, st)
}

// release gives a buffer back, with the large-record buffer its batch may hold.
func release(src *source.Reader, pool *bufpool.Pool[job], b *buffer) {
	src.ReleaseBig(&b.Meta.Batch)
	pool.Put(b)
}

func auxOf(src *source.Reader, b *buffer) []byte {
	if b.Meta.Big {
		return src.Big()
	}
	return b.Aux
}

func stats(src *source.Reader, pool *bufpool.Pool[job]) bufpool.Stats {
	s := pool.Stats()
	s.Allocated += int64(src.BigHeld())
	s.PeakOut += int64(src.BigHeld())
	return s
}

// sequential is the reference: read, carve, verify, apply, chunk after chunk.
func sequential(ctx context.Context, src *source.Reader, st *apply.Stage) (_ bufpool.Stats, err error) {
	pool := bufpool.New[job](1)
	var held *buffer
	defer func() { // also when the Applier or ReadAt panics: the pool is closed clean
		if held != nil {
			release(src, pool, held)
		}
		pool.Close()
	}()
	c := src.Start()
	for k := range src.Chunks() {
		if err := ctx.Err(); err != nil {
			return stats(src, pool), canceled(st, err)
		}
		held, _ = pool.Get(ctx) // never blocks: the one buffer is back
		var readErr error
		if !src.Skips(k, c) {
			readErr = src.Read(held, k)
		}
		c, err = src.Carve(ctx, held, readErr, &held.Meta.Batch, k, c)
		done := err != nil
		if !done {
			verify.Batch(st.Layout, &held.Meta.Batch, held.B, auxOf(src, held))
			held.SetMetaBytes(held.Meta.OpsBytes())
			done, err = st.Batch(ctx, &held.Meta.Batch, held.B, auxOf(src, held))
		}
		release(src, pool, held)
		held = nil
		if done {
			return stats(src, pool), err
		}
	}
	return stats(src, pool), errNoDecision
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

func parallel(ctx context.Context, src *source.Reader, cfg Config, st *apply.Stage) (bufpool.Stats, error) {
	pool := bufpool.New[job](cfg.Depth)
	wctx, cancel := context.WithCancelCause(ctx)
	total := src.Chunks()

	// carries[k%m] holds the carry into chunk k. m = depth+1 slots suffice: chunk k holds a
	// buffer only once chunk k-depth has released its own, so has long taken its carry.
	m := int64(cfg.Depth + 1)
	carries := make([]chan source.Carry, m)
	for i := range carries {
		carries[i] = make(chan source.Carry, 1)
	}
	carries[0] <- src.Start()
	inOrder := make(chan *buffer, cfg.Depth) // claimed chunks, in file order; never full

	var (
		claimMu sync.Mutex
		next    int64       // the next chunk to claim; guarded by claimMu
		ended   atomic.Bool // a carve ended the stream: claim nothing more
		wg      sync.WaitGroup
		flt     fault
	)
	worker := func() {
		defer wg.Done()
		normal := false
		defer func() {
			if !normal { // a panic or a Goexit in ReadAt: stop everyone, re-raise on the caller
				p := recover()
				flt.record(p, p == nil)
				cancel(errFault)
			}
		}()
		for {
			b, err := pool.Get(wctx)
			if err != nil {
				break
			}
			claimMu.Lock()
			if next >= total || ended.Load() {
				claimMu.Unlock()
				release(src, pool, b)
				break
			}
			k := next
			next++
			if b.Meta.ready == nil {
				b.Meta.ready = make(chan struct{}, 1)
			}
			inOrder <- b // from here on the applier releases b (or the cleanup does)
			claimMu.Unlock()
			if !work(wctx, src, st, b, k, carries[k%m], carries[(k+1)%m], &ended) {
				break
			}
		}
		normal = true
	}
	n := int(min(int64(cfg.Parallelism), total))
	wg.Add(n)
	for range n {
		go worker()
	}

	var held *buffer
	cleaned := false
	cleanup := func() bufpool.Stats {
		cleaned = true
		cancel(errStopped)
		wg.Wait() // every worker has exited: nobody touches any buffer any more
		if held != nil {
			release(src, pool, held)
		}
		for len(inOrder) > 0 {
			release(src, pool, <-inOrder)
		}
		s := stats(src, pool)
		pool.Close()
		return s
	}
	defer func() {
		if !cleaned { // the Applier panicked or called Goexit: clean up, and let it go on
			cleanup()
		}
	}()

	err := applyInOrder(ctx, wctx, src, st, pool, inOrder, total, &held)
	s := cleanup()
	if flt.set {
		if flt.goexit {
			runtime.Goexit()
		}
		panic(flt.value)
	}
	return s, err
}

// work reads, carves and verifies chunk k in b. It returns false when the pipeline is stopping.
func work(ctx context.Context, src *source.Reader, st *apply.Stage, b *buffer, k int64, in, out chan source.Carry, ended *atomic.Bool) bool {
	j := &b.Meta
	var c source.Carry
	have := false
	select {
	case c = <-in:
		have = true
	default:
	}
	var readErr error
	if !have || !src.Skips(k, c) { // read ahead of the carry: the extent is known
		readErr = src.Read(b, k)
	}
	if !have {
		select {
		case c = <-in:
		case <-ctx.Done():
			return false
		}
	}
	c, j.err = src.Carve(ctx, b, readErr, &j.Batch, k, c)
	if c.Done {
		ended.Store(true)
	}
	select {
	case out <- c:
	case <-ctx.Done():
		return false
	}
	if j.err == nil {
		verify.Batch(st.Layout, &j.Batch, b.B, auxOf(src, b))
		b.SetMetaBytes(j.OpsBytes())
	}
	j.ready <- struct{}{}
	return true
}

// applyInOrder is the ordered applier, on the caller's goroutine: chunk after chunk, in file
// order, it waits for the chunk's worker, replays and decides, and releases the buffer. *held
// is the buffer it holds, for the cleanup if the Applier panics.
func applyInOrder(ctx, wctx context.Context, src *source.Reader, st *apply.Stage, pool *bufpool.Pool[job],
	inOrder chan *buffer, total int64, held **buffer) error {
	stopped := func() error {
		if err := ctx.Err(); err != nil {
			return canceled(st, err)
		}
		return context.Cause(wctx) // errFault: the caller re-raises the worker's panic
	}
	for range total {
		var b *buffer
		select {
		case b = <-inOrder:
		case <-wctx.Done():
			return stopped()
		}
		*held = b
		select {
		case <-b.Meta.ready:
		case <-wctx.Done():
			return stopped()
		}
		done, err := true, b.Meta.err
		if err == nil {
			done, err = st.Batch(ctx, &b.Meta.Batch, b.B, auxOf(src, b)) // may panic or Goexit
		}
		*held = nil
		release(src, pool, b)
		if done {
			return err
		}
	}
	return errNoDecision
}

// canceled types a bare context error at the offset replayed so far; every other error is
// already typed.
func canceled(st *apply.Stage, err error) error {
	var we *walerr.Error
	if err != nil && !errors.As(err, &we) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return walerr.Wrap(walerr.Canceled, st.Stats.End, err, "recovery stopped")
	}
	return err
}
