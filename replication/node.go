package replication

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// NodeConfig configures StartNode.
type NodeConfig struct {
	ID  string // the server ID, stable across restarts
	Dir string // raft.db (raft's log and stable store, bbolt), snapshots/, state/ (the database)
	// Transport carries raft's RPCs (raft.NewTCPTransport, or raft.NewInmemTransport in tests).
	// The node closes it at Shutdown.
	Transport raft.Transport
	// HTTPAddr, if set, is recorded in the replicated state as this server's client address, so
	// that any node can send a client to the leader.
	HTTPAddr string
	// Bootstrap starts a new cluster of Servers (this node alone when empty), unless the node
	// has raft state already (then it is ignored: a restart).
	Bootstrap bool
	Servers   []raft.Server
	// Raft is the base raft configuration (nil: raft.DefaultConfig()); LocalID, Logger and
	// NoSnapshotRestoreOnStart are set by the node.
	Raft           *raft.Config
	SnapshotRetain int // snapshots kept (default 2)
	FSM            FSMOptions
	Logger         hclog.Logger // default: none
	// ApplyTimeout bounds the wait for raft to take a command or a barrier (default 10 s).
	ApplyTimeout time.Duration
}

// Node is one server of the replicated database: raft (with bbolt for its log through
// raft-boltdb, and SnapshotStore for snapshots) driving an FSM.
type Node struct {
	cfg   NodeConfig
	log   hclog.Logger
	raft  *raft.Raft
	fsm   *FSM
	snaps *SnapshotStore
	bolt  *raftboltdb.BoltStore
	stop  chan struct{}
	wg    sync.WaitGroup // the registration loop

	idPrefix [8]byte // this node instance's request IDs: random, then a counter
	seq      atomic.Uint64
	wmu      sync.Mutex
	waiters  map[reqID]chan error // commands proposed here, waiting for the state machine

	shutdown sync.Once
	shutErr  error
}

// StartNode opens the node's stores and starts raft. Before raft starts, the database is
// brought up to the newest snapshot if it is behind it (a crash in the middle of installing
// one): raft is configured not to restore a snapshot at start (NoSnapshotRestoreOnStart),
// because the database is durable and usually ahead of it.
func StartNode(cfg NodeConfig) (*Node, error) {
	if cfg.ID == "" || cfg.Dir == "" || cfg.Transport == nil {
		return nil, errors.New("replication: a node needs an ID, a directory and a transport")
	}
	if cfg.SnapshotRetain == 0 {
		cfg.SnapshotRetain = 2
	}
	if cfg.ApplyTimeout == 0 {
		cfg.ApplyTimeout = 10 * time.Second
	}
	lg := cfg.Logger
	if lg == nil {
		lg = hclog.NewNullLogger()
	}
	if cfg.FSM.Logger == nil {
		cfg.FSM.Logger = lg.Named("fsm")
	}
	n := &Node{cfg: cfg, log: lg, stop: make(chan struct{}), waiters: map[reqID]chan error{}}
	if _, err := rand.Read(n.idPrefix[:]); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			n.closeStores()
			if c, isC := cfg.Transport.(raft.WithClose); isC {
				c.Close()
			}
		}
	}()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	var err error
	n.bolt, err = raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		return nil, fmt.Errorf("replication: open raft's log store: %w", err)
	}
	if n.snaps, err = NewSnapshotStore(filepath.Join(cfg.Dir, "snapshots"), cfg.SnapshotRetain); err != nil {
		return nil, err
	}
	if n.fsm, err = OpenFSM(filepath.Join(cfg.Dir, "state"), cfg.FSM); err != nil {
		return nil, err
	}
	if err := n.catchUp(); err != nil {
		return nil, err
	}
	n.fsm.onApplied = n.applied
	rc := raft.DefaultConfig()
	if cfg.Raft != nil {
		c := *cfg.Raft
		rc = &c
	}
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = lg.Named("raft")
	rc.NoSnapshotRestoreOnStart = true
	logs, err := raft.NewLogCache(512, n.bolt)
	if err != nil {
		return nil, err
	}
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(logs, n.bolt, n.snaps)
		if err != nil {
			return nil, err
		}
		if !has {
			servers := cfg.Servers
			if len(servers) == 0 {
				servers = []raft.Server{{ID: rc.LocalID, Address: cfg.Transport.LocalAddr()}}
			}
			if err := raft.BootstrapCluster(rc, logs, n.bolt, n.snaps, cfg.Transport, raft.Configuration{Servers: servers}); err != nil {
				return nil, fmt.Errorf("replication: bootstrap: %w", err)
			}
		}
	}
	if n.raft, err = raft.NewRaft(rc, nodeFSM{n.fsm, n}, logs, n.bolt, n.snaps, cfg.Transport); err != nil {
		return nil, fmt.Errorf("replication: start raft: %w", err)
	}
	ok = true
	if cfg.HTTPAddr != "" {
		n.wg.Add(1)
		go n.register()
	}
	return n, nil
}

