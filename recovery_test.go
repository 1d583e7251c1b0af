package recovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInvalidOptions(t *testing.T) {
	f := bytes.NewReader(format.FileHeader[:])
	for name, opt := range map[string]recovery.Option{
		"negative parallelism": recovery.WithParallelism(-1),
		"tiny read size":       recovery.WithReadSize(100),
		"zero max record":      recovery.WithMaxRecordSize(0),
		"max record 4 GiB":     recovery.WithMaxRecordSize(1 << 32),
		"depth 1":              recovery.WithPoolDepth(1),
		"unknown mode":         recovery.WithMode(9),
	} {
		_, err := recovery.Recover(context.Background(), f, nil, opt)
		if !errors.Is(err, recovery.ErrInvalidArgument) || recovery.CodeOf(err) != recovery.CodeInvalidArgument {
			t.Errorf("%s: want INVALID_ARGUMENT, got %v", name, err)
		}
	}
}

// TestTruncationNeedsWritableFile: a cut is never silently skipped: a read-only File without
// ReadOnly() is an error, and the hook's error aborts with the file untouched.
func TestTruncationNeedsWritableFile(t *testing.T) {
	l := testlog.RandomLog(1, format.LayoutV1, 5, 2, 10)
	torn := l.Bytes[:len(l.Bytes)-2]
	if _, err := recovery.Recover(context.Background(), bytes.NewReader(torn), nil); !errors.Is(err, recovery.ErrInvalidArgument) {
		t.Fatalf("cut on a non-writable file: %v", err)
	}
	f := testlog.NewMemFile(torn)
	hookErr := errors.New("disk full while saving the sidecar")
	_, err := recovery.Recover(context.Background(), f, nil, recovery.WithBeforeTruncate(func(recovery.Truncation) error { return hookErr }))
	if !errors.Is(err, hookErr) || !bytes.Equal(f.Data, torn) || f.Truncates != 0 {
		t.Fatalf("hook error: err=%v truncates=%d", err, f.Truncates)
	}
	var seen recovery.Truncation
	res, err := recovery.Recover(context.Background(), f, nil, recovery.WithBeforeTruncate(func(tr recovery.Truncation) error { seen = tr; return nil }))
	if err != nil || !res.Truncated || seen.Offset != l.Offsets[4] || int64(len(f.Data)) != l.Offsets[4] || f.Syncs != 1 {
		t.Fatalf("cut: %v %v seen=%+v", err, res, seen)
	}
	if !strings.Contains(res.String(), "cut 36") && !strings.Contains(res.String(), "torn_tail") {
		t.Fatalf("Result.String does not report the cut: %s", res)
	}
}

