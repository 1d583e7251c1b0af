// Package pipeline wires the stages of recovery together.
//
//	source (1 goroutine)          verify (n goroutines)          apply (1 goroutine)
//	pool.Get, read, carve  ──►  toVerify ──► CRC + parse  ──► b.Ready
//	        └──────────────────► inOrder (FIFO, file order) ─────────► wait b.Ready, replay,
//	                                                                    classify, pool.Put ──┐
//	        ▲────────────────────────── buffers come back ─────────────────────────────────┘
//
// Parallelism 1 is the same three steps in a plain loop on the caller's goroutine.
package pipeline

import (
	"context"
	"errors"
	"io"

	"golang.org/x/sync/errgroup"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/bufpool"
	"github.com/streamwal/recovery/source"
	"github.com/streamwal/recovery/verify"
	"github.com/streamwal/recovery/walerr"
)

// Config sizes the pipeline. All fields must be valid (the root package checks them).
type Config struct {
	Parallelism int    // verifiers; 1 = the sequential loop, no goroutines
	Depth       int    // pooled buffers (parallel only; the sequential loop uses one)
	ReadSize    int    // bytes per sequential read
	MaxRecord   uint32 // largest payload a read may be sized for
}

// Run streams the log in r (of the given size, layout st.Layout) into st, and returns the
// pool's accounting. It returns only after every goroutine it started has exited and every
// buffer is back in the pool.
func Run(ctx context.Context, r io.ReaderAt, size int64, cfg Config, st *apply.Stage) (bufpool.Stats, error) {
	src := source.New(r, size, st.Layout, cfg.ReadSize, cfg.MaxRecord)
	if cfg.Parallelism <= 1 {
		return sequential(ctx, src, st)
	}
	return parallel(ctx, src, cfg, st)
}

func sequential(ctx context.Context, src *source.Reader, st *apply.Stage) (bufpool.Stats, error) {
	pool := bufpool.New[source.Batch](1)
	for {
		b, err := pool.Get(ctx)
		if err != nil {
			pool.Close()
			return pool.Stats(), canceled(src, err)
		}
		err = src.Fill(pool, b)
		done := err != nil
		if err == nil {
			verify.Batch(&b.Meta, b.B)
			done, err = st.Batch(ctx, &b.Meta, b.B)
		}
		pool.Put(b)
		if done {
			stats := pool.Stats()
			pool.Close()
			return stats, err
		}
		if err = ctx.Err(); err != nil {
			pool.Close()
			return pool.Stats(), canceled(src, err)
		}
	}
}

// errDecided is how the applier stops the other stages once the stream is decided;
// errApplierPanic, how it stops them when the caller's Applier panicked.
var (
	errDecided      = errors.New("pipeline: decided")
	errApplierPanic = errors.New("pipeline: applier panicked")
)

func parallel(ctx context.Context, src *source.Reader, cfg Config, st *apply.Stage) (bufpool.Stats, error) {
	pool := bufpool.New[source.Batch](cfg.Depth)
	g, gctx := errgroup.WithContext(ctx)
	toVerify := make(chan *source.Buffer, cfg.Depth) // closed by the source
	inOrder := make(chan *source.Buffer, cfg.Depth)  // closed by the source
	var held *source.Buffer                          // the applier's batch, if it exits holding one

	g.Go(func() error { // source: owns each buffer until it is in inOrder
		defer close(inOrder)
		defer close(toVerify)
		for !src.Done() {
			b, err := pool.Get(gctx)
			if err != nil {
				return err
			}
			if b.Meta.Ready == nil {
				b.Meta.Ready = make(chan struct{}, 1)
			}
			b.Meta.Err = src.Fill(pool, b)
			failed := b.Meta.Err != nil
			if failed {
				b.Meta.Ready <- struct{}{} // nothing to verify: the applier reports it in order
			}
			select {
			case inOrder <- b: // from here on b is the applier's (or the drain's below)
			case <-gctx.Done():
				pool.Put(b)
				return gctx.Err()
			}
			if failed {
				return nil
			}
			select {
			case toVerify <- b:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range cfg.Parallelism {
		g.Go(func() error { // verifier: reads a buffer, never releases it
			for {
				select {
				case b, ok := <-toVerify:
					if !ok {
						return nil
					}
					verify.Batch(&b.Meta, b.B)
					b.Meta.Ready <- struct{}{}
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		})
	}
	var panicked any          // an Applier's panic, re-raised on the caller's goroutine after Wait
	g.Go(func() (err error) { // applier: file order, decides, releases every buffer it took
		defer func() {
			if p := recover(); p != nil {
				panicked, err = p, errApplierPanic
			}
		}()
		for {
			var b *source.Buffer
			select {
			case b = <-inOrder:
			case <-gctx.Done():
				return gctx.Err()
			}
			if b == nil { // the source stopped early: only a cancellation does that
				if err := gctx.Err(); err != nil {
					return err
				}
				return errors.New("pipeline: the source ended without a decision")
			}
			held = b
			select {
			case <-b.Meta.Ready: // the verifier is done with b
			case <-gctx.Done():
				return gctx.Err() // b may still be read by a verifier: released after Wait
			}
			done, err := b.Meta.Err != nil, b.Meta.Err
			if err == nil {
				done, err = st.Batch(ctx, &b.Meta, b.B) // may panic in the caller's Applier
			}
			held = nil
			pool.Put(b)
			if err != nil {
				return err
			}
			if done {
				return errDecided
			}
		}
	})
	err := g.Wait()
	// Every goroutine has exited: nobody reads any buffer any more.
	if held != nil {
		pool.Put(held)
	}
	for b := range inOrder {
		pool.Put(b)
	}
	stats := pool.Stats()
	pool.Close()
	if panicked != nil {
		panic(panicked) // as the sequential loop would have, on the caller's goroutine
	}
	if errors.Is(err, errDecided) {
		return stats, nil
	}
	return stats, canceled(src, err)
}

// canceled types a bare context error; every other error is already typed.
func canceled(src *source.Reader, err error) error {
	var we *walerr.Error
	if err != nil && !errors.As(err, &we) && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return walerr.Wrap(walerr.Canceled, src.Pos(), err, "recovery stopped")
	}
	return err
}
