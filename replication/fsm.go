package replication

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

// FSM is the database as a raft state machine (raft.FSM and raft.BatchingFSM).
//
// Apply and ApplyBatch commit each batch of commands as database transactions that also set
// the applied raft index (a reserved key), so the database on disk always says which index
// it holds and a command at or below it is never applied again (after a crash raft replays
// its log from the last snapshot; the database is usually ahead of that).
//
// Snapshot is cheap: it records the applied index and the log's durable length, nothing else,
// and Persist streams the database's own hot backup (db.Backup: the log's verified prefix)
// cut at exactly that length, behind a 32-byte header (snapshotHeader). Restore installs a
// snapshot with db.Restore, which writes the stream to a new file beside the live one and
// verifies every record before anything is switched; a damaged snapshot is refused with its
// code and offset and the node keeps the database it had. Compaction of the log runs after a
// snapshot is released, never between a Snapshot and the end of its Persist.
//
// The database's files live in one directory: state-NNNNNN.wal (the current generation, named
// in CURRENT) and, while a restore runs, the next generation beside it.
type FSM struct {
	dir    string
	opts   FSMOptions
	log    hclog.Logger
	ctx    context.Context // done at Close: stops a Persist's backup
	cancel context.CancelFunc

	swap   sync.RWMutex // write: a restore switching databases; read: anything that uses d
	d      *db.DB       // nil only after Close, or after a failed restore could not reopen the old one
	gen    uint64
	broken error // why d is nil (a restore that could not reopen the old database)

	applied atomic.Uint64 // the last command index applied (the value of appliedKey in d)

	// onApplied, if set (by Node, before raft starts), is told on the apply goroutine the
	// outcome of each command that carries a request ID, once it is durable.
	onApplied func(reqID, error)

	// fence is held from Snapshot to its Release, and by a compaction: the log must keep the
	// length Snapshot measured until Persist has copied it.
	fence       chan struct{}
	compactBase int64 // the log's size after the last compaction (or at open); under fence

	stats fsmCounters
}

// FSMOptions configures OpenFSM.
type FSMOptions struct {
	// Parallelism is the recovery parallelism of the database's open, backups and restores (0:
	// one worker per CPU).
	Parallelism int
	// CompactRatio and CompactMinBytes: after a snapshot, the log is compacted when it is at
	// least CompactMinBytes and CompactRatio times its size after the last compaction (defaults
	// 2 and 64 MiB; a negative CompactMinBytes never compacts).
	CompactRatio    float64
	CompactMinBytes int64
	// Logger receives the state machine's few messages (default: none).
	Logger hclog.Logger
}

// FSMStats counts what the state machine did since it was opened.
type FSMStats struct {
	Applied      uint64 // the last command index applied
	Generation   uint64 // the database file's generation: +1 per installed snapshot
	Batches      int64  // ApplyBatch calls that committed something
	Commands     int64  // commands applied (refused ones included: they advance the index)
	Skipped      int64  // commands at or below the applied index, not applied again
	Transactions int64  // database transactions committed by Apply/ApplyBatch
	Snapshots    int64  // snapshots persisted
	Restores     int64  // snapshots installed
	Refused      int64  // snapshots refused (damaged, cut short, inconsistent)
	Compactions  int64
}

type fsmCounters struct {
	batches, commands, skipped, txs, snapshots, restores, refused, compactions atomic.Int64
}

// ErrSnapshotBusy is Snapshot's error while a compaction or another snapshot holds the log:
// raft tries again at its next snapshot interval.
var ErrSnapshotBusy = errors.New("replication: a compaction or another snapshot is running")

const currentFile = "CURRENT"