func TestOSFileAndProgress(t *testing.T) {
	l := testlog.RandomLog(2, format.LayoutV1, 2000, 3, 100)
	path := filepath.Join(t.TempDir(), "x.wal")
	if err := os.WriteFile(path, append(bytes.Clone(l.Bytes), 0, 0, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rf, err := recovery.OSFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var last, calls int64
	res, err := recovery.Recover(context.Background(), rf, nil, recovery.WithReadSize(8<<10), recovery.WithParallelism(2),
		recovery.WithProgress(func(applied, total int64) {
			if applied < last || total != rf.Size() {
				t.Errorf("progress went backwards or lost the total: %d after %d of %d", applied, last, total)
			}
			last, calls = applied, calls+1
		}))
	if err != nil || !res.Truncated || res.Records != 2000 || calls < 2 || last != int64(len(l.Bytes)) {
		t.Fatalf("err=%v res=%v progress calls=%d last=%d", err, res, calls, last)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, l.Bytes) {
		t.Fatal("the 3 trailing zero bytes were not cut from the file on disk")
	}
}

// grower is a file that another process appended to after Recover measured it.
type grower struct {
	*testlog.MemFile
	atOpen int64
}

func (g *grower) Size() int64                 { return g.atOpen }
func (g *grower) CurrentSize() (int64, error) { return g.MemFile.Size(), nil }

// TestNoCutWhenTheFileGrew: bytes appended during recovery would be lost by the cut (and be in
// no sidecar): Recover refuses and cuts nothing.
func TestNoCutWhenTheFileGrew(t *testing.T) {
	l := testlog.RandomLog(3, format.LayoutV1, 5, 2, 10)
	torn := l.Bytes[:len(l.Bytes)-2]
	f := &grower{MemFile: testlog.NewMemFile(append(bytes.Clone(torn), "appended later"...)), atOpen: int64(len(torn))}
	hooked := false
	_, err := recovery.Recover(context.Background(), f, nil, recovery.WithBeforeTruncate(func(recovery.Truncation) error { hooked = true; return nil }))
	if !errors.Is(err, recovery.ErrIO) || f.Truncates != 0 || hooked {
		t.Fatalf("want IO_ERROR and no cut, got %v (truncates %d, hook ran %v)", err, f.Truncates, hooked)
	}
}

// TestPrepareReachesTheApplier: the words a Preparer returns for a record reach the Applier
// with that record, at every parallelism, and a panic in Prepare reaches the caller.
func TestPrepareReachesTheApplier(t *testing.T) {
	l := testlog.RandomLog(17, format.LayoutV1, 3000, 4, 300)
	prep := recovery.PrepareFunc(func(r recovery.Record, dst []uint64) []uint64 {
		return append(dst, uint64(format.Checksum(r.Payload)), uint64(r.PayloadOffset()))
	})
	for _, par := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("par=%d", par), func(t *testing.T) {
			n := 0
			res, err := recovery.Recover(context.Background(), bytes.NewReader(l.Bytes), recovery.ApplyFunc(func(r recovery.Record) error {
				want := []uint64{uint64(format.Checksum(r.Payload)), uint64(r.Offset + format.V1HeaderSize)}
				if !slices.Equal(r.Prepared, want) || cap(r.Prepared) != 2 {
					return fmt.Errorf("record at %d: prepared %v, want %v", r.Offset, r.Prepared, want)
				}
				n++
				return nil
			}), recovery.WithParallelism(par), recovery.WithReadSize(4<<10), recovery.WithPrepare(prep))
			if err != nil || n != len(l.Offsets) || res.Records != int64(n) {
				t.Fatalf("%v after %d records", err, n)
			}
			var got any
			func() {
				defer func() { got = panicValue(recover()) }()
				recovery.Recover(context.Background(), bytes.NewReader(l.Bytes), nil, recovery.WithParallelism(par), recovery.WithReadSize(4<<10),
					recovery.WithPrepare(recovery.PrepareFunc(func(r recovery.Record, dst []uint64) []uint64 {
						if r.Offset > 20<<10 {
							panic("prepare bug")
						}
						return dst
					})))
			}()
			if got != "prepare bug" {
				t.Fatalf("recovered %v, want the Preparer's panic", got)
			}
		})
	}
}

// TestParallelismReportsTheWorkersThatRan: Result.Parallelism is the number of workers that
// ran, which a log of few chunks caps (one worker per chunk), not the number asked for.
func TestParallelismReportsTheWorkersThatRan(t *testing.T) {
	payload := format.AppendDelete(nil, bytes.Repeat([]byte("k"), 4<<10-5))
	l := testlog.Build(format.LayoutV1)
	for range 3 { // three records of 4 KiB + 12: with 8 KiB reads, two chunks
		l.Append(payload)
	}
	for _, c := range []struct{ par, read, want int }{
		{8, 8 << 10, 2},  // two chunks: two workers
		{8, 64 << 10, 1}, // one chunk: the plain loop
		{1, 4 << 10, 1},
		{3, 4 << 10, 3},
	} {
		res, err := recovery.Recover(context.Background(), bytes.NewReader(l.Bytes), nil,
			recovery.WithParallelism(c.par), recovery.WithReadSize(c.read), recovery.ReadOnly())
		if err != nil || res.Records != 3 {
			t.Fatalf("%+v: %v %+v", c, err, res)
		}
		if res.Parallelism != c.want {
			t.Errorf("parallelism %d, %d-byte reads of a %d-byte log: Result.Parallelism %d, want %d", c.par, c.read, len(l.Bytes), res.Parallelism, c.want)
		}
	}
}

// panicValue is what was passed to panic, under the *recovery.Panic that carries it.
func panicValue(p any) any {
	if r, ok := p.(*recovery.Panic); ok {
		return r.Value
	}
	return p
}
