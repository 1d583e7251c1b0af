package pipeline_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/apply"
)

// A panic in the caller's ReadAt or Applier comes back on the caller's goroutine as a
// *recovery.Panic whose stack is the one of the goroutine where it happened, naming the
// function that panicked, at every parallelism: before, a parallel recovery re-raised the bare
// value, and the stack that said where it happened was lost.
func TestPanicCarriesItsStack(t *testing.T) {
	for _, cfg := range configs {
		t.Run(fmt.Sprintf("reader/par=%d", cfg.Parallelism), func(t *testing.T) {
			p := recovered(func() {
				run(context.Background(), bigLog.Bytes, diskOnFire(bigLog.Bytes, 20<<10), cfg, apply.Discard)
			})
			if p.Value != "disk on fire" || !strings.Contains(string(p.Stack), "faults.(*Reader).ReadAt") {
				t.Fatalf("value %v, stack:\n%s", p.Value, p.Stack)
			}
		})
		t.Run(fmt.Sprintf("applier/par=%d", cfg.Parallelism), func(t *testing.T) {
			p := recovered(func() {
				run(context.Background(), bigLog.Bytes, bytes.NewReader(bigLog.Bytes), cfg, apply.Func(explodingApply))
			})
			if p.Value != "applier bug" || !strings.Contains(string(p.Stack), "explodingApply") || !strings.Contains(p.Error(), "explodingApply") {
				t.Fatalf("value %v, stack:\n%s", p.Value, p.Stack)
			}
		})
	}
}

//go:noinline
func explodingApply(r apply.Record) error {
	if r.Offset > 16<<10 {
		panic("applier bug")
	}
	return nil
}

func recovered(fn func()) (p *recovery.Panic) {
	defer func() { p, _ = recover().(*recovery.Panic) }()
	fn()
	return nil
}