// OpenFSM opens (creating if needed) the state machine's database in dir. Files a restore
// left behind when the process died in the middle of one are removed.
func OpenFSM(dir string, opts FSMOptions) (*FSM, error) {
	if opts.CompactRatio <= 1 {
		opts.CompactRatio = 2
	}
	if opts.CompactMinBytes == 0 {
		opts.CompactMinBytes = 64 << 20
	}
	lg := opts.Logger
	if lg == nil {
		lg = hclog.NewNullLogger()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replication: %w", err)
	}
	gen, err := readCurrent(dir)
	if err != nil {
		return nil, err
	}
	if err := removeStale(dir, gen); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &FSM{dir: dir, opts: opts, log: lg, ctx: ctx, cancel: cancel, gen: gen, fence: make(chan struct{}, 1)}
	if f.d, err = f.openGen(gen); err != nil {
		cancel()
		return nil, err
	}
	idx, err := appliedIn(f.d)
	if err != nil {
		f.d.Close()
		cancel()
		return nil, err
	}
	f.applied.Store(idx)
	f.compactBase, _ = fileSize(f.genPath(gen))
	return f, nil
}

func (f *FSM) genPath(gen uint64) string {
	return filepath.Join(f.dir, fmt.Sprintf("state-%06d.wal", gen))
}

func (f *FSM) openGen(gen uint64) (*db.DB, error) {
	d, err := db.Open(f.genPath(gen), db.WithRecovery(recoveryParallelism(f.opts.Parallelism)),
		db.OnTruncate(func(r db.TruncationReport) {
			f.log.Warn("the database's log had a torn tail, cut on open", "path", r.Path, "offset", r.Offset, "bytes", r.Bytes, "sidecar", r.Sidecar)
		}))
	if err != nil {
		return nil, fmt.Errorf("replication: open the state machine's database: %w", err)
	}
	return d, nil
}

// readCurrent reads the generation CURRENT names; a directory without CURRENT is generation 1
// (a new state machine, or one that never installed a snapshot).
func readCurrent(dir string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(dir, currentFile))
	if errors.Is(err, fs.ErrNotExist) {
		return 1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("replication: %w", err)
	}
	gen, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || gen == 0 {
		return 0, fmt.Errorf("replication: %s: %q is not a generation", filepath.Join(dir, currentFile), b)
	}
	return gen, nil
}

// writeCurrent makes gen the current generation: a new CURRENT, synced, renamed over the old
// one, the directory synced.
func writeCurrent(dir string, gen uint64) error {
	tmp := filepath.Join(dir, currentFile+".tmp")
	if err := writeFileSync(tmp, []byte(strconv.FormatUint(gen, 10)+"\n")); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, currentFile)); err != nil {
		return err
	}
	return syncDir(dir)
}

// removeStale removes the database files of generations other than gen, and what a restore
// was writing (a crash between a restore's rename and CURRENT's, or during the restore).
func removeStale(dir string, gen uint64) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("replication: %w", err)
	}
	keep := fmt.Sprintf("state-%06d.wal", gen)
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, "state-") || name == keep || strings.HasPrefix(name, keep+".cut-") {
			continue // the current log, and the sidecars of bytes its opens cut (kept, as db keeps them)
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("replication: remove a stale %s: %w", name, err)
		}
	}
	return nil
}

// appliedIn reads the applied index from d.
func appliedIn(d *db.DB) (uint64, error) {
	var idx uint64
	err := d.View(func(tx *db.Tx) error {
		v, ok := tx.Get(appliedKey)
		if !ok {
			return nil
		}
		if len(v) != 8 {
			return fmt.Errorf("replication: the applied index key holds %d bytes, not 8", len(v))
		}
		idx = binary.BigEndian.Uint64(v)
		return nil
	})
	return idx, err
}

// Close closes the database. Raft must be shut down first (nothing may apply afterwards).
func (f *FSM) Close() error {
	f.cancel()
	f.swap.Lock()
	defer f.swap.Unlock()
	if f.d == nil {
		return nil
	}
	err := f.d.Close()
	f.d = nil
	f.broken = errors.New("replication: the state machine is closed")
	return err
}

// AppliedIndex is the last command index the database holds.
func (f *FSM) AppliedIndex() uint64 { return f.applied.Load() }

