// Package simfs is a seeded, in-memory simulated filesystem implementing db.FS, for
// deterministic simulation tests of the real database engine.
//
// Each file keeps the bytes confirmed by fsync (durable: they survive a crash) and the bytes
// appended since (pending). A crash keeps, by mode, a seeded-length prefix of the pending bytes
// (a torn tail), or their length with zeros or seeded garbage in place of their contents (a
// filesystem that persisted the size before the data). Faults: a flipped byte in the durable
// region, short reads (fewer bytes with io.EOF: the file seems to end early), reads delivered
// in small chunks (fewer bytes with a nil error, which io.ReaderAt forbids but real adapters
// do), a read that fails with an I/O error, and an append, fsync or crash at a seeded point.
// Counters prove each fault fired.
//
// Every method is safe for concurrent use (recovery reads from several goroutines). Given the
// same seed and the same sequence of calls, everything it does is the same; chunk sizes depend
// only on the seed and the read's offset and length, never on the order of concurrent reads.
//
// Simplifications: creating a file makes its name durable at once (SyncDir is only counted),
// and a truncate is durable at once for the bytes it removes.
package simfs

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/streamwal/recovery/db"
)

// ErrInjected is the cause of every injected read, append and fsync failure. Injected errors
// also match syscall.EIO.
var ErrInjected = errors.New("simfs: injected I/O error")

// ErrCrashed is returned by every operation between a crash at a sync point (CrashOnSync) and
// Crash, and by every handle opened before a crash.
var ErrCrashed = errors.New("simfs: the simulated machine crashed")

// CrashMode is what a crash leaves of each file's pending (appended, not yet synced) bytes.
type CrashMode uint8

const (
	// TornTail keeps a seeded-length prefix of the pending bytes, anything from none to all
	// (edges weighted: see tear).
	TornTail CrashMode = iota
	// ZeroTail keeps the pending length, but the bytes read back as zeros.
	ZeroTail
	// GarbageTail keeps the pending length, but the bytes are seeded garbage.
	GarbageTail
)

func (m CrashMode) String() string {
	switch m {
	case TornTail:
		return "torn"
	case ZeroTail:
		return "zeros"
	case GarbageTail:
		return "garbage"
	}
	return fmt.Sprintf("CrashMode(%d)", uint8(m))
}

// Counters count what the filesystem did, injected faults included.
type Counters struct {
	Reads        int64 // ReadAt calls
	ReadFaults   int64 // reads failed with an injected I/O error
	ShortReads   int64 // reads cut short with io.EOF
	ChunkedReads int64 // reads that delivered fewer bytes than asked, with a nil error
	Appends      int64
	AppendFaults int64 // appends that wrote a prefix and failed
	Syncs        int64
	SyncFaults   int64 // fsyncs that failed, leaving the bytes pending
	SyncDirs     int64
	Truncates    int64
	Crashes      int64
	Corruptions  int64
}

// CrashReport says what a crash did to one file that had pending bytes.
type CrashReport struct {
	Path    string
	Durable int64 // bytes synced before the crash: all kept
	Pending int64 // bytes appended since
	Kept    int64 // of the pending bytes, how many the file still has (torn: a prefix; else all)
	Mode    CrashMode
}

type node struct {
	data   []byte // durable prefix, then pending bytes
	synced int    // data[:synced] is durable
	ver    uint64 // see Versions
	lock   *handle
}

type nth struct {
	path string
	left int // calls to let through first
}

type faults struct {
	readFail  map[string]int64 // path -> offset: reads covering it fail
	shortRead map[string]int64 // path -> offset: reads covering it stop there with io.EOF
	chunk     int              // > 0: reads deliver 1..chunk bytes
	append    []nth
	sync      []nth
	crashSync []nth
}

func (f faults) clone() faults {
	return faults{
		readFail:  cloneMap(f.readFail),
		shortRead: cloneMap(f.shortRead),
		chunk:     f.chunk,
		append:    slices.Clone(f.append),
		sync:      slices.Clone(f.sync),
		crashSync: slices.Clone(f.crashSync),
	}
}