// nodeFSM is the FSM as the node gives it to raft: a refused snapshot is also removed from the
// snapshot store (see discardAhead).
type nodeFSM struct {
	*FSM
	n *Node
}

func (m nodeFSM) Restore(rc io.ReadCloser) error {
	err := m.FSM.Restore(rc)
	if err != nil {
		m.n.discardAhead()
	}
	return err
}

// catchUp installs the newest snapshot when the database is behind it (or its header cannot be
// read), trying the next one when it is refused (and removing the refused one: it was never
// installed, so raft never relied on it). raft then takes the newest remaining snapshot as
// applied without reading it.
func (n *Node) catchUp() error {
	metas, err := n.snaps.all()
	if err != nil {
		return err
	}
	for _, m := range metas {
		h, err := n.snapshotHeader(m.ID)
		if err == nil && h.Index <= n.fsm.AppliedIndex() {
			return nil // the database holds it already
		}
		_, rc, err := n.snaps.Open(m.ID)
		if err == nil {
			err = n.fsm.Restore(rc)
		}
		if err == nil {
			n.log.Info("installed the newest snapshot at start: the database was behind it", "id", m.ID)
			return nil
		}
		n.log.Error("a snapshot the database is behind was refused; removing it", "id", m.ID, "error", err)
		if err := os.RemoveAll(filepath.Join(n.snaps.dir, m.ID)); err != nil {
			return fmt.Errorf("replication: remove refused snapshot %s: %w", m.ID, err)
		}
	}
	return nil
}

// discardAhead removes, after a refused install, the snapshots the database is behind: such a
// snapshot was neither taken here (a local snapshot holds at most what the database held) nor
// installed (the database then holds exactly its index), so raft never relied on it, and
// leaving it would make it the newest, offered to followers and taken as applied at the next
// start. One whose header cannot be read counts when raft's own last snapshot is older.
func (n *Node) discardAhead() {
	metas, err := n.snaps.all()
	if err != nil {
		return
	}
	last, _ := strconv.ParseUint(n.raft.Stats()["last_snapshot_index"], 10, 64)
	for _, m := range metas {
		h, err := n.snapshotHeader(m.ID)
		if (err == nil && h.Index > n.fsm.AppliedIndex()) || (err != nil && m.Index > last) {
			n.log.Warn("removing a snapshot that was refused", "id", m.ID)
			_ = os.RemoveAll(filepath.Join(n.snaps.dir, m.ID))
		}
	}
}

// snapshotHeader reads the header of a stored snapshot.
func (n *Node) snapshotHeader(id string) (snapshotHeader, error) {
	_, rc, err := n.snaps.Open(id)
	if err != nil {
		return snapshotHeader{}, err
	}
	defer rc.Close()
	return readSnapshotHeader(rc)
}

// register records this node's HTTP address in the replicated state whenever it leads and
// the address recorded is not its own (a joining node is recorded by the leader it joins).
func (n *Node) register() {
	defer n.wg.Done()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		if n.raft.State() != raft.Leader {
			continue
		}
		if addr, ok := n.fsm.member(n.cfg.ID); ok && addr == n.cfg.HTTPAddr {
			continue
		}
		if err := n.setMember(n.cfg.ID, n.cfg.HTTPAddr); err != nil {
			n.log.Warn("could not record this node's HTTP address", "error", err)
		}
	}
}

func (n *Node) setMember(id, httpAddr string) error {
	return n.submit(classMeta, []Op{{Kind: OpSet, Key: []byte(memberKey + id), Value: []byte(httpAddr)}})
}

