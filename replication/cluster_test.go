package replication

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// testCluster is n nodes in this process, on raft's in-memory transport, each with its own
// directory (bbolt for raft's log, the snapshot store, the database): real raft, real stores,
// a network the test can cut.
type testCluster struct {
	t      *testing.T
	dirs   []string
	addrs  []raft.ServerAddress
	trans  []*raft.InmemTransport // nil while the node is down
	nodes  []*Node                // nil while the node is down
	apart  map[[2]int]bool        // links cut by partition (both directions)
	conf   func(*raft.Config)
	logs   *syncBuffer
	damage atomic.Int64 // InstallSnapshot streams still to damage
	damOff int64        // the byte of the stream to flip
	mu     sync.Mutex
}

// testRaftConfig is raft's configuration for the tests: fast elections (raft's own tests use
// 50 ms; these leave room for the race detector on two cores), no snapshot unless asked.
func testRaftConfig() *raft.Config {
	c := raft.DefaultConfig()
	c.HeartbeatTimeout = 200 * time.Millisecond
	c.ElectionTimeout = 200 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 40
	c.SnapshotInterval = time.Hour
	return c
}

func newCluster(t *testing.T, n int, conf func(*raft.Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, apart: map[[2]int]bool{}, conf: conf, logs: &syncBuffer{}}
	var servers []raft.Server
	for i := range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.addrs = append(c.addrs, raft.ServerAddress(fmt.Sprintf("n%d", i)))
		servers = append(servers, raft.Server{ID: raft.ServerID(c.addrs[i]), Address: c.addrs[i]})
	}
	c.trans = make([]*raft.InmemTransport, n)
	c.nodes = make([]*Node, n)
	for i := range n {
		c.start(i, servers)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			if c.node(i) != nil {
				c.stop(i)
			}
		}
		if t.Failed() {
			t.Logf("the cluster's log (last 64 KiB):\n%s", c.logs.tail(64<<10))
		}
	})
	return c
}

// start starts node i (again) on a new transport, connected to every live node it is not cut
// from; servers bootstraps a new cluster (nil on a restart).
func (c *testCluster) start(i int, servers []raft.Server) {
	c.t.Helper()
	_, tr := raft.NewInmemTransportWithTimeout(c.addrs[i], 2*time.Second)
	c.mu.Lock()
	c.trans[i] = tr
	c.mu.Unlock()
	c.connect()
	rc := testRaftConfig()
	if c.conf != nil {
		c.conf(rc)
	}
	n, err := StartNode(NodeConfig{
		ID: string(c.addrs[i]), Dir: c.dirs[i], Transport: &faultTransport{tr, c},
		HTTPAddr: fmt.Sprintf("http-%d", i), Bootstrap: servers != nil, Servers: servers, Raft: rc,
		Logger: hclog.New(&hclog.LoggerOptions{Name: string(c.addrs[i]), Level: hclog.Warn, Output: c.logs}),
		FSM:    FSMOptions{Parallelism: 1, CompactMinBytes: -1},
	})
	if err != nil {
		c.t.Fatalf("start node %d: %v", i, err)
	}
	c.mu.Lock()
	c.nodes[i] = n
	c.mu.Unlock()
}

// node returns node i, nil while it is down (safe beside start and stop).
func (c *testCluster) node(i int) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i]
}

// stop shuts node i down (its transport closed and cut from every other): to the others it is
// a crashed server; its disk keeps what raft and the database synced.
func (c *testCluster) stop(i int) {
	c.t.Helper()
	c.mu.Lock()
	c.trans[i] = nil
	for j, o := range c.trans {
		if o != nil && j != i {
			o.Disconnect(c.addrs[i])
		}
	}
	n := c.nodes[i]
	c.nodes[i] = nil
	c.mu.Unlock()
	if err := n.Shutdown(); err != nil {
		c.t.Errorf("shutdown node %d: %v", i, err)
	}
}

// restart stops node i and starts it again from its directory.
func (c *testCluster) restart(i int) {
	c.stop(i)
	c.start(i, nil)
}

// connect connects every pair of live nodes that no partition separates.
func (c *testCluster) connect() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, a := range c.trans {
		for j, b := range c.trans {
			if i != j && a != nil && b != nil && !c.apart[[2]int{i, j}] {
				a.Connect(c.addrs[j], b)
			}
		}
	}
}

