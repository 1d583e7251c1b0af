package replication

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/hashicorp/raft"
)

// The linearizability tests: clients issue random puts, appends, deletes and strong reads on a
// few keys, to whichever node they pick, while a nemesis partitions nodes, stops and restarts
// leaders and followers, and raft snapshots often enough that a follower coming back must
// install one. Every operation's call and return times and outcome are recorded, and
// porcupine checks that the history is linearizable against a sequential key-value store.
//
// Outcomes: a write that returns nil happened; raft.ErrNotLeader and ErrEnqueueTimeout mean it
// was never appended (left out of the history); any other error means it may have happened,
// at any time after its call (its return is put at infinity). A read that fails changes
// nothing and is left out.

type linInput struct {
	Op    OpKind // OpSet, OpAppend, OpDelete, or 0 for a read
	Key   string
	Value string
}

type linOutput struct {
	Value   string
	Present bool
}

// kvModel is a sequential key-value store, partitioned by key (each key's history is checked
// on its own: a key-value store is linearizable if and only if each key is).
var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(linInput).Key
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, k := range sortedKeys(by) {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return linOutput{} },
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(linOutput), input.(linInput)
		switch in.Op {
		case 0:
			out := output.(linOutput)
			return out == s, s
		case OpSet:
			return true, linOutput{in.Value, true}
		case OpAppend:
			return true, linOutput{s.Value + in.Value, true}
		case OpDelete:
			return true, linOutput{}
		}
		return false, s
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linInput)
		if in.Op == 0 {
			out := output.(linOutput)
			return fmt.Sprintf("get(%s) -> %q %v", in.Key, out.Value, out.Present)
		}
		return fmt.Sprintf("%s(%s, %q)", in.Op, in.Key, in.Value)
	},
}

func TestLinearizable3(t *testing.T) { linearizability(t, 3) }
func TestLinearizable5(t *testing.T) { linearizability(t, 5) }

func linConfig(rc *raft.Config) {
	rc.TrailingLogs = 16
	rc.SnapshotThreshold = 64
	rc.SnapshotInterval = 300 * time.Millisecond
}