// Shutdown stops raft, then closes the transport, the database and raft's stores.
func (n *Node) Shutdown() error {
	n.shutdown.Do(func() {
		close(n.stop)
		n.wg.Wait()
		errs := []error{n.raft.Shutdown().Error()}
		if c, ok := n.cfg.Transport.(interface{ CloseStreams() }); ok {
			// raft's NetworkTransport: its pooled connections, whose handlers on the other
			// nodes would otherwise wait on them for good (Close closes only the listener).
			c.CloseStreams()
		}
		if c, ok := n.cfg.Transport.(raft.WithClose); ok {
			errs = append(errs, c.Close())
		}
		errs = append(errs, n.closeStores())
		n.shutErr = errors.Join(errs...)
	})
	return n.shutErr
}

func (n *Node) closeStores() error {
	var errs []error
	if n.fsm != nil {
		errs = append(errs, n.fsm.Close())
	}
	if n.bolt != nil {
		errs = append(errs, n.bolt.Close())
	}
	return errors.Join(errs...)
}

// Raft is the node's raft instance.
func (n *Node) Raft() *raft.Raft { return n.raft }

// FSM is the node's state machine.
func (n *Node) FSM() *FSM { return n.fsm }

// ID is the node's server ID.
func (n *Node) ID() string { return n.cfg.ID }

// Apply commits ops as one command through raft, on the leader (raft.ErrNotLeader elsewhere),
// and returns once this node's state machine has applied it (then it is committed: on a
// majority's disks). raft.ErrLeadershipLost, ErrApplyTimeout and raft.ErrRaftShutdown mean
// the command may or may not be committed; the command's own refusals are ErrReservedKey and
// ErrCommandTooLarge.
func (n *Node) Apply(ops ...Op) error {
	if len(ops) == 0 {
		return errors.New("replication: a command needs at least one op")
	}
	return n.submit(classUser, ops)
}

// ErrApplyTimeout: a command was not applied within twice the node's ApplyTimeout while the
// node kept its leadership; it may or may not be committed.
var ErrApplyTimeout = errors.New("replication: the command was not applied in time; it may or may not be committed")