// partition cuts the nodes in side from all the others, both ways.
func (c *testCluster) partition(side ...int) {
	c.mu.Lock()
	in := map[int]bool{}
	for _, i := range side {
		in[i] = true
	}
	for i := range c.trans {
		for j := range c.trans {
			if in[i] != in[j] {
				c.apart[[2]int{i, j}] = true
				if c.trans[i] != nil {
					c.trans[i].Disconnect(c.addrs[j])
				}
			}
		}
	}
	c.mu.Unlock()
}

// heal removes every partition.
func (c *testCluster) heal() {
	c.mu.Lock()
	c.apart = map[[2]int]bool{}
	c.mu.Unlock()
	c.connect()
}

// leader waits for a live node that leads, among the nodes in among (all when empty), and
// returns its position.
func (c *testCluster) leader(among ...int) int {
	c.t.Helper()
	if len(among) == 0 {
		for i := range c.nodes {
			among = append(among, i)
		}
	}
	found := -1
	eventually(c.t, 30*time.Second, fmt.Sprintf("no leader among %v", among), func() bool {
		for _, i := range among {
			if n := c.node(i); n != nil && n.Raft().State() == raft.Leader {
				found = i
				return true
			}
		}
		return false
	})
	return found
}

// write applies ops on the leader, trying again (on the leader of the moment) until one try
// is acknowledged; it fails the test after 30 s.
func (c *testCluster) write(ops ...Op) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := c.nodes[c.leader()].Apply(ops...)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("write %v: %v", ops[0].Key, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// converged waits until every live node has applied what the leader has (after a barrier)
// and checks that they all hold the same database, reserved keys included. Each dump carries
// its own applied index (a reserved key): dumps at different indexes (a write, such as a
// member's address, committed between two dumps) are taken again; dumps at the same index
// that differ fail the test.
func (c *testCluster) converged() []string {
	c.t.Helper()
	var ref []string
	eventually(c.t, 60*time.Second, "the nodes did not reach the leader's state", func() bool {
		l := c.node(c.leader())
		if l == nil || l.Barrier() != nil {
			return false
		}
		want := l.FSM().AppliedIndex()
		var dumps [][]string
		for _, n := range c.nodes {
			if n == nil {
				continue
			}
			if n.FSM().AppliedIndex() != want {
				return false
			}
			dumps = append(dumps, dump(c.t, n.FSM()))
		}
		for _, d := range dumps[1:] {
			if !slices.Equal(d, dumps[0]) {
				if appliedLine(d) == appliedLine(dumps[0]) {
					c.t.Fatalf("two nodes at the same applied index (%s) hold different databases: %d and %d pairs",
						appliedLine(d), len(d), len(dumps[0]))
				}
				return false
			}
		}
		ref = dumps[0]
		return true
	})
	return ref
}

// appliedLine is the applied index's line of a dump.
func appliedLine(d []string) string {
	p := fmt.Sprintf("%q=", appliedKey)
	for _, l := range d {
		if strings.HasPrefix(l, p) {
			return l
		}
	}
	return ""
}

// faultTransport is a node's in-memory transport; it damages the next InstallSnapshot streams
// it sends when the cluster says so (one bit flipped, in flight).
type faultTransport struct {
	*raft.InmemTransport
	c *testCluster
}

func (f *faultTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest,
	resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if f.c.damage.Add(-1) >= 0 {
		data = &flipReader{r: data, at: f.c.damOff}
	}
	return f.InmemTransport.InstallSnapshot(id, target, args, resp, data)
}

// flipReader flips one bit of the byte at offset at.
type flipReader struct {
	r   io.Reader
	at  int64
	off int64
}

func (f *flipReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if f.at >= f.off && f.at < f.off+int64(n) {
		p[f.at-f.off] ^= 0x10
	}
	f.off += int64(n)
	return n, err
}

// syncBuffer is a log sink that outlives the test (raft may log after Shutdown returns).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) tail(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b.Bytes()
	return string(b[max(0, len(b)-n):])
}

func kv(i int) (string, string) { return fmt.Sprintf("key%05d", i), fmt.Sprintf("value %d", i) }

