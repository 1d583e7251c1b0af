package replication

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"time"

	"github.com/hashicorp/raft"
	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/walerr"
)

// A snapshot is a 32-byte header and then the database's log, exactly as db.Backup writes it:
//
//	magic "WALSNAP\x01" | applied index u64 | log length u64 | crc32 u32 | zero u32
//
// (big-endian; the CRC-32 (IEEE) covers the 24 bytes before it). The log is the verified
// prefix of the database's file that holds exactly the commands up to the applied index: every
// record in it carries its own checksums, so the snapshot needs no checksum of its own and is
// read once, as it is installed. The header's length is what tells a log cut short at a record
// boundary (a shorter log that verifies) from the whole one, and its index is checked against
// the index the restored database itself holds.
const snapshotHeaderSize = 32

var snapshotMagic = [8]byte{'W', 'A', 'L', 'S', 'N', 'A', 'P', 1}

type snapshotHeader struct {
	Index  uint64 // the last command index the log holds
	Length int64  // the log's length in bytes
}

func (h snapshotHeader) encode() []byte {
	b := make([]byte, snapshotHeaderSize)
	copy(b, snapshotMagic[:])
	binary.BigEndian.PutUint64(b[8:], h.Index)
	binary.BigEndian.PutUint64(b[16:], uint64(h.Length))
	binary.BigEndian.PutUint32(b[24:], crc32.ChecksumIEEE(b[:24]))
	return b
}

// readSnapshotHeader reads and checks a snapshot's header.
func readSnapshotHeader(r io.Reader) (snapshotHeader, error) {
	var b [snapshotHeaderSize]byte
	if n, err := io.ReadFull(r, b[:]); err != nil {
		return snapshotHeader{}, walerr.Wrap(walerr.IncompleteRead, int64(n), err, "the snapshot ends inside its 32-byte header")
	}
	switch {
	case [8]byte(b[:8]) != snapshotMagic:
		return snapshotHeader{}, walerr.New(walerr.NotADatabase, 0, fmt.Sprintf("not a snapshot of this state machine (magic %q)", b[:8]))
	case crc32.ChecksumIEEE(b[:24]) != binary.BigEndian.Uint32(b[24:]):
		return snapshotHeader{}, walerr.New(walerr.CorruptWAL, 24, "the snapshot header's checksum does not match")
	case binary.BigEndian.Uint32(b[28:]) != 0:
		return snapshotHeader{}, walerr.New(walerr.CorruptWAL, 28, "the snapshot header's last 4 bytes are not zero")
	}
	h := snapshotHeader{Index: binary.BigEndian.Uint64(b[8:]), Length: int64(binary.BigEndian.Uint64(b[16:]))}
	if h.Length < 0 {
		return snapshotHeader{}, walerr.New(walerr.CorruptWAL, 16, fmt.Sprintf("the snapshot header gives a log length of %d", h.Length))
	}
	return h, nil
}

func recoveryParallelism(n int) recovery.Option { return recovery.WithParallelism(n) }

// fsmSnapshot is what Snapshot returns: the database, its generation, the applied index and
// the log's length when Snapshot ran.
type fsmSnapshot struct {
	f         *FSM
	d         *db.DB
	gen       uint64
	hdr       snapshotHeader
	persisted bool
	released  bool
}

// Snapshot captures the applied index and the log's durable length (raft.FSM). Raft calls it
// on the goroutine that applies, so no command is being applied: every applied command is
// durable (Update returns once its record is synced) and nothing else writes to the log, so
// the file's size is the end of the record that holds the last applied command. It returns
// ErrSnapshotBusy, without waiting, while a compaction holds the log.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	select {
	case f.fence <- struct{}{}:
	default:
		return nil, ErrSnapshotBusy
	}
	f.swap.RLock()
	d, gen := f.d, f.gen
	f.swap.RUnlock()
	if d == nil {
		<-f.fence
		return nil, f.broken
	}
	size, err := fileSize(f.genPath(gen))
	if err != nil {
		<-f.fence
		return nil, fmt.Errorf("replication: snapshot: %w", err)
	}
	return &fsmSnapshot{f: f, d: d, gen: gen, hdr: snapshotHeader{Index: f.applied.Load(), Length: size}}, nil
}

// errCut stops a backup once the snapshot's length has been copied.
var errCut = errors.New("replication: the snapshot's length is copied")

// cutWriter passes on the first left bytes written to it, then fails with errCut.
type cutWriter struct {
	w    io.Writer
	left int64
}