// Stats returns the state machine's counters.
func (f *FSM) Stats() FSMStats {
	f.swap.RLock()
	gen := f.gen
	f.swap.RUnlock()
	s := &f.stats
	return FSMStats{Applied: f.applied.Load(), Generation: gen, Batches: s.batches.Load(), Commands: s.commands.Load(),
		Skipped: s.skipped.Load(), Transactions: s.txs.Load(), Snapshots: s.snapshots.Load(), Restores: s.restores.Load(),
		Refused: s.refused.Load(), Compactions: s.compactions.Load()}
}

// View runs fn in a read-only transaction of the database as the node has applied it (a
// local, possibly stale read: Node.Get is the linearizable one). The reserved keys are there
// too; Get and Scan hide them.
func (f *FSM) View(fn func(tx *db.Tx) error) error {
	f.swap.RLock()
	defer f.swap.RUnlock()
	if f.d == nil {
		return f.broken
	}
	return f.d.View(fn)
}

// Get reads key from the node's own state (stale read).
func (f *FSM) Get(key []byte) (value []byte, ok bool, err error) {
	if bytes.HasPrefix(key, []byte(ReservedPrefix)) {
		return nil, false, fmt.Errorf("%w: %q", ErrReservedKey, key)
	}
	err = f.View(func(tx *db.Tx) error {
		value, ok = tx.Get(key)
		return nil
	})
	return value, ok, err
}

// KV is a pair from Scan.
type KV struct {
	Key, Value []byte
}