func cloneMap(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// FS is the simulated filesystem. The zero value is not usable; call New.
type FS struct {
	mu    sync.Mutex
	seed  uint64
	pcg   *rand.PCG
	rng   *rand.Rand
	files map[string]*node
	gen   int  // handles of an older generation died in a crash
	down  bool // crashed at a sync point; Crash brings it back
	f     faults
	c     Counters
}

// New returns an empty filesystem whose every random choice derives from seed.
func New(seed uint64) *FS {
	pcg := rand.NewPCG(seed, 0x5eed_f11e_5)
	return &FS{seed: seed, pcg: pcg, rng: rand.New(pcg), files: map[string]*node{}, f: faults{}.clone()}
}

// Clone returns an independent copy: same files (durable and pending bytes), same armed
// faults, same random state (so the copy makes the same choices), no open handles, zero
// counters.
func (s *FS) Clone() *FS {
	s.mu.Lock()
	defer s.mu.Unlock()
	pcg := *s.pcg
	c := &FS{seed: s.seed, pcg: &pcg, rng: rand.New(&pcg), files: make(map[string]*node, len(s.files)), f: s.f.clone(), down: s.down}
	for p, n := range s.files {
		c.files[p] = &node{data: slices.Clone(n.data), synced: n.synced, ver: n.ver}
	}
	return c
}

// ---- inspection and set-up (for tests) ----

// Bytes returns a copy of the file's current contents (durable and pending), nil if absent.
func (s *FS) Bytes(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.files[path]; n != nil {
		return slices.Clone(n.data)
	}
	return nil
}

// Exists reports whether path exists.
func (s *FS) Exists(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path] != nil
}

// Paths lists every file, sorted.
func (s *FS) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for p := range s.files {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Versions returns, by path, a number that changes whenever the file's contents change (an
// append, a truncate, a corruption, a crash that changed its tail, WriteFile). Numbers are
// unique across every filesystem in the process, and a clone starts with its original's: equal
// versions mean byte-for-byte equal contents, without reading them (different versions may
// still hold equal bytes).
func (s *FS) Versions() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.files))
	for p, n := range s.files {
		out[p] = n.ver
	}
	return out
}

var versions atomic.Uint64

// bump marks n's contents as changed. Called with s.mu held.
func (s *FS) bump(n *node) { n.ver = versions.Add(1) }

// Durable returns how many of the file's bytes are durable and how many are pending.
func (s *FS) Durable(path string) (durable, pending int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.files[path]; n != nil {
		return int64(n.synced), int64(len(n.data) - n.synced)
	}
	return 0, 0
}

// WriteFile creates or replaces path with data, all of it durable.
func (s *FS) WriteFile(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &node{data: slices.Clone(data), synced: len(data)}
	s.bump(n)
	s.files[path] = n
}

// Counters returns the counters so far.
func (s *FS) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

// Rand returns a seeded number in [0, n), from the filesystem's own stream.
func (s *FS) Rand(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

// ---- damage ----

// Corrupt XORs the byte at off with mask (non-zero) in the durable region of path.
func (s *FS) Corrupt(path string, off int64, mask byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.files[path]
	if n == nil || off < 0 || off >= int64(n.synced) || mask == 0 {
		panic(fmt.Sprintf("simfs: Corrupt(%q, %d, %#x): not a byte of the durable region", path, off, mask))
	}
	n.data[off] ^= mask
	s.bump(n)
	s.c.Corruptions++
}

// Crash is a power loss now: every handle dies (and its lock), and each file keeps its
// durable bytes plus, by mode, what is left of its pending bytes, which then count as durable.
// It also brings back a filesystem that went down at a sync point. It reports the files that
// had pending bytes, in path order.
func (s *FS) Crash(mode CrashMode) []CrashReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Crashes++
	s.gen++
	s.down = false
	var reps []CrashReport
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	slices.Sort(paths) // random draws in a fixed order
	for _, p := range paths {
		n := s.files[p]
		n.lock = nil
		pending := len(n.data) - n.synced
		if pending == 0 {
			continue
		}
		kept := pending
		s.bump(n)
		switch mode {
		case TornTail:
			kept = s.tear(pending)
			n.data = n.data[:n.synced+kept]
		case ZeroTail:
			clear(n.data[n.synced:])
		case GarbageTail:
			for i := n.synced; i < len(n.data); i++ {
				n.data[i] = byte(s.rng.Uint32())
			}
		}
		n.synced = len(n.data)
		reps = append(reps, CrashReport{Path: p, Durable: int64(len(n.data) - kept), Pending: int64(pending), Kept: int64(kept), Mode: mode})
	}
	return reps
}

