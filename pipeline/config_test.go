package pipeline_test

// What pipeline.Run accepts (it is exported: its callers can pass anything): read sizes
// smaller than a header recover exactly; a size before the first record, a read size whose
// chunks overflow the offsets and configurations it cannot run are INVALID_ARGUMENT.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/pipeline"
	"github.com/streamwal/recovery/walerr"
)

// TestTinyReadSizes: a read size smaller than a record header (exported package: callers can
// pass anything) still recovers exactly, and nonsense configurations are refused, not spun on.
func TestTinyReadSizes(t *testing.T) {
	l := testlog.RandomLog(3, format.LayoutV1, 200, 3, 40)
	data := append(bytes.Clone(l.Bytes), 0, 0, 0, 9) // and a short tail
	for _, rs := range []int{1, 5, 11, 12, 13, 100} {
		for _, par := range []int{1, 3} {
			stats, err := run(context.Background(), data, bytes.NewReader(data), pipeline.Config{Parallelism: par, Depth: 4, ReadSize: rs}, apply.Discard)
			if err != nil || stats.Records != int64(len(l.Offsets)) || stats.Truncation == nil || stats.Truncation.Offset != int64(len(l.Bytes)) {
				t.Fatalf("read size %d par %d: %v, %d records, cut %+v", rs, par, err, stats.Records, stats.Truncation)
			}
			settled(t, "tiny reads", stats)
		}
	}
	for _, cfg := range []pipeline.Config{
		{Parallelism: 0, Depth: 1, ReadSize: 10, MaxRecord: 100},
		{Parallelism: 2, Depth: 1, ReadSize: 10, MaxRecord: 100},
		{Parallelism: 1, Depth: 1, ReadSize: 0, MaxRecord: 100},
		{Parallelism: pipeline.MaxParallelism + 1, Depth: 4, ReadSize: 10, MaxRecord: 100},
		{Parallelism: 2, Depth: pipeline.MaxDepth + 1, ReadSize: 10, MaxRecord: 100},
		{Parallelism: 1, Depth: 1, ReadSize: 10, MaxRecord: 0},
		{Parallelism: 2, Depth: 4, ReadSize: 10, MaxRecord: math.MaxUint32}, // an erased header's length
		{Parallelism: 1, Depth: 1, ReadSize: 10, MaxRecord: 100, Mode: classify.PointInTime + 1},
		{Parallelism: 1, Depth: 1, ReadSize: pipeline.MaxReadSize + 1, MaxRecord: 100},
	} {
		if _, err := pipeline.Run(context.Background(), bytes.NewReader(data), int64(len(data)), format.LayoutV1, apply.Discard, cfg); !errors.Is(err, recovery.ErrInvalidArgument) {
			t.Fatalf("%+v: want INVALID_ARGUMENT, got %v", cfg, err)
		}
	}
	good := pipeline.Config{Parallelism: 1, Depth: 1, ReadSize: 10, MaxRecord: 100}
	for name, run := range map[string]func() error{
		"an unknown layout": func() error {
			_, err := pipeline.Run(context.Background(), bytes.NewReader(data), int64(len(data)), format.LayoutUnknown, apply.Discard, good)
			return err
		},
		"a nil applier": func() error {
			_, err := pipeline.Run(context.Background(), bytes.NewReader(data), int64(len(data)), format.LayoutV1, nil, good)
			return err
		},
		"a nil reader": func() error {
			_, err := pipeline.Run(context.Background(), nil, int64(len(data)), format.LayoutV1, apply.Discard, good)
			return err
		},
		"a stream with a pool deeper than MaxDepth": func() error {
			bad := good
			bad.Depth = pipeline.MaxDepth + 1
			_, _, err := pipeline.RunStream(context.Background(), bytes.NewReader(data), apply.Discard, pipeline.StreamConfig{Config: bad, Spool: 1 << 20})
			return err
		},
		"a stream read size past MaxReadSize": func() error {
			bad := good
			bad.ReadSize = pipeline.MaxReadSize + 1
			_, _, err := pipeline.RunStream(context.Background(), bytes.NewReader(data), apply.Discard, pipeline.StreamConfig{Config: bad, Spool: 1 << 20})
			return err
		},
		"a stream with a nil applier": func() error {
			_, _, err := pipeline.RunStream(context.Background(), bytes.NewReader(data), nil, pipeline.StreamConfig{Config: good})
			return err
		},
	} {
		if err := run(); !errors.Is(err, recovery.ErrInvalidArgument) {
			t.Fatalf("%s: want INVALID_ARGUMENT, got %v", name, err)
		}
	}
}

// TestRunRefusesSizeBeforeFirstRecord: pipeline.Run (exported: its callers can pass
// anything) refuses a size before the layout's first record with INVALID_ARGUMENT (before: a
// negative buffer length panicked).
func TestRunRefusesSizeBeforeFirstRecord(t *testing.T) {
	for _, size := range []int64{-1, 0, 4, 7} {
		for _, par := range []int{1, 3} {
			t.Run(fmt.Sprintf("size=%d/par=%d", size, par), func(t *testing.T) {
				defer func() {
					if p := panicValue(recover()); p != nil {
						t.Fatalf("panic: %v", p)
					}
				}()
				data := format.FileHeader[:max(0, size)]
				_, err := runL(context.Background(), size, format.LayoutV1, bytes.NewReader(data), pipeline.Config{Parallelism: par, Depth: 4, ReadSize: 4 << 10}, apply.Discard)
				if walerr.CodeOf(err) != walerr.InvalidArgument {
					t.Fatalf("want INVALID_ARGUMENT, got %v", err)
				}
			})
		}
	}
}

// TestRunRefusesReadSizePastTheOffsets: a read size so large that a chunk's end overflows
// (pipeline.Run is exported: its callers can pass anything) is INVALID_ARGUMENT at every
// parallelism, not a run in which every chunk looks empty and nothing is replayed; so is one
// past MaxReadSize. A read size far larger than the file still recovers the log in one chunk.
func TestRunRefusesReadSizePastTheOffsets(t *testing.T) {
	if math.MaxInt < math.MaxInt64 {
		t.Skip("an int read size cannot reach past a file's offsets on a 32-bit platform")
	}
	l := advLog(format.LayoutV1, 5, 600)
	size := int64(len(l.Bytes))
	for _, par := range []int{1, 3} {
		for _, rs := range []int{math.MaxInt, int(math.MaxInt64 - size + 1)} {
			stats, err := runL(context.Background(), size, format.LayoutV1, bytes.NewReader(l.Bytes), pipeline.Config{Parallelism: par, Depth: 4, ReadSize: rs}, apply.Discard)
			if walerr.CodeOf(err) != walerr.InvalidArgument || stats.Records != 0 {
				t.Fatalf("par %d read size %d: want INVALID_ARGUMENT, got %v after %d records", par, rs, err, stats.Records)
			}
			settled(t, "huge read size", stats)
		}
		for _, rs := range []int{pipeline.MaxReadSize, 1 << 20} {
			stats, err := runL(context.Background(), size, format.LayoutV1, bytes.NewReader(l.Bytes), pipeline.Config{Parallelism: par, Depth: 4, ReadSize: rs}, apply.Discard)
			if err != nil || stats.Records != int64(len(l.Offsets)) || stats.Workers != 1 {
				t.Fatalf("par %d read size %d: %v after %d records, %d workers", par, rs, err, stats.Records, stats.Workers)
			}
		}
	}
}