// checkKeys checks that every node holds keys from..to-1 with their values (stale reads, after
// converged).
func (c *testCluster) checkKeys(from, to int) {
	c.t.Helper()
	for i, n := range c.nodes {
		if n == nil {
			continue
		}
		for k := from; k < to; k++ {
			key, want := kv(k)
			v, ok, err := n.Get([]byte(key), Stale)
			if err != nil || !ok || string(v) != want {
				c.t.Fatalf("node %d: %s = %q, %v, %v; want %q", i, key, v, ok, err, want)
			}
		}
	}
}

// Three nodes: writes through the leader reach every node; the leader is stopped, a new one
// is elected and writes go on; the old leader restarts from its disk and catches up (its
// database was ahead of its last snapshot, which it has none of: raft replays its log and the
// state machine skips what the database holds). Every acknowledged write is on every node and
// the replicas are identical.
func TestClusterSurvivesItsLeader(t *testing.T) {
	c := newCluster(t, 3, nil)
	for i := range 30 {
		c.write(set(kv(i)))
	}
	old := c.leader()
	c.stop(old)
	var rest []int
	for i := range 3 {
		if i != old {
			rest = append(rest, i)
		}
	}
	c.leader(rest...)
	for i := 30; i < 60; i++ {
		c.write(set(kv(i)))
	}
	c.start(old, nil)
	c.converged()
	c.checkKeys(0, 60)
	// It replayed its log from the start (it has no snapshot) and skipped the 30 commands its
	// database held.
	if st := c.nodes[old].FSM().Stats(); st.Skipped < 30 {
		t.Fatalf("restarted node: %+v (want at least 30 entries skipped)", st)
	}
	// The leader has recorded its HTTP address through raft: every node can name it.
	eventually(t, 30*time.Second, "the leader's HTTP address is not known everywhere", func() bool {
		l := c.leader()
		for _, n := range c.nodes {
			if _, _, h := n.Leader(); h != fmt.Sprintf("http-%d", l) {
				return false
			}
		}
		return true
	})
}

// Five nodes: the leader and one follower are cut off from the other three. The three elect a
// leader and take writes; the deposed leader's writes are never acknowledged and, once the
// partition heals, are nowhere (they were never committed). Every acknowledged write is on
// every node.
func TestClusterPartitionedLeader(t *testing.T) {
	c := newCluster(t, 5, nil)
	for i := range 20 {
		c.write(set(kv(i)))
	}
	old := c.leader()
	buddy := (old + 1) % 5
	c.partition(old, buddy)
	var major []int
	for i := range 5 {
		if i != old && i != buddy {
			major = append(major, i)
		}
	}
	// The deposed leader's writes: each fails (not a majority), whatever raft says about it.
	var lost []string
	for i := range 3 {
		key := fmt.Sprintf("lost%d", i)
		if err := c.nodes[old].Put([]byte(key), []byte("never")); err == nil {
			t.Fatalf("a write to a leader cut off from the majority was acknowledged")
		}
		lost = append(lost, key)
	}
	c.leader(major...)
	for i := 20; i < 40; i++ {
		deadline := time.Now().Add(30 * time.Second)
		for {
			key, v := kv(i)
			if err := c.nodes[c.leader(major...)].Put([]byte(key), []byte(v)); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatal(err)
			}
		}
	}
	c.heal()
	c.converged()
	c.checkKeys(0, 40)
	for i, n := range c.nodes {
		for _, key := range lost {
			if _, ok, _ := n.Get([]byte(key), Stale); ok {
				t.Fatalf("node %d holds %s, a write that was never acknowledged", i, key)
			}
		}
	}
}

// snapshotConfig makes raft keep few log entries after a snapshot, so that a follower that
// misses more than that must install one.
func snapshotConfig(rc *raft.Config) { rc.TrailingLogs = 10 }

// snapshotAllBut takes a snapshot on every live node but one (which raft compacts its log
// after, down to TrailingLogs entries), so that whichever of them leads once that one is back
// must send it a snapshot (a leader with the whole log would send entries). It returns the
// smallest of the snapshots' sizes.
func (c *testCluster) snapshotAllBut(skip int) int64 {
	c.t.Helper()
	smallest := int64(-1)
	for i, n := range c.nodes {
		if n == nil || i == skip {
			continue
		}
		f := n.Raft().Snapshot()
		if err := f.Error(); err != nil {
			c.t.Fatalf("snapshot on node %d: %v", i, err)
		}
		meta, rc, err := f.Open()
		if err != nil {
			c.t.Fatal(err)
		}
		rc.Close()
		if smallest < 0 || meta.Size < smallest {
			smallest = meta.Size
		}
	}
	return smallest
}

