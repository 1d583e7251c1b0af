package walerr

import (
	"context"
	"errors"
)

// ReadFullContext is ReadFull that starts no read once ctx is done: ctx is checked before
// every call of r.ReadAt (a reader that delivers in pieces is called more than once), and a
// done ctx is CANCELED at the offset not yet read, wrapping ctx's error. A read already started
// is not interrupted: ReadAt has no way to be.
func ReadFullContext(ctx context.Context, r interface {
	ReadAt(p []byte, off int64) (int, error)
}, p []byte, off int64) error {
	err := ReadFull(ctxReader{ctx, r}, p, off)
	var done *ctxDone
	if errors.As(err, &done) {
		return Wrap(Canceled, OffsetOf(err), done.err, "recovery stopped")
	}
	return err
}

// ctxReader is r that refuses to start a read once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   interface {
		ReadAt(p []byte, off int64) (int, error)
	}
}

func (c ctxReader) ReadAt(p []byte, off int64) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, &ctxDone{err}
	}
	return c.r.ReadAt(p, off)
}

// ctxDone is the refusal, told apart from any error the reader itself returns.
type ctxDone struct{ err error }

func (e *ctxDone) Error() string { return e.err.Error() }
