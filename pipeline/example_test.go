package pipeline_test

import (
	"bytes"
	"context"
	"fmt"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/pipeline"
)

// Run replays a log whose prefix the caller has read; the decided cut comes back in Stats and
// is the caller's to carry out (recovery.Recover does both).
func ExampleRun() {
	log := append([]byte(nil), format.FileHeader[:]...)
	for _, v := range []string{"a", "b", "c"} {
		log = format.AppendRecord(log, format.LayoutV1, format.AppendSet(nil, []byte(v), []byte("value")))
	}
	log = append(log, 0, 0, 1) // a torn header: the crash came mid-append
	f := bytes.NewReader(log)

	ctx := context.Background()
	pre, err := classify.ReadPrefix(ctx, f, f.Size(), classify.DefaultMaxRecord)
	if err != nil {
		panic(err)
	}
	keys := 0
	stats, err := pipeline.Run(ctx, f, f.Size(), pre.Layout, apply.Func(func(r apply.Record) error {
		keys += r.NumOps()
		return nil
	}), pipeline.Config{Parallelism: 2, Depth: 5, ReadSize: 4 << 10, MaxRecord: classify.DefaultMaxRecord})
	fmt.Println(err, stats.Records, keys, stats.Truncation.Reason, stats.Truncation.Offset == stats.End)
	// Output: <nil> 3 3 torn_tail true
}