func (c *cutWriter) Write(p []byte) (int, error) {
	if c.left == 0 {
		return 0, errCut
	}
	q := p
	if int64(len(q)) > c.left {
		q = q[:c.left]
	}
	n, err := c.w.Write(q)
	c.left -= int64(n)
	if err != nil {
		return n, err
	}
	if n < len(p) {
		return n, errCut
	}
	return n, nil
}

// Persist writes the snapshot to sink (raft.FSMSnapshot): the header, then db.Backup's stream
// (every record's checksums verified as it is copied, in the backup's bounded memory) cut at
// the length Snapshot measured. Commands applied meanwhile are in the file after that length
// and are not copied. It closes the sink, or cancels it on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.persist(sink); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) persist(w io.Writer) error {
	f := s.f
	f.swap.RLock() // a restore waits for the copy rather than close the database under it
	defer f.swap.RUnlock()
	if f.gen != s.gen || f.d != s.d {
		return fmt.Errorf("replication: snapshot at index %d: a snapshot was installed since; this one is obsolete", s.hdr.Index)
	}
	if _, err := w.Write(s.hdr.encode()); err != nil {
		return fmt.Errorf("replication: write the snapshot: %w", err)
	}
	cw := &cutWriter{w: w, left: s.hdr.Length}
	_, err := s.d.Backup(f.ctx, cw, db.BackupParallelism(f.opts.Parallelism))
	if err != nil && !errors.Is(err, errCut) {
		return fmt.Errorf("replication: snapshot at index %d: %w", s.hdr.Index, err)
	}
	if cw.left != 0 {
		return fmt.Errorf("replication: snapshot at index %d: the log holds %d bytes fewer than the %d it held at the snapshot", s.hdr.Index, cw.left, s.hdr.Length)
	}
	s.persisted = true
	f.stats.snapshots.Add(1)
	return nil
}

// Release ends the snapshot (raft.FSMSnapshot): after a persisted one, the log is compacted if
// it has grown enough (on raft's snapshot goroutine, which takes no other snapshot meanwhile),
// then the fence is lifted.
func (s *fsmSnapshot) Release() {
	if s.released {
		return
	}
	s.released = true
	if s.persisted {
		s.f.maybeCompact()
	}
	<-s.f.fence
}

// maybeCompact compacts the log when it has outgrown its size after the last compaction.
// Called with the fence held.
func (f *FSM) maybeCompact() {
	if f.opts.CompactMinBytes < 0 {
		return
	}
	f.swap.RLock()
	defer f.swap.RUnlock()
	if f.d == nil {
		return
	}
	size, err := fileSize(f.genPath(f.gen))
	if err != nil || size < f.opts.CompactMinBytes || float64(size) < f.opts.CompactRatio*float64(f.compactBase) {
		return
	}
	f.compactLocked()
}

// Compact compacts the database's log now (db.Compact), unless a snapshot is between its
// Snapshot and its Release: then it returns ErrSnapshotBusy.
func (f *FSM) Compact() (db.CompactResult, error) {
	select {
	case f.fence <- struct{}{}:
	default:
		return db.CompactResult{}, ErrSnapshotBusy
	}
	defer func() { <-f.fence }()
	f.swap.RLock()
	defer f.swap.RUnlock()
	if f.d == nil {
		return db.CompactResult{}, f.broken
	}
	return f.compactLocked()
}

// compactLocked compacts, with the fence and swap (read) held.
func (f *FSM) compactLocked() (db.CompactResult, error) {
	res, err := f.d.CompactContext(f.ctx)
	if err != nil {
		f.log.Error("compaction failed", "error", err)
		return res, err
	}
	f.compactBase = res.After
	f.stats.compactions.Add(1)
	f.log.Info("compacted the log", "before", res.Before, "after", res.After, "duration", res.Duration)
	return res, nil
}

// RestoreError is a snapshot Restore refused: nothing was installed and the node keeps the
// state it had. Offset is in the snapshot stream (the header included; -1 when none applies);
// Code is the recovery or database code of the cause (CORRUPT_WAL, TAIL_DAMAGE,
// INCOMPLETE_READ, ...), and errors.Is matches its sentinel (recovery.ErrCorruptWAL, ...).
type RestoreError struct {
	Index  uint64 // the snapshot's applied index, 0 when its header was not read
	Code   walerr.Code
	Offset int64
	Err    error
}

func (e *RestoreError) Error() string {
	return fmt.Sprintf("replication: snapshot (index %d) refused at byte %d of the stream, the node keeps its state: %s: %v", e.Index, e.Offset, e.Code, e.Err)
}