// tear draws how many of pending bytes a torn write keeps: uniform over [0, pending] most of
// the time, but weighted toward the edges a uniform draw rarely hits: nothing, everything, and
// a short prefix (a tear inside a record or file header).
func (s *FS) tear(pending int) int {
	switch x := s.rng.IntN(8); {
	case x == 0:
		return 0
	case x == 1:
		return pending
	case x <= 3:
		return 1 + s.rng.IntN(min(pending, 24))
	}
	return s.rng.IntN(pending + 1)
}

// ---- faults ----

// FailReads makes every read of path that covers byte off deliver the bytes before it and
// fail with an injected I/O error, until ClearFaults.
func (s *FS) FailReads(path string, off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.readFail[path] = off
}

// ShortReads makes every read of path that covers byte off deliver the bytes before it with
// io.EOF, as if the file ended there, until ClearFaults.
func (s *FS) ShortReads(path string, off int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.shortRead[path] = off
}

// ChunkReads makes every read (of every file) deliver between 1 and max bytes with a nil
// error, until ClearFaults. max <= 0 turns it off.
func (s *FS) ChunkReads(max int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.chunk = max
}

// FailAppend makes the k-th Append to path from now (k >= 1) write a seeded prefix of its
// bytes, shorter than all of them, and fail with an injected I/O error. Once.
func (s *FS) FailAppend(path string, k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.append = append(s.f.append, nth{path, k - 1})
}

// FailSync makes the k-th Sync of path from now (k >= 1) fail with an injected I/O error; the
// bytes it should have made durable stay pending. Once.
func (s *FS) FailSync(path string, k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.sync = append(s.f.sync, nth{path, k - 1})
}

// CrashOnSync makes the machine go down at the k-th Sync of path from now (k >= 1): that Sync,
// and every operation after it, fails with ErrCrashed until Crash decides what the disk kept.
func (s *FS) CrashOnSync(path string, k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.crashSync = append(s.f.crashSync, nth{path, k - 1})
}

// ClearFaults disarms every fault.
func (s *FS) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f = faults{}.clone()
}

// hit counts a call to path against a list of one-shot faults and reports whether one fires.
func hit(list *[]nth, path string) bool {
	for i := range *list {
		f := &(*list)[i]
		if f.path != path {
			continue
		}
		if f.left == 0 {
			*list = slices.Delete(*list, i, i+1)
			return true
		}
		f.left--
	}
	return false
}

func injected(op, path string) error {
	return &iofs.PathError{Op: op, Path: path, Err: fmt.Errorf("%w (%w)", ErrInjected, syscall.EIO)}
}

// ---- db.FS ----

// OpenFile implements db.FS.
func (s *FS) OpenFile(path string, mode db.OpenMode) (db.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, &iofs.PathError{Op: "open", Path: path, Err: ErrCrashed}
	}
	n := s.files[path]
	switch mode {
	case db.OpenReadOnly:
		if n == nil {
			return nil, &iofs.PathError{Op: "open", Path: path, Err: iofs.ErrNotExist}
		}
	case db.OpenReadWrite:
		if n == nil {
			n = &node{}
			s.bump(n)
			s.files[path] = n
		}
	case db.OpenCreateNew:
		if n != nil {
			return nil, &iofs.PathError{Op: "open", Path: path, Err: iofs.ErrExist}
		}
		n = &node{}
		s.bump(n)
		s.files[path] = n
	default:
		return nil, fmt.Errorf("simfs: unknown open mode %v", mode)
	}
	return &handle{fs: s, path: path, n: n, gen: s.gen, readOnly: mode == db.OpenReadOnly}, nil
}

// Remove implements db.FS. Like creation, it is durable at once.
func (s *FS) Remove(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return &iofs.PathError{Op: "remove", Path: path, Err: ErrCrashed}
	}
	if s.files[path] == nil {
		return &iofs.PathError{Op: "remove", Path: path, Err: iofs.ErrNotExist}
	}
	delete(s.files, path)
	return nil
}

// SyncDir implements db.FS; it only counts.
func (s *FS) SyncDir(string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return ErrCrashed
	}
	s.c.SyncDirs++
	return nil
}

type handle struct {
	fs       *FS
	path     string
	n        *node
	gen      int
	readOnly bool
	closed   bool
}

// alive reports an error unless h may be used. Called with fs.mu held.
func (h *handle) check(op string) error {
	switch {
	case h.closed:
		return &iofs.PathError{Op: op, Path: h.path, Err: iofs.ErrClosed}
	case h.fs.down || h.gen != h.fs.gen:
		return &iofs.PathError{Op: op, Path: h.path, Err: ErrCrashed}
	}
	return nil
}

