// Package tests holds the suites that hold the streaming recovery to the independent oracle:
// exhaustive torn tails and bit flips, crash debris, hostile input, fixtures, random logs across
// pipeline configurations, and the fuzz target.
package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/internal/testlog"
	"github.com/streamwal/recovery/tests/oracle"
)

// config is one way of running Recover.
type config struct {
	par, depth, readSize int
}

func (c config) String() string {
	return fmt.Sprintf("par=%d/depth=%d/read=%d", c.par, c.depth, c.readSize)
}

func (c config) opts() []recovery.Option {
	o := []recovery.Option{recovery.WithParallelism(c.par)}
	if c.depth > 0 {
		o = append(o, recovery.WithPoolDepth(c.depth))
	}
	if c.readSize > 0 {
		o = append(o, recovery.WithReadSize(c.readSize))
	}
	return o
}

var (
	sequential = config{par: 1}
	// quick are the configurations every exhaustive case runs through.
	quick = []config{sequential, {par: 2, depth: 4, readSize: 4 << 10}, {par: 3, depth: 2, readSize: 4 << 10}, {par: 8, depth: 16, readSize: 4 << 10}}
	// wide are the configurations of the random and fuzz-corpus suites.
	wide = []config{
		sequential, {par: 1, readSize: 4 << 10},
		{par: 2, depth: 2, readSize: 4 << 10}, {par: 2, depth: 4, readSize: 64 << 10},
		{par: 3, depth: 3, readSize: 4 << 10}, {par: 3, depth: 16, readSize: 1 << 20},
		{par: 8, depth: 8, readSize: 4 << 10}, {par: 8, depth: 16, readSize: 16 << 10},
	}
)

// outcome is what a recovery decided, in the oracle's terms.
type outcome struct {
	oracle.Outcome
	State map[string]string
}

func (o outcome) String() string {
	return fmt.Sprintf("{layout=%q code=%q at=%d trunc=%v@%d+%d reason=%q records=%d ops=%d end=%d keys=%d}",
		o.Layout, o.Code, o.ErrOffset, o.Truncate, o.TruncOffset, o.TruncBytes, o.Reason, o.Records, o.Ops, o.End, len(o.State))
}

type modeOpt struct {
	mode      recovery.Mode
	maxRecord int64
}

func (m modeOpt) oracle() oracle.Options {
	return oracle.Options{Mode: oracle.Mode(m.mode), MaxRecord: uint32(m.maxRecord)}
}

// want is the oracle's verdict.
func want(data []byte, m modeOpt) outcome {
	o, st := oracle.State(data, m.oracle())
	return outcome{Outcome: o, State: st}
}

// got runs the streaming recovery read-only on a MemFile and checks it wrote nothing.
func got(t testing.TB, data []byte, m modeOpt, c config) (outcome, recovery.Result, error) {
	t.Helper()
	f := testlog.NewMemFile(data)
	st := map[string]string{}
	opts := append(c.opts(), recovery.ReadOnly(), recovery.WithMode(m.mode))
	if m.maxRecord > 0 {
		opts = append(opts, recovery.WithMaxRecordSize(m.maxRecord))
	}
	res, err := recovery.Recover(context.Background(), f, mapApplier(st), opts...)
	if f.Truncates != 0 || f.Syncs != 0 || !bytes.Equal(f.Data, data) {
		t.Fatalf("%v: read-only recovery wrote to the file (truncates=%d syncs=%d)", c, f.Truncates, f.Syncs)
	}
	o := outcome{State: st}
	o.Layout = res.Layout.String()
	if res.Layout == recovery.LayoutUnknown {
		o.Layout = ""
	}
	o.ErrOffset = -1
	if err != nil {
		var re *recovery.Error
		if !errors.As(err, &re) {
			t.Fatalf("%v: error is not a *recovery.Error: %v", c, err)
		}
		o.Code, o.ErrOffset = string(re.Code), re.Offset
	}
	if tr := res.Truncation; tr != nil && err == nil {
		o.Truncate, o.TruncOffset, o.TruncBytes, o.Reason = true, tr.Offset, tr.Bytes, string(tr.Reason)
	}
	o.Records, o.Ops, o.End = res.Records, res.Ops, res.End
	return o, res, err
}

func mapApplier(st map[string]string) recovery.Applier {
	return recovery.ApplyFunc(func(r recovery.Record) error {
		for it := r.Ops(); it.Next(); {
			op := it.Op()
			if op.Value == nil {
				delete(st, string(op.Key))
			} else {
				st[string(op.Key)] = string(op.Value)
			}
		}
		return nil
	})
}

// same compares an outcome with the oracle's. Truncation reasons are compared; error reasons
// are not (the error carries its own detail).
func same(a, b outcome) string {
	var d []string
	if a.Layout != b.Layout && !(a.Code != "" && b.Code != "") {
		d = append(d, fmt.Sprintf("layout %q vs %q", a.Layout, b.Layout))
	}
	if a.Code != b.Code || a.ErrOffset != b.ErrOffset {
		d = append(d, fmt.Sprintf("error %s@%d vs %s@%d", a.Code, a.ErrOffset, b.Code, b.ErrOffset))
	}
	if a.Truncate != b.Truncate || a.TruncOffset != b.TruncOffset || a.TruncBytes != b.TruncBytes || (a.Truncate && a.Reason != b.Reason) {
		d = append(d, fmt.Sprintf("truncation %v@%d+%d %q vs %v@%d+%d %q", a.Truncate, a.TruncOffset, a.TruncBytes, a.Reason, b.Truncate, b.TruncOffset, b.TruncBytes, b.Reason))
	}
	if a.Records != b.Records || a.Ops != b.Ops || a.End != b.End {
		d = append(d, fmt.Sprintf("replayed %d/%d/end %d vs %d/%d/end %d", a.Records, a.Ops, a.End, b.Records, b.Ops, b.End))
	}
	if !maps.Equal(a.State, b.State) {
		d = append(d, fmt.Sprintf("state differs (%d vs %d keys)", len(a.State), len(b.State)))
	}
	return strings.Join(d, "; ")
}

// check runs data through every config and compares each with the oracle. Under a
// *testing.T each config is a subtest named "case/mode/config", so one case can be run alone
// (-run 'TestX/torn_at_123/tolerate/par=4') and a failure in one config does not hide the others.
func check(t testing.TB, name string, data []byte, m modeOpt, cfgs []config) outcome {
	t.Helper()
	w := want(data, m)
	for _, c := range cfgs {
		one := func(t testing.TB) {
			t.Helper()
			g, _, _ := got(t, data, m, c)
			if diff := same(g, w); diff != "" {
				t.Fatalf("%s, mode %v, %v: differs from the oracle: %s\n got  %v\n want %v", name, m.mode, c, diff, g, w)
			}
		}
		if tt, ok := t.(*testing.T); ok {
			tt.Run(fmt.Sprintf("%s/%v/%v", name, m.mode, c), func(t *testing.T) { one(t) })
		} else {
			one(t)
		}
	}
	return w
}

// class names an outcome for the per-class counts.
func class(o outcome) string {
	switch {
	case o.Code != "":
		return o.Code
	case o.Truncate:
		return "cut:" + o.Reason
	}
	return "clean"
}

func logCounts(t *testing.T, what string, counts map[string]int) {
	keys := slices.Sorted(maps.Keys(counts))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, counts[k])
	}
	t.Logf("%s:%s", what, b.String())
}