// Scan returns the pairs whose key begins with prefix, in key order, at most limit of them
// (0: no limit), from the node's own state (stale read). Reserved keys are left out.
func (f *FSM) Scan(prefix []byte, limit int) ([]KV, error) {
	var out []KV
	err := f.View(func(tx *db.Tx) error {
		for k, v := range tx.Range(prefix, prefixEnd(prefix)) {
			if bytes.HasPrefix(k, []byte(ReservedPrefix)) {
				continue
			}
			out = append(out, KV{k, v})
			if limit > 0 && len(out) == limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// prefixEnd is the smallest key after every key that begins with p (nil: none).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// member returns the HTTP address recorded for a server ID.
func (f *FSM) member(id string) (string, bool) {
	var addr []byte
	var ok bool
	_ = f.View(func(tx *db.Tx) error {
		addr, ok = tx.Get([]byte(memberKey + id))
		return nil
	})
	return string(addr), ok
}

// Apply applies one log entry (raft.FSM).
func (f *FSM) Apply(l *raft.Log) interface{} { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed log entries (raft.BatchingFSM): the commands among them that
// are above the applied index, in as few database transactions as MaxCommandBytes allows
// (usually one: one record, one fsync for the whole batch), each of which also sets the
// applied index to its last command's. The response for each entry is nil or the error that
// refused its command (malformed, too large, a reserved key): a refused command changes
// nothing, on every node alike. A barrier command commits what precedes it and changes
// nothing. Once a transaction is durable, the node that proposed each of its commands is told
// (Node waits on that, not on raft's future). A database failure (an append or fsync that
// failed) panics: the node cannot go on applying, and raft replays the log from its last
// snapshot on restart.
func (f *FSM) ApplyBatch(logs []*raft.Log) []interface{} {
	resp := make([]interface{}, len(logs))
	f.swap.RLock()
	defer f.swap.RUnlock()
	if f.d == nil {
		panic(fmt.Errorf("replication: apply at index %d: %w", logs[0].Index, f.broken))
	}
	applied := f.applied.Load()
	var group []pendingCmd // commands for the next transaction(s), in order
	flush := func() {
		for len(group) > 0 {
			n := f.commit(group, resp)
			f.notifyAll(group[:n], resp)
			group = group[n:]
		}
	}
	batched := false
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if l.Index <= applied {
			f.stats.skipped.Add(1)
			continue
		}
		c, err := decodeCommand(l.Data)
		if err == nil && c.class == classBarrier {
			flush() // everything before the barrier is applied and durable
			f.notify(c.id, nil)
			continue
		}
		if !batched {
			f.stats.batches.Add(1)
			batched = true
		}
		group = append(group, pendingCmd{i: i, index: l.Index, c: c, err: err})
	}
	flush()
	return resp
}

// pendingCmd is a command of a batch on its way to a transaction.
type pendingCmd struct {
	i     int // its position in the batch
	index uint64
	c     command
	err   error // why it is refused, if it is
}

// commit applies the first commands of group in one transaction (as many as MaxCommandBytes
// allows, at least one), with the applied index, and returns how many it took.
func (f *FSM) commit(group []pendingCmd, resp []interface{}) int {
	var n int
	var last uint64
	err := f.d.Update(func(tx *db.Tx) error {
		n, last = 0, 0
		var used int64
		for _, p := range group {
			err := p.err
			var size int64
			if err == nil {
				size = commandSize(tx, p.c)
				if size > MaxCommandBytes {
					err = fmt.Errorf("%w (%d bytes of ops)", ErrCommandTooLarge, size)
				}
			}
			if err == nil && n > 0 && used+size > MaxCommandBytes {
				break // the next transaction takes it
			}
			n++
			last = p.index
			if err != nil {
				resp[p.i] = fmt.Errorf("replication: command at index %d refused: %w", p.index, err)
				continue
			}
			used += size
			if err := applyOps(tx, p.c.ops); err != nil {
				return err
			}
		}
		var idx [8]byte
		binary.BigEndian.PutUint64(idx[:], last)
		return tx.Set(appliedKey, idx[:])
	})
	if err != nil {
		panic(fmt.Errorf("replication: the database failed to commit the entries up to index %d: %w", last, err))
	}
	f.applied.Store(last)
	f.stats.txs.Add(1)
	f.stats.commands.Add(int64(n))
	return n
}

// notifyAll tells the proposers of the committed commands their outcome.
func (f *FSM) notifyAll(done []pendingCmd, resp []interface{}) {
	for _, p := range done {
		err, _ := resp[p.i].(error)
		f.notify(p.c.id, err)
	}
}

func (f *FSM) notify(id reqID, err error) {
	if id != (reqID{}) && f.onApplied != nil {
		f.onApplied(id, err)
	}
}

// commandSize is what c's ops add to a transaction's record, on tx's state.
func commandSize(tx *db.Tx, c command) int64 {
	var n int64
	var grown map[string]int // appends to one key within the command
	for _, op := range c.ops {
		vlen := len(op.Value)
		if op.Kind == OpAppend {
			if grown == nil {
				grown = map[string]int{}
			}
			cur, seen := grown[string(op.Key)]
			if !seen {
				old, _ := tx.Get(op.Key)
				cur = len(old)
			}
			vlen += cur
			grown[string(op.Key)] = vlen
		} else if grown != nil {
			if op.Kind == OpSet {
				grown[string(op.Key)] = len(op.Value)
			} else {
				grown[string(op.Key)] = 0
			}
		}
		n += opBytes(op.Kind, len(op.Key), vlen)
	}
	return n
}

func applyOps(tx *db.Tx, ops []Op) error {
	for _, op := range ops {
		var err error
		switch op.Kind {
		case OpSet:
			err = tx.Set(op.Key, op.Value)
		case OpDelete:
			err = tx.Delete(op.Key)
		case OpAppend:
			old, _ := tx.Get(op.Key)
			err = tx.Set(op.Key, append(old, op.Value...))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// fileSize is the size of the file at path.
func fileSize(path string) (int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func writeFileSync(path string, b []byte) error {
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Sync(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// walOffset converts an error's offset in the snapshot's log into one in the snapshot stream.
func walOffset(err error) int64 {
	off := walerr.OffsetOf(err)
	if off < 0 {
		return -1
	}
	return off + snapshotHeaderSize
}

// freeMemory returns the old store's memory before the new one is loaded, so that a restore's
// peak is one store, not two.
func freeMemory() { debug.FreeOSMemory() }
