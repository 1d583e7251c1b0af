package recovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
)

// sampleLog is a v1 log of three transactions, built with the project's encoder.
func sampleLog() []byte {
	log := append([]byte(nil), format.FileHeader[:]...)
	tx1 := format.AppendSet(nil, []byte("alice"), []byte("1"))
	tx1 = format.AppendSet(tx1, []byte("bob"), []byte("2"))
	tx2 := format.AppendSet(nil, []byte("carol"), []byte("3"))
	tx3 := format.AppendDelete(nil, []byte("bob"))
	for _, tx := range [][]byte{tx1, tx2, tx3} {
		log = format.AppendRecord(log, format.LayoutV1, tx)
	}
	return log
}

// Recover replays a log into a map. The applier is called once per record, in file order,
// from one goroutine, whatever the parallelism; the ops alias pooled buffers, so it copies
// what it keeps.
func ExampleRecover() {
	log := sampleLog()
	state := map[string]string{}
	apply := recovery.ApplyFunc(func(r recovery.Record) error {
		for it := r.Ops(); it.Next(); {
			op := it.Op()
			if op.Kind == format.OpSet {
				state[string(op.Key)] = string(op.Value)
			} else {
				delete(state, string(op.Key))
			}
		}
		return nil
	})
	// bytes.Reader is a recovery.File: ReadAt and Size.
	res, err := recovery.Recover(context.Background(), bytes.NewReader(log), apply, recovery.WithParallelism(2))
	if err != nil {
		fmt.Println(err)
		return
	}
	keys := make([]string, 0, len(state))
	for k := range state {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Printf("%s=%s\n", k, state[k])
	}
	fmt.Printf("%s layout, %d records, %d ops, clean: %v\n", res.Layout, res.Records, res.Ops, res.Truncation == nil)
	// Output:
	// alice=1
	// carol=3
	// v1 layout, 3 records, 4 ops, clean: true
}

// A crash in the middle of an append leaves a torn last record. Recovery replays every
// record before it and reports the cut; with ReadOnly it only reports it (a writable file
// would be cut and synced).
func ExampleRecover_tornTail() {
	log := sampleLog()
	clean := len(log)
	next := format.AppendRecord(nil, format.LayoutV1, format.AppendSet(nil, []byte("dave"), []byte("4")))
	log = append(log, next[:len(next)/2]...) // the crash: half of the last append reached the disk

	res, err := recovery.Recover(context.Background(), bytes.NewReader(log), recovery.Discard, recovery.ReadOnly())
	if err != nil {
		fmt.Println(err)
		return
	}
	t := res.Truncation
	fmt.Printf("replayed %d records; would cut %d bytes at offset %d (%s), the clean end is %d\n",
		res.Records, t.Bytes, t.Offset, t.Reason, clean)
	// Output:
	// replayed 3 records; would cut 13 bytes at offset 95 (torn_tail), the clean end is 95
}

// Damage with evidence of later writes behind it is corruption, not a crash: recovery
// refuses the file and touches nothing. The error matches its sentinel with errors.Is and
// carries a stable code and the offset.
func ExampleRecover_corrupt() {
	log := sampleLog()
	log[8+12+3] ^= 0xFF // a byte of the first record's payload; two good records follow it

	_, err := recovery.Recover(context.Background(), bytes.NewReader(log), recovery.Discard)
	fmt.Println(errors.Is(err, recovery.ErrCorruptWAL), recovery.IsCorruption(err))
	var rerr *recovery.Error
	if errors.As(err, &rerr) {
		fmt.Println(rerr.Code, rerr.Offset)
	}
	// Output:
	// true true
	// CORRUPT_WAL 8
}
