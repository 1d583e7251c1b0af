package db

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/faults"
	"github.com/streamwal/recovery/internal/testlog"
)

// A panic in the caller's ReadAt while finish reads the values back (on a part's goroutine)
// is raised again on finish's caller once every part has stopped, as recovery does with a
// panic in its workers: the caller's deferred cleanup runs (Open closes the file, releasing
// its lock) instead of the process dying. A runtime.Goexit there ends the caller's goroutine
// too, rather than leaving finish to build a store with the part's pairs missing.
func TestFinishRaisesAPartsPanicOnTheCaller(t *testing.T) {
	defer func(b int64) { partBytes = b }(partBytes)
	partBytes = 1
	var recs [][]byte
	for i := range 200 {
		recs = append(recs, payloadOf(setOp(fmt.Sprintf("key%d", i), string(bytes.Repeat([]byte{'v'}, 5000)))))
	}
	log := testlog.Build(format.LayoutV1, recs...).Bytes
	replayed := func() *loader {
		l := newLoader()
		if _, err := recovery.Recover(context.Background(), bytes.NewReader(log), l, recovery.WithPrepare(recovery.PrepareFunc(l.prepare)), recovery.ReadOnly()); err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, par := range []int{1, 4} {
		for _, after := range []int64{0, 2} {
			f := faults.Bytes(log, faults.FromCall(after+1).Panic("boom")) // once after reads are done, by any goroutine
			got := func() (p any) {
				defer func() { p = recover() }()
				_, err := replayed().finish(context.Background(), f, int64(len(log)), par)
				t.Fatalf("par %d, panic after %d reads: finish returned (%v) instead of panicking", par, after, err)
				return nil
			}()
			if r, ok := got.(*recovery.Panic); !ok || r.Value != "boom" || !strings.Contains(string(r.Stack), "faults.(*Reader).ReadAt") {
				t.Fatalf("par %d, panic after %d reads: recovered %v, want the ReadAt's panic with the ReadAt's stack", par, after, got)
			}
		}
		f := faults.Bytes(log, faults.FromCall(2).Goexit())
		returned := false
		done := make(chan struct{})
		go func() {
			defer close(done)
			replayed().finish(context.Background(), f, int64(len(log)), par)
			returned = true
		}()
		<-done
		if returned {
			t.Fatalf("par %d: finish returned after a part's ReadAt called runtime.Goexit", par)
		}
	}
}

// When one part finds a changed record, the others are stopped, and finish reports that
// record's I/O error, not the cancellation the others saw.
func TestFinishInPartsReportsTheChangeNotTheCancel(t *testing.T) {
	defer func(b int64) { partBytes = b }(partBytes)
	partBytes = 1
	var recs [][]byte
	for i := range 400 {
		recs = append(recs, payloadOf(setOp(fmt.Sprintf("key%d", i), fmt.Sprintf("value %04d", i)+string(bytes.Repeat([]byte{'v'}, 3000)))))
	}
	log := testlog.Build(format.LayoutV1, recs...).Bytes
	for _, at := range []string{"value 0000", "value 0200", "value 0399"} {
		changed := bytes.Clone(log)
		changed[bytes.Index(changed, []byte(at))] ^= 1
		for range 10 {
			l := newLoader()
			if _, err := recovery.Recover(context.Background(), bytes.NewReader(log), l, recovery.WithPrepare(recovery.PrepareFunc(l.prepare)), recovery.ReadOnly()); err != nil {
				t.Fatal(err)
			}
			_, err := l.finish(context.Background(), bytes.NewReader(changed), int64(len(changed)), 4)
			if !errors.Is(err, recovery.ErrIO) || errors.Is(err, context.Canceled) {
				t.Fatalf("a change in %q: %v, want the I/O error of a changed file", at, err)
			}
		}
	}
}
