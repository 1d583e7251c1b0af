package replication

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// SnapshotStore is a raft.SnapshotStore on disk that reads a snapshot once. raft's
// FileSnapshotStore keeps a CRC-64 of each snapshot and, to open one, reads the whole file to
// check it before handing it over to be read again by the restore. This state machine's
// snapshots check themselves as they are installed (the header's checksum and length, every
// record's checksums, the applied index), so Open checks only that the file has the size its
// metadata records and returns it as it is.
//
// Each snapshot is a directory <dir>/<id>/ with meta.json (raft.SnapshotMeta) and state.bin.
// While being written it is <id>.tmp; Close syncs both files, renames the directory into place
// and syncs the parent, so a crash leaves a snapshot whole or absent. The newest retain are
// kept.
type SnapshotStore struct {
	dir    string
	retain int
	mu     sync.Mutex // one reap at a time
}

const (
	tmpSuffix    = ".tmp"
	metaFile     = "meta.json"
	stateFile    = "state.bin"
	sinkBufBytes = 1 << 20
)

// NewSnapshotStore opens the store in dir (created if missing), removing what a crash left
// half written. retain (at least 1) is how many snapshots are kept.
func NewSnapshotStore(dir string, retain int) (*SnapshotStore, error) {
	if retain < 1 {
		return nil, fmt.Errorf("replication: a snapshot store must retain at least 1 snapshot, not %d", retain)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replication: snapshot store: %w", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("replication: snapshot store: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() && strings.HasSuffix(e.Name(), tmpSuffix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return nil, fmt.Errorf("replication: snapshot store: remove a partial snapshot: %w", err)
			}
		}
	}
	return &SnapshotStore{dir: dir, retain: retain}, nil
}

// Create starts a new snapshot (raft.SnapshotStore).
func (s *SnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("replication: snapshot version %d is not supported", version)
	}
	id := fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli())
	tmp := filepath.Join(s.dir, id+tmpSuffix)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("replication: create snapshot: %w", err)
	}
	fh, err := os.Create(filepath.Join(tmp, stateFile))
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("replication: create snapshot: %w", err)
	}
	sink := &snapshotSink{store: s, tmp: tmp, final: filepath.Join(s.dir, id), file: fh,
		meta: raft.SnapshotMeta{Version: version, ID: id, Index: index, Term: term,
			Configuration: configuration, ConfigurationIndex: configurationIndex}}
	if trans != nil {
		sink.meta.Peers = encodePeers(configuration, trans)
	}
	sink.w = bufio.NewWriterSize(fh, sinkBufBytes)
	return sink, nil
}

// encodePeers is the legacy peer list raft still records (as FileSnapshotStore does).
func encodePeers(c raft.Configuration, trans raft.Transport) []byte {
	var peers [][]byte
	for _, srv := range c.Servers {
		peers = append(peers, trans.EncodePeer(srv.ID, srv.Address))
	}
	b, _ := json.Marshal(peers)
	return b
}

// List returns the snapshots' metadata, newest first (raft.SnapshotStore). A directory whose
// metadata cannot be read is left out.
func (s *SnapshotStore) List() ([]*raft.SnapshotMeta, error) {
	metas, err := s.all()
	if err != nil {
		return nil, err
	}
	if len(metas) > s.retain {
		metas = metas[:s.retain]
	}
	return metas, nil
}

func (s *SnapshotStore) all() ([]*raft.SnapshotMeta, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("replication: list snapshots: %w", err)
	}
	var metas []*raft.SnapshotMeta
	for _, e := range ents {
		if !e.IsDir() || strings.HasSuffix(e.Name(), tmpSuffix) {
			continue
		}
		m, err := s.readMeta(e.Name())
		if err != nil {
			continue
		}
		metas = append(metas, m)
	}
	slices.SortFunc(metas, func(a, b *raft.SnapshotMeta) int { // newest first
		switch {
		case a.Term != b.Term:
			return cmpDesc(a.Term, b.Term)
		case a.Index != b.Index:
			return cmpDesc(a.Index, b.Index)
		}
		return strings.Compare(b.ID, a.ID)
	})
	return metas, nil
}