func linearizability(t *testing.T, size int) {
	s := seed(t)
	r := rng(s)
	dur, clients := 3*time.Second, 4
	if deep() {
		dur, clients = 30*time.Second, 8
	}
	c := newCluster(t, size, linConfig)
	c.leader()

	var (
		mu      sync.Mutex
		history []porcupine.Operation
		start   = time.Now()
	)
	now := func() int64 { return int64(time.Since(start)) }
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}
	keys := []string{"a", "b", "c"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for id := range clients {
		cr := rng(s + uint64(id) + 1)
		wg.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				in := linInput{Key: keys[cr.IntN(len(keys))]}
				switch x := cr.IntN(100); {
				case x < 30:
					in.Op, in.Value = OpSet, fmt.Sprintf("%d.%d;", id, n)
				case x < 55:
					in.Op, in.Value = OpAppend, fmt.Sprintf("%d.%d;", id, n)
				case x < 60:
					in.Op = OpDelete
				}
				target := c.pick(cr, in.Op != 0)
				if target == nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				op := porcupine.Operation{ClientId: id, Input: in, Call: now()}
				var err error
				if in.Op == 0 {
					var v []byte
					var ok bool
					v, ok, err = target.Get([]byte(in.Key), Strong)
					op.Output = linOutput{string(v), ok}
				} else {
					err = target.Apply(Op{Kind: in.Op, Key: []byte(in.Key), Value: valueOf(in)})
				}
				op.Return = now()
				switch {
				case err == nil:
					record(op)
				case in.Op == 0, errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
					// a failed read, or a write never appended: not in the history
				default:
					op.Return = math.MaxInt64 // may have happened, at any time after its call
					record(op)
				}
			}
		})
	}

	// The nemesis: one fault at a time, then a pause.
	deadline := time.Now().Add(dur)
	var events []string
	for time.Now().Before(deadline) {
		l := c.leader()
		switch e := r.IntN(5); e {
		case 0: // the leader cut off (with a buddy in a 5-node cluster: still a minority)
			side := []int{l}
			if size == 5 {
				side = append(side, (l+1)%size)
			}
			c.partition(side...)
			events = append(events, fmt.Sprintf("partition %v", side))
			pause(r)
			c.heal()
		case 1: // the leader stopped, restarted later
			c.stop(l)
			events = append(events, fmt.Sprintf("stop leader %d", l))
			pause(r)
			c.start(l, nil)
		case 2: // a follower cut off for long enough to need a snapshot
			f := (l + 1 + r.IntN(size-1)) % size
			c.partition(f)
			events = append(events, fmt.Sprintf("partition follower %d", f))
			pause(r)
			pause(r)
			c.heal()
		case 3: // a follower restarted
			f := (l + 1 + r.IntN(size-1)) % size
			c.restart(f)
			events = append(events, fmt.Sprintf("restart follower %d", f))
		case 4:
			events = append(events, "quiet")
		}
		pause(r)
	}
	c.heal()
	// A quiet end: the clients go on until enough operations completed to make the check
	// worth something (on a loaded machine the faults above may leave few).
	countDone := func() (writes, reads int) {
		mu.Lock()
		defer mu.Unlock()
		for _, op := range history {
			switch {
			case op.Return == math.MaxInt64:
			case op.Input.(linInput).Op == 0:
				reads++
			default:
				writes++
			}
		}
		return writes, reads
	}
	eventually(t, 2*time.Minute, "fewer than 100 writes and 50 reads completed", func() bool {
		w, r := countDone()
		return w >= 100 && r >= 50
	})
	close(stop)
	wg.Wait()
	// A last strong read of each key, once everything is back, joins the history.
	for _, k := range keys {
		eventually(t, 30*time.Second, "no final read of "+k, func() bool {
			n := c.node(c.leader())
			if n == nil {
				return false
			}
			call := now()
			v, ok, err := n.Get([]byte(k), Strong)
			if err != nil {
				return false
			}
			record(porcupine.Operation{ClientId: clients, Input: linInput{Key: k}, Call: call, Output: linOutput{string(v), ok}, Return: now()})
			return true
		})
	}
	final := c.converged()

	sort.Slice(history, func(i, j int) bool { return history[i].Call < history[j].Call })
	var writes, reads, unknown int
	for _, op := range history {
		switch {
		case op.Return == math.MaxInt64:
			unknown++
		case op.Input.(linInput).Op == 0:
			reads++
		default:
			writes++
		}
	}
	t.Logf("%d nodes, %v: %d writes, %d reads acknowledged, %d writes of unknown outcome; faults: %v; %d pairs at the end",
		size, dur, writes, reads, unknown, events, len(final))
	res, info := porcupine.CheckOperationsVerbose(kvModel, history, time.Minute)
	if res != porcupine.Ok {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("replication-lin-%d.html", s))
		if f, err := os.Create(path); err == nil {
			_ = porcupine.Visualize(kvModel, info, f)
			f.Close()
			t.Logf("the history, drawn: %s", path)
		}
		t.Fatalf("the history is %v (not linearizable, or not decided in a minute)", res)
	}
}

func valueOf(in linInput) []byte {
	if in.Op == OpDelete {
		return nil
	}
	return []byte(in.Value)
}

// pause waits 100 to 400 ms.
func pause(r *rand.Rand) { time.Sleep(time.Duration(100+r.IntN(300)) * time.Millisecond) }

// pick chooses the node an operation goes to: for a write, mostly the one that leads now; for
// a read, any live node half the time (a strong read on a follower is refused), so that a read
// that skipped the barrier would be caught reading a stale follower.
func (c *testCluster) pick(r *rand.Rand, write bool) *Node {
	n := len(c.nodes)
	if write || r.IntN(2) == 0 {
		for i := range n {
			if nd := c.node(i); nd != nil && nd.Raft().State() == raft.Leader {
				return nd
			}
		}
	}
	return c.node(r.IntN(n))
}