func (e *RestoreError) Unwrap() error { return e.Err }

// Restore installs a snapshot (raft.FSM): db.Restore writes the stream's log to the next
// generation's file beside the live database, verifying every record (in bounded memory: a
// 1 MiB copy buffer and recovery's pool) before anything changes; then the old database is
// closed, its memory returned, the new one opened and its applied index checked against the
// header's, and CURRENT switched to it. Anything wrong before the switch leaves the old
// database in place, reopened, and returns a *RestoreError. Reads wait only for the switch.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	start := time.Now()
	err := f.install(rc)
	if err != nil {
		f.stats.refused.Add(1)
		f.log.Error("snapshot refused", "error", err)
		return err
	}
	f.stats.restores.Add(1)
	f.log.Info("snapshot installed", "index", f.applied.Load(), "duration", time.Since(start))
	return nil
}

func (f *FSM) install(r io.Reader) error {
	h, err := readSnapshotHeader(r)
	if err != nil {
		return &RestoreError{Code: walerr.CodeOf(err), Offset: walerr.OffsetOf(err), Err: err}
	}
	refuse := func(err error, off int64) error {
		return &RestoreError{Index: h.Index, Code: walerr.CodeOf(err), Offset: off, Err: err}
	}
	f.swap.RLock()
	gen := f.gen
	f.swap.RUnlock()
	next := f.genPath(gen + 1)
	if err := removeIfExists(next); err != nil {
		return refuse(err, -1)
	}
	info, err := db.Restore(f.ctx, io.LimitReader(r, h.Length), next, db.RestoreParallelism(f.opts.Parallelism))
	if err == nil && info.Received != h.Length {
		err = walerr.New(walerr.IncompleteRead, info.Received, fmt.Sprintf(
			"the snapshot's log ends after %d bytes; its header says %d", info.Received, h.Length))
	}
	if err == nil {
		var one [1]byte
		if n, _ := io.ReadFull(r, one[:]); n > 0 {
			err = walerr.New(walerr.CorruptWAL, h.Length, "bytes after the snapshot's log")
		}
	}
	if err != nil {
		_ = removeIfExists(next)
		return refuse(err, walOffset(err))
	}
	return f.switchTo(gen+1, h)
}

// switchTo makes generation gen, restored and verified, the live database, or leaves the old
// one live (reopened) when it cannot.
func (f *FSM) switchTo(gen uint64, h snapshotHeader) error {
	f.swap.Lock()
	defer f.swap.Unlock()
	old := f.d
	if old == nil {
		return f.broken
	}
	f.d = nil
	if err := old.Close(); err != nil { // closed all the same: reopened below
		return f.reopen(fmt.Errorf("replication: close the database to install a snapshot: %w", err), gen)
	}
	freeMemory()
	d, err := f.openGen(gen)
	if err == nil {
		var idx uint64
		if idx, err = appliedIn(d); err == nil && idx != h.Index {
			err = walerr.New(walerr.CorruptWAL, -1, fmt.Sprintf("the snapshot's database holds index %d, its header says %d", idx, h.Index))
		}
		if err == nil {
			err = writeCurrent(f.dir, gen)
		}
		if err != nil {
			d.Close()
		}
	}
	if err != nil {
		return f.reopen(&RestoreError{Index: h.Index, Code: walerr.CodeOf(err), Offset: -1, Err: err}, gen)
	}
	oldPath := f.genPath(f.gen)
	f.d, f.gen = d, gen
	f.applied.Store(h.Index)
	size, _ := fileSize(f.genPath(gen))
	select { // the compaction base, when no snapshot holds the fence (else it keeps the old one)
	case f.fence <- struct{}{}:
		f.compactBase = size
		<-f.fence
	default:
	}
	if err := os.Remove(oldPath); err != nil {
		f.log.Warn("could not remove the replaced database", "path", oldPath, "error", err)
	}
	return nil
}

// reopen puts the old generation back after a failed switch (with swap held) and removes the
// new one; if even that fails, the state machine is broken: the next Apply panics.
func (f *FSM) reopen(cause error, failedGen uint64) error {
	_ = removeIfExists(f.genPath(failedGen))
	if f.d != nil {
		return cause
	}
	d, err := f.openGen(f.gen)
	if err != nil {
		f.broken = fmt.Errorf("replication: a snapshot install failed (%v) and the old database could not be reopened: %w", cause, err)
		return f.broken
	}
	f.d = d
	return cause
}

func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
