package walerr_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/streamwal/recovery/internal/faults"
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

func TestReadFull(t *testing.T) {
	data := []byte("0123456789")
	p := make([]byte, 10)
	short := func(n int, err error) *faults.Reader { return faults.Bytes(data, faults.Always().Short(n, err)) }
	if err := walerr.ReadFull(short(3, nil), p, 0); err != nil || string(p) != string(data) {
		t.Fatalf("chunked reads with a nil error must be read again: %v", err)
	}
	if err := walerr.ReadFull(faults.Bytes(data), make([]byte, 12), 0); !errors.Is(err, walerr.ErrIncompleteRead) {
		t.Fatalf("a file shorter than claimed is INCOMPLETE_READ, got %v", err)
	}
	boom := errors.New("EIO")
	if err := walerr.ReadFull(short(2, boom), p, 0); !errors.Is(err, walerr.ErrIO) || !errors.Is(err, boom) || walerr.OffsetOf(err) != 2 {
		t.Fatalf("a failed read is IO_ERROR at the failing offset, wrapping the cause: %v", err)
	}
	if err := walerr.ReadFull(short(0, nil), p, 0); !errors.Is(err, walerr.ErrIncompleteRead) || !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("a reader that stops making progress must not hang: %v", err)
	}
}

// TestReadFullRefusesLies: a reader that claims more bytes than it was asked for, or a
// negative count, is IO_ERROR at the offset of that read (never a slice panic, never a
// count trusted); one that fills the buffer and reports EIO is IO_ERROR too; one that fills it
// and reports io.EOF has read it all.
func TestReadFullRefusesLies(t *testing.T) {
	data := []byte("0123456789")
	boom := errors.New("EIO")
	threeThen := func(second *faults.Rule) *faults.Reader {
		return faults.Bytes(data, faults.OnCall(1).Short(3, nil), second)
	}
	for _, c := range []struct {
		name string
		r    *faults.Reader
		want error // nil: the whole read
		off  int64
	}{
		{"more than asked", threeThen(faults.OnCall(2).Claim(8, nil)), walerr.ErrIO, 3},
		{"negative", threeThen(faults.OnCall(2).Claim(-1, nil)), walerr.ErrIO, 3},
		{"full count with EIO", faults.Bytes(data, faults.Always().Lie(boom)), boom, 0},
		{"full count with EOF", threeThen(faults.OnCall(2).Claim(7, io.EOF)), nil, 0},
	} {
		p := make([]byte, 10)
		err := walerr.ReadFull(c.r, p, 0)
		switch {
		case c.want == nil && (err != nil || string(p) != string(data)):
			t.Fatalf("%s: %v, read %q", c.name, err, p)
		case c.want != nil && (!errors.Is(err, walerr.ErrIO) || !errors.Is(err, c.want) || walerr.OffsetOf(err) != c.off):
			t.Fatalf("%s: want IO_ERROR at %d (%v), got %v", c.name, c.off, c.want, err)
		}
	}
}