// A follower cut off while the leader takes more writes than its log keeps after a snapshot
// installs the leader's snapshot when it is back (the state machine's streaming restore), and
// ends with the same database as everyone.
func TestSlowFollowerInstallsASnapshot(t *testing.T) {
	c := newCluster(t, 3, snapshotConfig)
	for i := range 20 {
		c.write(set(kv(i)))
	}
	l := c.leader()
	slow := (l + 1) % 3
	c.converged()
	c.partition(slow)
	for i := 20; i < 220; i++ {
		c.write(set(kv(i)))
	}
	c.snapshotAllBut(slow)
	c.heal()
	c.converged()
	c.checkKeys(0, 220)
	if st := c.nodes[slow].FSM().Stats(); st.Restores != 1 || st.Refused != 0 || st.Generation != 2 {
		t.Fatalf("the slow follower: %+v (want one snapshot installed)", st)
	}
}

// A snapshot damaged in flight (one bit flipped on its way to the follower) is refused by the
// follower, which keeps its state and does not keep the damaged snapshot; the leader sends it
// again, and the follower catches up from the good copy. Broken (Restore answering nil to a
// refused stream, as if installed), the follower never catches up and the test fails.
func TestDamagedSnapshotInFlightIsRefused(t *testing.T) {
	c := newCluster(t, 3, snapshotConfig)
	for i := range 20 {
		c.write(set(kv(i)))
	}
	l := c.leader()
	slow := (l + 1) % 3
	c.converged()
	c.partition(slow)
	for i := 20; i < 220; i++ {
		c.write(set(kv(i)))
	}
	size := c.snapshotAllBut(slow)
	c.damOff = snapshotHeaderSize + (size-snapshotHeaderSize)/2 // in the middle of the log
	c.damage.Store(1)
	before := c.nodes[slow].FSM().AppliedIndex()
	c.heal()
	c.converged()
	c.checkKeys(0, 220)
	st := c.nodes[slow].FSM().Stats()
	if st.Refused < 1 || st.Restores != 1 {
		t.Fatalf("the follower: %+v (want at least one refusal, then one install)", st)
	}
	if before >= 220 {
		t.Fatalf("the follower was at %d before the heal: it did not need the snapshot", before)
	}
	// Every snapshot the follower keeps installs (the damaged one was removed).
	metas, err := c.nodes[slow].snaps.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metas {
		_, rc, err := c.nodes[slow].snaps.Open(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		scratch := openFSM(t, filepath.Join(t.TempDir(), "scratch"), FSMOptions{})
		if err := scratch.Restore(rc); err != nil {
			t.Fatalf("the follower kept snapshot %s, which does not install: %v", m.ID, err)
		}
	}
	if !strings.Contains(c.logs.tail(1<<20), "snapshot refused") {
		t.Fatal("no refusal was logged")
	}
}

// Commands and strong reads in flight on a leader that is stopped, or cut off, return (with an
// error saying their outcome is unknown, or ErrNotLeader): none waits for good. hashicorp/raft
// can leave a command's future unanswered in both cases (raft issue #498), which is why Node
// waits on its state machine, its leadership and its own shutdown instead.
func TestCallsInFlightReturn(t *testing.T) {
	c := newCluster(t, 3, nil)
	for round := range 2 {
		l := c.leader()
		n := c.node(l)
		var wg sync.WaitGroup
		var calls atomic.Int64
		for w := range 16 {
			wg.Go(func() {
				for i := 0; ; i++ {
					var err error
					if i%2 == 0 {
						err = n.Put([]byte(fmt.Sprintf("w%d-%d", w, i)), []byte("v"))
					} else {
						_, _, err = n.Get([]byte("w0-0"), Strong)
					}
					calls.Add(1)
					if err != nil {
						return // the node stopped or lost its leadership: this call returned
					}
				}
			})
		}
		eventually(t, 30*time.Second, "no calls completed", func() bool { return calls.Load() > 50 })
		if round == 0 {
			c.stop(l)
		} else {
			c.partition(l)
		}
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("round %d: calls on the old leader still waiting a minute after it was %s", round, []string{"stopped", "cut off"}[round])
		}
		if round == 0 {
			c.start(l, nil)
		} else {
			c.heal()
		}
	}
	c.converged()
}