func (h *handle) writable(op string) error {
	if err := h.check(op); err != nil {
		return err
	}
	if h.readOnly {
		return &iofs.PathError{Op: op, Path: h.path, Err: iofs.ErrPermission}
	}
	return nil
}

// ReadAt implements io.ReaderAt, with the faults armed.
func (h *handle) ReadAt(p []byte, off int64) (int, error) {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Reads++
	if err := h.check("read"); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &iofs.PathError{Op: "read", Path: h.path, Err: iofs.ErrInvalid}
	}
	data := h.n.data
	if off >= int64(len(data)) {
		return 0, io.EOF
	}
	want := int(min(int64(len(p)), int64(len(data))-off))
	if at, ok := s.f.readFail[h.path]; ok && at >= off && at < off+int64(want) {
		s.c.ReadFaults++
		return copy(p, data[off:at]), injected("read", h.path)
	}
	if at, ok := s.f.shortRead[h.path]; ok && at >= off && at < off+int64(want) {
		s.c.ShortReads++
		return copy(p, data[off:at]), io.EOF
	}
	if c := s.f.chunk; c > 0 {
		if k := 1 + int(mix(s.seed, uint64(off), uint64(len(p)))%uint64(c)); k < want {
			s.c.ChunkedReads++
			return copy(p, data[off:off+int64(k)]), nil
		}
	}
	n := copy(p, data[off:off+int64(want)])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// mix is splitmix64 over its inputs: a chunk size that depends on nothing but the read.
func mix(vs ...uint64) uint64 {
	var x uint64
	for _, v := range vs {
		x += v + 0x9e3779b97f4a7c15
		x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
		x = (x ^ x>>27) * 0x94d049bb133111eb
		x ^= x >> 31
	}
	return x
}

// Append implements db.File.
func (h *handle) Append(p []byte) error {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := h.writable("append"); err != nil {
		return err
	}
	s.c.Appends++
	if hit(&s.f.append, h.path) {
		s.c.AppendFaults++
		k := 0
		if len(p) > 0 {
			k = s.rng.IntN(len(p))
		}
		h.n.data = append(h.n.data, p[:k]...)
		s.bump(h.n)
		return injected("append", h.path)
	}
	h.n.data = append(h.n.data, p...)
	s.bump(h.n)
	return nil
}

// Sync implements db.File.
func (h *handle) Sync() error {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := h.check("sync"); err != nil {
		return err
	}
	s.c.Syncs++
	if hit(&s.f.crashSync, h.path) {
		s.down = true
		return &iofs.PathError{Op: "sync", Path: h.path, Err: ErrCrashed}
	}
	if hit(&s.f.sync, h.path) {
		s.c.SyncFaults++
		return injected("sync", h.path)
	}
	h.n.synced = len(h.n.data)
	return nil
}

// Truncate implements db.File. It only shrinks.
func (h *handle) Truncate(size int64) error {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := h.writable("truncate"); err != nil {
		return err
	}
	if size < 0 || size > int64(len(h.n.data)) {
		return &iofs.PathError{Op: "truncate", Path: h.path, Err: iofs.ErrInvalid}
	}
	s.c.Truncates++
	s.bump(h.n)
	h.n.data = h.n.data[:size]
	h.n.synced = min(h.n.synced, int(size))
	return nil
}

// Size implements db.File.
func (h *handle) Size() (int64, error) {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := h.check("stat"); err != nil {
		return 0, err
	}
	return int64(len(h.n.data)), nil
}

// Lock implements db.File: an exclusive lock per file, released by Close or a crash.
func (h *handle) Lock() error {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := h.check("lock"); err != nil {
		return err
	}
	if l := h.n.lock; l != nil && l != h && !l.closed && l.gen == s.gen {
		return &db.Error{Code: db.CodeLocked, Path: h.path, Detail: "another handle holds the simulated lock"}
	}
	h.n.lock = h
	return nil
}

// Close implements db.File. Closing a handle that died in a crash succeeds: its process is gone.
func (h *handle) Close() error {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	if h.closed {
		return &iofs.PathError{Op: "close", Path: h.path, Err: iofs.ErrClosed}
	}
	h.closed = true
	if h.n.lock == h {
		h.n.lock = nil
	}
	return nil
}
