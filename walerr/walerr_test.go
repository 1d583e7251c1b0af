package walerr_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/streamwal/recovery/walerr"
)

func TestErrorMatchesSentinelAndCause(t *testing.T) {
	err := error(walerr.Wrap(walerr.Canceled, 42, context.Canceled, "stopped").WithHint("retry"))
	if !errors.Is(err, walerr.ErrCanceled) || !errors.Is(err, context.Canceled) || errors.Is(err, walerr.ErrCorruptWAL) {
		t.Fatal("errors.Is must match the code's sentinel and the cause, and nothing else")
	}
	if walerr.CodeOf(err) != walerr.Canceled || walerr.OffsetOf(err) != 42 {
		t.Fatal("CodeOf/OffsetOf")
	}
	msg := err.Error()
	for _, part := range []string{"CANCELED", "offset 42", "stopped", "context canceled", "retry"} {
		if !strings.Contains(msg, part) {
			t.Fatalf("message %q lacks %q", msg, part)
		}
	}
	if !walerr.IsCorruption(walerr.New(walerr.CorruptWAL, 1, "")) || walerr.IsCorruption(err) {
		t.Fatal("IsCorruption")
	}
}

type chunky struct {
	data  []byte
	chunk int
	err   error
}

func (c chunky) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(c.data)) {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data[off:])
	if n < len(p) && off+int64(n) == int64(len(c.data)) {
		return n, io.EOF
	}
	return n, c.err
}

func TestReadFull(t *testing.T) {
	data := []byte("0123456789")
	p := make([]byte, 10)
	if err := walerr.ReadFull(chunky{data, 3, nil}, p, 0); err != nil || string(p) != string(data) {
		t.Fatalf("chunked reads with a nil error must be read again: %v", err)
	}
	if err := walerr.ReadFull(chunky{data, 100, nil}, make([]byte, 12), 0); !errors.Is(err, walerr.ErrIncompleteRead) {
		t.Fatalf("a file shorter than claimed is INCOMPLETE_READ, got %v", err)
	}
	boom := errors.New("EIO")
	if err := walerr.ReadFull(chunky{data, 2, boom}, p, 0); !errors.Is(err, walerr.ErrIO) || !errors.Is(err, boom) || walerr.OffsetOf(err) != 2 {
		t.Fatalf("a failed read is IO_ERROR at the failing offset, wrapping the cause: %v", err)
	}
	if err := walerr.ReadFull(chunky{data, 0, nil}, p, 0); !errors.Is(err, walerr.ErrIncompleteRead) || !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("a reader that stops making progress must not hang: %v", err)
	}
}
