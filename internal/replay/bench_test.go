package replay_test

import (
	"context"
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/chunk"
	"github.com/streamwal/recovery/internal/replay"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/internal/verifier"
)

// BenchmarkApplyBatch is the ordered applier's own cost per record: one 1 MiB chunk of
// verified records replayed into an applier that walks every op and folds its key and value
// into a digest (what the peers benchmark's applier does), the chunk hot in cache. This is the
// one stage that cannot run in parallel, so its cost per record bounds recovery at any
// parallelism.
func BenchmarkApplyBatch(b *testing.B) {
	for _, sz := range []int{256, 4 << 10} {
		b.Run(map[int]string{256: "size=256B", 4 << 10: "size=4KiB"}[sz], func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			var buf []byte
			n := 0
			for len(buf) < 1<<20 {
				buf = format.AppendRecord(buf, format.LayoutV1, testlog.SizedTx(rng, sz, 1024))
				n++
			}
			var bt chunk.Batch
			bt.Reset(0, 0)
			bt.N = n
			verifier.Batch(format.LayoutV1, &bt, buf, nil, nil)
			if bt.FirstBad != n {
				b.Fatalf("verified %d of %d records", bt.FirstBad, n)
			}
			var digest uint64
			st := &replay.Stage{Layout: format.LayoutV1, Applier: apply.Func(func(r apply.Record) error {
				it := r.Ops()
				for it.Next() {
					key, val := it.Key(), it.Value()
					x := uint64(len(key))<<32 ^ uint64(len(val))
					if len(key) >= 4 {
						x ^= uint64(binary.LittleEndian.Uint32(key))
					}
					if len(val) >= 8 {
						x ^= binary.LittleEndian.Uint64(val[len(val)-8:])
					}
					digest = (digest ^ x) * 0x100000001B3
				}
				return nil
			})}
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				if _, err := st.Batch(context.Background(), &bt, buf, nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/record")
		})
	}
}
