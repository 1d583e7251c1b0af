package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/streamwal/recovery"
)

// BenchmarkTune sweeps read size and pool depth: how the defaults were chosen.
func BenchmarkTune(b *testing.B) {
	defer removeBenchLogs()
	for _, sz := range []int{256, 4 << 10} {
		l := logFor(b, sz)
		for _, rs := range []int{64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20} {
			for _, par := range []int{1, 2, 4} {
				for _, depth := range []int{0, 3, 8} {
					if par == 1 && depth != 0 {
						continue // the sequential loop has one buffer
					}
					b.Run(fmt.Sprintf("size=%s/read=%dKiB/par=%d/depth=%d", sizeName(sz), rs>>10, par, depth), func(b *testing.B) {
						f, rf := openLog(b, l)
						defer f.Close()
						b.SetBytes(l.payload)
						for b.Loop() {
							opts := []recovery.Option{recovery.WithParallelism(par), recovery.ReadOnly(), recovery.WithReadSize(rs)}
							if depth > 0 {
								opts = append(opts, recovery.WithPoolDepth(depth))
							}
							if _, err := recovery.Recover(context.Background(), rf, nil, opts...); err != nil {
								b.Fatal(err)
							}
						}
					})
				}
			}
		}
	}
}
