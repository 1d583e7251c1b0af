package replication

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/streamwal/recovery/db"
	"go.uber.org/goleak"
)

// TestMain checks that no test leaves a goroutine behind. hashicorp/raft's Shutdown returns
// before a few of its goroutines have returned: the ones named here are given time (goleak
// retries until its deadline) and, if still there, ignored. They are raft's own and end on
// their own; nothing of this package's is ignored.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" { // a benchmark's install child
		os.Exit(helperMain())
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	if code == 0 {
		if err := goleak.Find(raftLeftovers()...); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: goroutines left after the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

func raftLeftovers() []goleak.Option {
	return []goleak.Option{
		// The inmem transport's pipeline decoder, which a Disconnect closes but does not wait
		// for, and raft's timers in flight at Shutdown.
		goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*inmemPipeline).decodeResponses"),
		goleak.IgnoreAnyFunction("github.com/hashicorp/raft.(*InmemTransport).makeRPC"),
	}
}

// deep reports whether the heavier runs were asked for (REPLICATION_DEEP=1).
func deep() bool { return os.Getenv("REPLICATION_DEEP") != "" }

// seed returns the seed of a randomized test (REPLICATION_SEED to replay one) and logs how to
// replay it if the test fails.
func seed(t testing.TB) uint64 {
	t.Helper()
	s := uint64(time.Now().UnixNano())
	if v := os.Getenv("REPLICATION_SEED"); v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("REPLICATION_SEED=%q: %v", v, err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay the same choices with: REPLICATION_SEED=%d go test -run '^%s$' (raft's timing is the machine's: a cluster run is not replayed exactly)", s, t.Name())
		}
	})
	return s
}

func rng(s uint64) *rand.Rand { return rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15)) }

// cmd encodes ops as a command, failing the test on error.
func cmd(t testing.TB, ops ...Op) []byte {
	t.Helper()
	b, err := EncodeCommand(ops...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func set(k, v string) Op      { return Op{Kind: OpSet, Key: []byte(k), Value: []byte(v)} }
func del(k string) Op         { return Op{Kind: OpDelete, Key: []byte(k)} }
func appendOp(k, v string) Op { return Op{Kind: OpAppend, Key: []byte(k), Value: []byte(v)} }

func entry(index uint64, data []byte) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

// openFSM opens an FSM in dir, closed at the end of the test.
func openFSM(t testing.TB, dir string, opts FSMOptions) *FSM {
	t.Helper()
	f, err := OpenFSM(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// dump is the FSM's whole state, reserved keys included, as "key=value" lines.
func dump(t testing.TB, f *FSM) []string {
	t.Helper()
	var out []string
	err := f.View(func(tx *db.Tx) error {
		for k, v := range tx.Range(nil, nil) {
			out = append(out, fmt.Sprintf("%q=%q", k, v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// userState is the FSM's client-visible state.
func userState(t testing.TB, f *FSM) map[string]string {
	t.Helper()
	kvs, err := f.Scan(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = string(kv.Value)
	}
	return m
}

// snapshotBytes takes a snapshot of f and persists it into memory.
func snapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	sink := &memSink{}
	if err := s.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed {
		t.Fatal("Persist did not close the sink")
	}
	return sink.Bytes()
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, canceled bool
}

func (m *memSink) ID() string    { return "mem" }
func (m *memSink) Close() error  { m.closed = true; return nil }
func (m *memSink) Cancel() error { m.canceled = true; return nil }

// testLogger writes raft's and the FSM's messages at level to the test's log.
func testLogger(t testing.TB, name string, level hclog.Level) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: name, Level: level, Output: testWriter{t}, DisableTime: false})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// eventually waits for cond, checking every 10 ms, for at most d; it fails the test with what
// when the time is up.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
