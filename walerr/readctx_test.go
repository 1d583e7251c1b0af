package walerr_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/streamwal/recovery/walerr"
)

// countingReader counts the reads it is asked for, delivering at most max bytes each.
type countingReader struct {
	b     []byte
	max   int
	calls int
	after func() // called after each read
}

func (r *countingReader) ReadAt(p []byte, off int64) (int, error) {
	r.calls++
	if len(p) > r.max {
		p = p[:r.max]
	}
	n, err := bytes.NewReader(r.b).ReadAt(p, off)
	if r.after != nil {
		r.after()
	}
	return n, err
}

// TestReadFullContext: a done context starts no read, not even the next piece of a read that
// a reader delivers in pieces, and is CANCELED (matching the context's error) at the offset
// not yet read; otherwise it reads as ReadFull does.
func TestReadFullContext(t *testing.T) {
	data := []byte("0123456789")
	r := &countingReader{b: data, max: 3}
	p := make([]byte, 10)
	if err := walerr.ReadFullContext(context.Background(), r, p, 0); err != nil || string(p) != string(data) || r.calls != 4 {
		t.Fatalf("got %v %q after %d calls", err, p, r.calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	r = &countingReader{b: data, max: 3, after: cancel} // canceled during the first piece
	err := walerr.ReadFullContext(ctx, r, p, 0)
	if !errors.Is(err, walerr.ErrCanceled) || !errors.Is(err, context.Canceled) || walerr.OffsetOf(err) != 3 || r.calls != 1 {
		t.Fatalf("want CANCELED at 3 after one call, got %v (offset %d) after %d calls", err, walerr.OffsetOf(err), r.calls)
	}
	r = &countingReader{b: data, max: 3}
	if err := walerr.ReadFullContext(ctx, r, p, 5); !errors.Is(err, walerr.ErrCanceled) || walerr.OffsetOf(err) != 5 || r.calls != 0 {
		t.Fatalf("a done context: want CANCELED at 5 and no call, got %v after %d calls", err, r.calls)
	}
	// The reader's own errors are its own: a short file is still INCOMPLETE_READ.
	if err := walerr.ReadFullContext(context.Background(), &countingReader{b: data, max: 100}, make([]byte, 12), 0); !errors.Is(err, walerr.ErrIncompleteRead) {
		t.Fatalf("want INCOMPLETE_READ, got %v", err)
	}
}
