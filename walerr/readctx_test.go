package walerr_test

import (
	"context"
	"errors"
	"testing"

	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/walerr"
)

// TestReadFullContext: a done context starts no read, not even the next piece of a read that
// a reader delivers in pieces, and is CANCELED (matching the context's error) at the offset
// not yet read; otherwise it reads as ReadFull does.
func TestReadFullContext(t *testing.T) {
	data := []byte("0123456789")
	threes := func(rules ...*faults.Rule) *faults.Reader { // delivers at most 3 bytes a call
		return faults.Bytes(data, append(rules, faults.Always().Short(3, nil))...)
	}
	r := threes()
	p := make([]byte, 10)
	if err := walerr.ReadFullContext(context.Background(), r, p, 0); err != nil || string(p) != string(data) || r.Calls() != 4 {
		t.Fatalf("got %v %q after %d calls", err, p, r.Calls())
	}

	ctx, cancel := context.WithCancel(context.Background())
	r = threes(faults.OnCall(1).Do(func(faults.Call) { cancel() })) // canceled during the first piece
	err := walerr.ReadFullContext(ctx, r, p, 0)
	if !errors.Is(err, walerr.ErrCanceled) || !errors.Is(err, context.Canceled) || walerr.OffsetOf(err) != 3 || r.Calls() != 1 {
		t.Fatalf("want CANCELED at 3 after one call, got %v (offset %d) after %d calls", err, walerr.OffsetOf(err), r.Calls())
	}
	r = threes()
	if err := walerr.ReadFullContext(ctx, r, p, 5); !errors.Is(err, walerr.ErrCanceled) || walerr.OffsetOf(err) != 5 || r.Calls() != 0 {
		t.Fatalf("a done context: want CANCELED at 5 and no call, got %v after %d calls", err, r.Calls())
	}
	// The reader's own errors are its own: a short file is still INCOMPLETE_READ.
	if err := walerr.ReadFullContext(context.Background(), faults.Bytes(data), make([]byte, 12), 0); !errors.Is(err, walerr.ErrIncompleteRead) {
		t.Fatalf("want INCOMPLETE_READ, got %v", err)
	}
}