func cmpDesc(a, b uint64) int {
	if a > b {
		return -1
	}
	return 1
}

func (s *SnapshotStore) readMeta(id string) (*raft.SnapshotMeta, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, id, metaFile))
	if err != nil {
		return nil, err
	}
	var m raft.SnapshotMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("replication: snapshot %s: %s: %w", id, metaFile, err)
	}
	if m.ID != id {
		return nil, fmt.Errorf("replication: snapshot %s: its metadata names %q", id, m.ID)
	}
	return &m, nil
}

// Open opens a snapshot to read it (raft.SnapshotStore): its metadata, and its file, checked
// only for its size. The caller closes the reader.
func (s *SnapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	if id == "" || strings.ContainsAny(id, `/\`) || id == "." || id == ".." {
		return nil, nil, fmt.Errorf("replication: %q is not a snapshot ID", id)
	}
	m, err := s.readMeta(id)
	if err != nil {
		return nil, nil, fmt.Errorf("replication: open snapshot: %w", err)
	}
	fh, err := os.Open(filepath.Join(s.dir, id, stateFile))
	if err != nil {
		return nil, nil, fmt.Errorf("replication: open snapshot: %w", err)
	}
	st, err := fh.Stat()
	if err == nil && st.Size() != m.Size {
		err = fmt.Errorf("%s is %d bytes, its metadata says %d", stateFile, st.Size(), m.Size)
	}
	if err != nil {
		fh.Close()
		return nil, nil, fmt.Errorf("replication: open snapshot %s: %w", id, err)
	}
	return m, &snapshotReader{Reader: bufio.NewReaderSize(fh, sinkBufBytes), f: fh}, nil
}

type snapshotReader struct {
	*bufio.Reader
	f *os.File
}

func (r *snapshotReader) Close() error { return r.f.Close() }

// reap removes all but the newest retain snapshots.
func (s *SnapshotStore) reap() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	metas, err := s.all()
	if err != nil {
		return err
	}
	var errs []error
	for _, m := range metas[min(len(metas), s.retain):] {
		if err := os.RemoveAll(filepath.Join(s.dir, m.ID)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// snapshotSink is a snapshot being written.
type snapshotSink struct {
	store *SnapshotStore
	tmp   string
	final string
	file  *os.File
	w     *bufio.Writer
	meta  raft.SnapshotMeta
	done  bool
}

func (k *snapshotSink) ID() string { return k.meta.ID }

func (k *snapshotSink) Write(p []byte) (int, error) {
	if k.done {
		return 0, errors.New("replication: write to a closed snapshot")
	}
	n, err := k.w.Write(p)
	k.meta.Size += int64(n)
	return n, err
}

// Close makes the snapshot durable and visible (once; a second Close does nothing).
func (k *snapshotSink) Close() error {
	if k.done {
		return nil
	}
	k.done = true
	err := k.finish()
	if err != nil {
		_ = os.RemoveAll(k.tmp)
		return err
	}
	return k.store.reap()
}

func (k *snapshotSink) finish() error {
	err := k.w.Flush()
	if err == nil {
		err = k.file.Sync()
	}
	if cerr := k.file.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("replication: write snapshot %s: %w", k.meta.ID, err)
	}
	b, err := json.Marshal(&k.meta)
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(k.tmp, metaFile), b); err != nil {
		return fmt.Errorf("replication: write snapshot %s: %w", k.meta.ID, err)
	}
	if err := syncDir(k.tmp); err != nil {
		return err
	}
	if err := os.Rename(k.tmp, k.final); err != nil {
		return fmt.Errorf("replication: write snapshot %s: %w", k.meta.ID, err)
	}
	return syncDir(k.store.dir)
}

// Cancel abandons the snapshot (once; after Close it does nothing).
func (k *snapshotSink) Cancel() error {
	if k.done {
		return nil
	}
	k.done = true
	k.file.Close()
	return os.RemoveAll(k.tmp)
}