// submit proposes a command and waits for this node's state machine to apply it, for the node
// to lose its leadership (or its term to change), for the node to shut down, or for twice
// ApplyTimeout. It does not wait on raft's future: hashicorp/raft can leave one unanswered
// when a node steps down or shuts down with the command queued (raft issue #498), and a
// goroutine waiting on it would wait for good. The state machine answers instead, through
// the request ID in the command (FSM.onApplied).
func (n *Node) submit(class uint8, ops []Op) error {
	select {
	case <-n.stop:
		return raft.ErrRaftShutdown
	default:
	}
	term := n.raft.CurrentTerm()
	if n.raft.State() != raft.Leader {
		return raft.ErrNotLeader
	}
	var id reqID
	copy(id[:8], n.idPrefix[:])
	binary.BigEndian.PutUint64(id[8:], n.seq.Add(1))
	b, err := encode(class, id, ops)
	if err != nil {
		return err
	}
	ch := make(chan error, 1)
	n.wmu.Lock()
	n.waiters[id] = ch
	n.wmu.Unlock()
	defer func() {
		n.wmu.Lock()
		delete(n.waiters, id)
		n.wmu.Unlock()
	}()
	n.raft.Apply(b, n.cfg.ApplyTimeout) // its future is not waited for (see above)
	deadline := time.NewTimer(2 * n.cfg.ApplyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(leadershipPoll)
	defer tick.Stop()
	for {
		select {
		case err := <-ch:
			return err
		case <-n.stop:
			return raft.ErrRaftShutdown
		case <-deadline.C:
			return ErrApplyTimeout
		case <-tick.C:
			if n.raft.State() != raft.Leader || n.raft.CurrentTerm() != term {
				select {
				case err := <-ch: // applied after all
					return err
				default:
				}
				return raft.ErrLeadershipLost
			}
		}
	}
}

// leadershipPoll is how often a waiting command checks that the node still leads.
const leadershipPoll = 20 * time.Millisecond

// applied is the state machine's answer for a command this node proposed.
func (n *Node) applied(id reqID, err error) {
	n.wmu.Lock()
	ch := n.waiters[id]
	n.wmu.Unlock()
	if ch != nil {
		select {
		case ch <- err:
		default:
		}
	}
}

// Put sets key to value.
func (n *Node) Put(key, value []byte) error {
	return n.Apply(Op{Kind: OpSet, Key: key, Value: nonNil(value)})
}

// Delete removes key.
func (n *Node) Delete(key []byte) error { return n.Apply(Op{Kind: OpDelete, Key: key}) }

// AppendValue appends value to key's value.
func (n *Node) AppendValue(key, value []byte) error {
	return n.Apply(Op{Kind: OpAppend, Key: key, Value: nonNil(value)})
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Consistency is how current a read must be.
type Consistency int

const (
	// Strong reads are linearizable: on the leader only, after a raft barrier (an entry
	// committed in the leader's term and applied here), so they see every write acknowledged
	// before they began.
	Strong Consistency = iota
	// Stale reads are served by any node from what it has applied, with no round trip: they
	// scale with the number of nodes, and may miss the latest writes.
	Stale
)

// Barrier waits until this node, as leader, has applied everything committed before the call:
// a command with no ops, committed in the leader's term and applied here.
func (n *Node) Barrier() error { return n.submit(classBarrier, nil) }

// Get reads key.
func (n *Node) Get(key []byte, c Consistency) ([]byte, bool, error) {
	if c == Strong {
		if err := n.Barrier(); err != nil {
			return nil, false, err
		}
	}
	return n.fsm.Get(key)
}

// Scan returns the pairs whose key begins with prefix, in key order, at most limit (0: all).
func (n *Node) Scan(prefix []byte, limit int, c Consistency) ([]KV, error) {
	if c == Strong {
		if err := n.Barrier(); err != nil {
			return nil, err
		}
	}
	return n.fsm.Scan(prefix, limit)
}

// Join adds a server to the cluster as a voter and records its HTTP address; on the leader
// only (raft.ErrNotLeader elsewhere). Joining again with the same ID and address is harmless.
func (n *Node) Join(id, raftAddr, httpAddr string) error {
	if id == "" || raftAddr == "" {
		return errors.New("replication: join needs a server ID and a raft address")
	}
	if err := n.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(raftAddr), 0, n.cfg.ApplyTimeout).Error(); err != nil {
		return err
	}
	if httpAddr != "" {
		return n.setMember(id, httpAddr)
	}
	return nil
}

// Leader returns the leader's ID, raft address and HTTP address as this node knows them (all
// empty when it knows of no leader; the HTTP address empty when none is recorded).
func (n *Node) Leader() (id, raftAddr, httpAddr string) {
	addr, sid := n.raft.LeaderWithID()
	if sid == "" {
		return "", "", ""
	}
	h, _ := n.fsm.member(string(sid))
	return string(sid), string(addr), h
}

// Status is what GET /status shows.
type Status struct {
	ID           string   `json:"id"`
	State        string   `json:"state"`
	Term         uint64   `json:"term"`
	LeaderID     string   `json:"leader_id"`
	LeaderRaft   string   `json:"leader_raft_addr"`
	LeaderHTTP   string   `json:"leader_http_addr"`
	CommitIndex  uint64   `json:"commit_index"`
	AppliedIndex uint64   `json:"applied_index"` // raft's: entries handed to the state machine
	LastSnapshot uint64   `json:"last_snapshot_index"`
	Servers      []Server `json:"servers"`
	FSM          FSMStats `json:"fsm"`
}

// Server is one member of the configuration.
type Server struct {
	ID       string `json:"id"`
	Address  string `json:"raft_addr"`
	HTTP     string `json:"http_addr"`
	Suffrage string `json:"suffrage"`
}

// Status reports the node's view of the cluster.
func (n *Node) Status() Status {
	st := n.raft.Stats()
	u := func(k string) uint64 { v, _ := strconv.ParseUint(st[k], 10, 64); return v }
	s := Status{ID: n.cfg.ID, State: n.raft.State().String(), Term: u("term"), CommitIndex: n.raft.CommitIndex(),
		AppliedIndex: n.raft.AppliedIndex(), LastSnapshot: u("last_snapshot_index"), FSM: n.fsm.Stats()}
	s.LeaderID, s.LeaderRaft, s.LeaderHTTP = n.Leader()
	if f := n.raft.GetConfiguration(); f.Error() == nil {
		for _, srv := range f.Configuration().Servers {
			h, _ := n.fsm.member(string(srv.ID))
			s.Servers = append(s.Servers, Server{ID: string(srv.ID), Address: string(srv.Address), HTTP: h, Suffrage: srv.Suffrage.String()})
		}
	}
	return s
}
