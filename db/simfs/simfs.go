// Package simfs is a seeded, in-memory simulated filesystem implementing db.FS, for
// deterministic simulation tests of the real database engine.
//
// It keeps apart what a process sees (the page cache) and what the disk holds. Each file has
// its disk image and the changes made since its last successful fsync (appends and
// truncations, in order); the directory has its durable entries and the creations, removals
// and renames made since its last directory sync. A crash keeps, seeded:
//
//   - of a file's changes, the truncations in order up to a seeded point (a truncation that was
//     not synced may be undone: the cut bytes come back), and of the appends after the last
//     kept truncation, by mode, a seeded-length prefix (a torn tail) or their length with
//     zeros or seeded garbage in place of their contents (a filesystem that persisted the size
//     before the data);
//   - of the directory changes, a seeded prefix, in order (a journal commits metadata in
//     order): a file created, renamed or removed since the last SyncDir may be gone, under its
//     old name, or back.
//
// A failed fsync loses the data it should have written, as Linux does: the pages are marked
// clean, reads still see them until the crash, and a later fsync that succeeds writes the
// size but zeros in their place. Faults: a flipped byte in the durable region, short reads
// (fewer bytes with io.EOF: the file seems to end early), reads delivered in small chunks
// (fewer bytes with a nil error, which io.ReaderAt forbids but real adapters do), a read that
// fails with an I/O error, an append or fsync that fails at a seeded point, a full disk
// (ENOSPC), and a crash at a given sync or at the n-th change of any kind. Counters prove
// each fault fired.
//
// Every method is safe for concurrent use (recovery reads from several goroutines). Given the
// same seed and the same sequence of calls, everything it does is the same; chunk sizes depend
// only on the seed and the read's offset and length, never on the order of concurrent reads.
package simfs

import (
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/streamwal/recovery/db"
)

// ErrInjected is the cause of every injected read, append and fsync failure. Injected errors
// also match syscall.EIO.
var ErrInjected = errors.New("simfs: injected I/O error")

// ErrCrashed is returned by every operation between a crash point (CrashOnSync, CrashAtChange) and
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
	NoSpace      int64 // appends that wrote a prefix and failed with ENOSPC
	Syncs        int64
	SyncFaults   int64 // fsyncs that failed, losing the bytes they should have written
	SyncDirs     int64
	Truncates    int64
	Creates      int64
	Removes      int64
	Renames      int64
	Changes      int64 // every change: appends, syncs, truncations, creations, removals, renames, directory syncs
	Crashes      int64
	Corruptions  int64
}

// CrashReport says what a crash did to one file that had changes not yet synced.
type CrashReport struct {
	Path    string
	Durable int64 // the file's size on disk at its last sync
	Pending int64 // bytes appended since (after the last truncation the crash kept)
	Kept    int64 // of the pending bytes, how many the file still has (torn: a prefix; else all)
	Mode    CrashMode
	// Untruncated says a truncation that was not synced was undone: the file has bytes back
	// that it had cut.
	Untruncated bool
}

// fop is one change to a file's contents since its last successful fsync.
type fop struct {
	trunc bool
	size  int    // trunc: the new size
	b     []byte // append: the bytes
	lost  bool   // append: a failed fsync dropped its pages; it reaches the disk as zeros
}

type node struct {
	data []byte // what reads see: the page cache
	disk []byte // what the disk holds: a crash keeps it
	ops  []fop  // changes since the last successful fsync, in order
	ver  uint64 // see Versions
	lock *handle
}

// dop is a change to the directory since the last directory sync.
type dop struct {
	path string // created (n != nil) or removed (n == nil); renamed from, with to
	to   string
	n    *node
}

type nth struct {
	path string
	left int // calls to let through first
}

type faults struct {
	readFail    map[string]int64 // path -> offset: reads covering it fail
	shortRead   map[string]int64 // path -> offset: reads covering it stop there with io.EOF
	chunk       int              // > 0: reads deliver 1..chunk bytes
	append      []nth
	sync        []nth
	crashSync   []nth
	crashChange int // > 0: the machine goes down at this change from now (counting down)
	onSync      map[string]func()
	capacity    int64 // > 0: bytes the files may hold in all (ENOSPC beyond)
}

func (f faults) clone() faults {
	f.readFail = cloneMap(f.readFail)
	f.shortRead = cloneMap(f.shortRead)
	f.append = slices.Clone(f.append)
	f.sync = slices.Clone(f.sync)
	f.crashSync = slices.Clone(f.crashSync)
	onSync := make(map[string]func(), len(f.onSync))
	for k, v := range f.onSync {
		onSync[k] = v
	}
	f.onSync = onSync
	return f
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
	mu      sync.Mutex
	seed    uint64
	pcg     *rand.PCG
	rng     *rand.Rand
	files   map[string]*node // the names processes see
	durable map[string]*node // the names on disk
	dops    []dop            // directory changes since the last directory sync
	gen     int              // handles of an older generation died in a crash
	down    bool             // crashed at a sync point; Crash brings it back
	f       faults
	c       Counters
}

// New returns an empty filesystem whose every random choice derives from seed.
func New(seed uint64) *FS {
	pcg := rand.NewPCG(seed, 0x5eed_f11e_5)
	return &FS{seed: seed, pcg: pcg, rng: rand.New(pcg), files: map[string]*node{}, durable: map[string]*node{}, f: faults{}.clone()}
}

// Clone returns an independent copy: same files (disk images, page caches, changes not yet
// synced), same directory (durable entries and changes), same armed faults, same random state
// (so the copy makes the same choices), no open handles, zero counters.
func (s *FS) Clone() *FS {
	s.mu.Lock()
	defer s.mu.Unlock()
	pcg := *s.pcg
	c := &FS{seed: s.seed, pcg: &pcg, rng: rand.New(&pcg), files: make(map[string]*node, len(s.files)),
		durable: make(map[string]*node, len(s.durable)), f: s.f.clone(), down: s.down}
	memo := map[*node]*node{}
	cp := func(n *node) *node {
		if n == nil {
			return nil
		}
		if m := memo[n]; m != nil {
			return m
		}
		m := &node{data: slices.Clone(n.data), disk: slices.Clone(n.disk), ver: n.ver}
		for _, o := range n.ops {
			o.b = slices.Clone(o.b)
			m.ops = append(m.ops, o)
		}
		memo[n] = m
		return m
	}
	for p, n := range s.files {
		c.files[p] = cp(n)
	}
	for p, n := range s.durable {
		c.durable[p] = cp(n)
	}
	for _, d := range s.dops {
		d.n = cp(d.n)
		c.dops = append(c.dops, d)
	}
	return c
}

// ---- inspection and set-up (for tests) ----

// Bytes returns a copy of the file's current contents (what a read sees), nil if absent.
func (s *FS) Bytes(path string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.files[path]; n != nil {
		return slices.Clone(n.data)
	}
	return nil
}

// Exists reports whether path exists (as processes see it).
func (s *FS) Exists(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[path] != nil
}

// Paths lists every file, sorted.
func (s *FS) Paths() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.files)
}

func sortedKeys(m map[string]*node) []string {
	out := make([]string, 0, len(m))
	for p := range m {
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

// Durable returns how many of the file's bytes are on disk and how many more reads see
// (negative when a truncation is not synced yet). A file whose every change is synced has
// pending 0.
func (s *FS) Durable(path string) (durable, pending int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.files[path]
	switch {
	case n == nil:
		return 0, 0
	case len(n.ops) == 0:
		return int64(len(n.data)), 0
	}
	return int64(len(n.disk)), int64(len(n.data) - len(n.disk))
}

// Synced reports whether path exists, every change to its contents is synced and its name is
// durable (no directory change concerning it waits for a directory sync).
func (s *FS) Synced(path string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.files[path]
	if n == nil || len(n.ops) > 0 || s.durable[path] != n {
		return false
	}
	for _, d := range s.dops {
		if d.path == path || d.to == path {
			return false
		}
	}
	return true
}

// WriteFile creates or replaces path with data, all of it durable, its name too.
func (s *FS) WriteFile(path string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &node{data: slices.Clone(data), disk: slices.Clone(data)}
	s.bump(n)
	s.files[path] = n
	s.durable[path] = n
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

// Corrupt XORs the byte at off with mask (non-zero) in the durable region of path (on disk
// and in the cache).
func (s *FS) Corrupt(path string, off int64, mask byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.files[path]
	if n == nil || off < 0 || off >= int64(len(n.disk)) || off >= int64(len(n.data)) || mask == 0 {
		panic(fmt.Sprintf("simfs: Corrupt(%q, %d, %#x): not a byte of the durable region", path, off, mask))
	}
	n.data[off] ^= mask
	n.disk[off] ^= mask
	s.bump(n)
	s.c.Corruptions++
}

// Crash is a power loss now: every handle dies (and its lock); the directory keeps its
// durable entries and a seeded prefix of the changes since its last sync; each file keeps its
// disk image and, seeded, what is left of its changes since its last fsync (see the package
// comment), which then count as durable. It also brings back a filesystem that went down at
// a crash point. It reports the files that had changes not synced, in path order.
func (s *FS) Crash(mode CrashMode) []CrashReport {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.c.Crashes++
	s.gen++
	s.down = false

	// The directory: a seeded prefix of its changes, in order.
	if len(s.dops) > 0 {
		k := s.draw(len(s.dops))
		for _, d := range s.dops[:k] {
			applyDop(s.durable, d)
		}
		s.dops = nil
	}
	s.files = make(map[string]*node, len(s.durable))
	for p, n := range s.durable {
		s.files[p] = n
	}

	var reps []CrashReport
	seen := map[*node]bool{}
	for _, p := range sortedKeys(s.files) { // random draws in a fixed order
		n := s.files[p]
		n.lock = nil
		if seen[n] {
			continue
		}
		seen[n] = true
		if len(n.ops) == 0 {
			if len(n.data) != len(n.disk) || string(n.data) != string(n.disk) {
				n.data = slices.Clone(n.disk) // pages a failed fsync dropped
				s.bump(n)
			}
			continue
		}
		rep := CrashReport{Path: p, Durable: int64(len(n.disk)), Mode: mode}
		// Truncations persist in order, up to a seeded point; the changes after the first one
		// that did not are lost.
		var truncs []int
		for i, o := range n.ops {
			if o.trunc {
				truncs = append(truncs, i)
			}
		}
		ops := n.ops
		if len(truncs) > 0 {
			if j := s.draw(len(truncs)); j < len(truncs) {
				ops = ops[:truncs[j]]
				rep.Untruncated = true
			}
		}
		// Everything up to the last kept truncation is on disk; the appends after it are the
		// tail, torn or garbled by mode.
		last := -1
		for i, o := range ops {
			if o.trunc {
				last = i
			}
		}
		disk := n.disk
		for _, o := range ops[:last+1] {
			disk = applyFop(disk, o)
		}
		base := len(disk)
		for _, o := range ops[last+1:] {
			disk = applyFop(disk, o)
		}
		pending := len(disk) - base
		kept := pending
		switch mode {
		case TornTail:
			kept = s.tear(pending)
			disk = disk[:base+kept]
		case ZeroTail:
			clear(disk[base:])
		case GarbageTail:
			for i := base; i < len(disk); i++ {
				disk[i] = byte(s.rng.Uint32())
			}
		}
		rep.Pending, rep.Kept = int64(pending), int64(kept)
		n.disk = disk
		n.data = slices.Clone(disk)
		n.ops = nil
		s.bump(n)
		reps = append(reps, rep)
	}
	return reps
}

// applyFop applies one change to a disk image (in place when it can) and returns it.
func applyFop(disk []byte, o fop) []byte {
	if o.trunc {
		return disk[:o.size:o.size] // a later append must not write into a shared array
	}
	if o.lost {
		return append(disk, make([]byte, len(o.b))...)
	}
	return append(disk, o.b...)
}

func applyDop(names map[string]*node, d dop) {
	switch {
	case d.to != "":
		if n := names[d.path]; n != nil {
			names[d.to] = n
			delete(names, d.path)
		}
	case d.n != nil:
		names[d.path] = d.n
	default:
		delete(names, d.path)
	}
}

// draw returns how many of n ordered changes a crash keeps: all, none, or a seeded count.
func (s *FS) draw(n int) int {
	switch x := s.rng.IntN(4); x {
	case 0:
		return 0
	case 1:
		return n
	}
	return s.rng.IntN(n + 1)
}

// tear draws how many of pending bytes a torn write keeps: uniform over [0, pending] most of
// the time, but weighted toward the edges a uniform draw rarely hits: nothing, everything, and
// a short prefix (a tear inside a record or file header).
func (s *FS) tear(pending int) int {
	if pending == 0 {
		return 0
	}
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
// bytes it should have made durable are lost (see the package comment). Once.
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

// CrashAtChange makes the machine go down at the k-th change from now (k >= 1), of any file
// or directory (see Counters.Changes): that change does not happen, and it and every
// operation after it fail with ErrCrashed until Crash.
func (s *FS) CrashAtChange(k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.crashChange = k
}

// OnSync runs fn once, at the start of the next Sync of path, before it does anything (fn may
// use the filesystem: to commit while another file is being synced, say).
func (s *FS) OnSync(path string, fn func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.onSync[path] = fn
}

// SetCapacity limits the bytes all files may hold together (what reads see): an append that
// does not fit writes what fits and fails with ENOSPC. 0 removes the limit.
func (s *FS) SetCapacity(bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.capacity = bytes
}

// Used is the bytes all files hold (what reads see).
func (s *FS) Used() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used()
}

func (s *FS) used() int64 {
	var u int64
	seen := map[*node]bool{}
	for _, n := range s.files {
		if !seen[n] {
			seen[n] = true
			u += int64(len(n.data))
		}
	}
	return u
}

// ClearFaults disarms every fault, the capacity limit and the crash point included.
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

// change counts a change and reports ErrCrashed when the machine is down or goes down at it.
// Called with s.mu held.
func (s *FS) change(op, path string) error {
	if s.down {
		return &iofs.PathError{Op: op, Path: path, Err: ErrCrashed}
	}
	s.c.Changes++
	if s.f.crashChange > 0 {
		s.f.crashChange--
		if s.f.crashChange == 0 {
			s.down = true
			return &iofs.PathError{Op: op, Path: path, Err: ErrCrashed}
		}
	}
	return nil
}

// ---- db.FS ----

// OpenFile implements db.FS. A file it creates is in the directory once the directory is
// synced.
func (s *FS) OpenFile(path string, mode db.OpenMode) (db.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, &iofs.PathError{Op: "open", Path: path, Err: ErrCrashed}
	}
	n := s.files[path]
	create := false
	switch mode {
	case db.OpenReadOnly:
		if n == nil {
			return nil, &iofs.PathError{Op: "open", Path: path, Err: iofs.ErrNotExist}
		}
	case db.OpenReadWrite:
		create = n == nil
	case db.OpenCreateNew:
		if n != nil {
			return nil, &iofs.PathError{Op: "open", Path: path, Err: iofs.ErrExist}
		}
		create = true
	default:
		return nil, fmt.Errorf("simfs: unknown open mode %v", mode)
	}
	if create {
		if err := s.change("create", path); err != nil {
			return nil, err
		}
		s.c.Creates++
		n = &node{}
		s.bump(n)
		s.files[path] = n
		s.dops = append(s.dops, dop{path: path, n: n})
	}
	return &handle{fs: s, path: path, n: n, gen: s.gen, readOnly: mode == db.OpenReadOnly}, nil
}

// Resolve implements db.FS: the simulated filesystem has no symbolic links, so a file's path
// is the path that names it.
func (s *FS) Resolve(path string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return "", &iofs.PathError{Op: "resolve", Path: path, Err: ErrCrashed}
	}
	if s.files[path] == nil {
		return "", &iofs.PathError{Op: "resolve", Path: path, Err: iofs.ErrNotExist}
	}
	return path, nil
}

// CreateLike implements db.FS: files have no owner or mode here, so it is OpenFile with
// OpenCreateNew once like is known to exist.
func (s *FS) CreateLike(path, like string) (db.File, error) {
	s.mu.Lock()
	missing := s.files[like] == nil && !s.down
	s.mu.Unlock()
	if missing {
		return nil, &iofs.PathError{Op: "stat", Path: like, Err: iofs.ErrNotExist}
	}
	return s.OpenFile(path, db.OpenCreateNew)
}

// Remove implements db.FS. Like a creation, it is durable once the directory is synced.
func (s *FS) Remove(path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.files[path] == nil && !s.down {
		return &iofs.PathError{Op: "remove", Path: path, Err: iofs.ErrNotExist}
	}
	if err := s.change("remove", path); err != nil {
		return err
	}
	s.c.Removes++
	delete(s.files, path)
	s.dops = append(s.dops, dop{path: path})
	return nil
}

// Rename implements db.FS: newpath names oldpath's file, replacing any file it named.
// Durable once the directory is synced.
func (s *FS) Rename(oldpath, newpath string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.files[oldpath]
	if n == nil && !s.down {
		return &iofs.PathError{Op: "rename", Path: oldpath, Err: iofs.ErrNotExist}
	}
	if err := s.change("rename", oldpath); err != nil {
		return err
	}
	s.c.Renames++
	if oldpath == newpath {
		return nil
	}
	s.files[newpath] = n
	delete(s.files, oldpath)
	s.dops = append(s.dops, dop{path: oldpath, to: newpath})
	return nil
}

// SyncDir implements db.FS: every directory change up to the last one in dir becomes
// durable (a journal commits in order).
func (s *FS) SyncDir(dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.change("syncdir", dir); err != nil {
		return err
	}
	s.c.SyncDirs++
	last := -1
	for i, d := range s.dops {
		if dirOf(d.path) == dir || d.to != "" && dirOf(d.to) == dir {
			last = i
		}
	}
	for _, d := range s.dops[:last+1] {
		applyDop(s.durable, d)
	}
	s.dops = slices.Delete(s.dops, 0, last+1)
	return nil
}

// ReadDir implements db.FS: the names of the files in dir, sorted.
func (s *FS) ReadDir(dir string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, &iofs.PathError{Op: "readdir", Path: dir, Err: ErrCrashed}
	}
	var out []string
	for _, p := range sortedKeys(s.files) {
		if dirOf(p) == dir {
			out = append(out, p[strings.LastIndexByte(p, '/')+1:])
		}
	}
	return out, nil
}

// dirOf is the directory of a slash-separated path ("/" for "/x", "." for "x").
func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			if i == 0 {
				return "/"
			}
			return p[:i]
		}
	}
	return "."
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
	return h.fs.change(op, h.path)
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

// Append implements db.File: the slices, in order, as one write.
func (h *handle) Append(ps ...[]byte) error {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := h.writable("append"); err != nil {
		return err
	}
	s.c.Appends++
	var p []byte
	if len(ps) == 1 {
		p = slices.Clone(ps[0])
	} else {
		p = slices.Concat(ps...)
	}
	var err error
	if hit(&s.f.append, h.path) {
		s.c.AppendFaults++
		k := 0
		if len(p) > 0 {
			k = s.rng.IntN(len(p))
		}
		p, err = p[:k], injected("append", h.path)
	}
	if c := s.f.capacity; c > 0 {
		if free := max(c-s.used(), 0); int64(len(p)) > free {
			s.c.NoSpace++
			p, err = p[:free], &iofs.PathError{Op: "write", Path: h.path, Err: syscall.ENOSPC}
		}
	}
	h.n.data = append(h.n.data, p...)
	h.n.ops = append(h.n.ops, fop{b: p})
	s.bump(h.n)
	return err
}

// Sync implements db.File.
func (h *handle) Sync() error {
	s := h.fs
	s.mu.Lock()
	if fn := s.f.onSync[h.path]; fn != nil {
		delete(s.f.onSync, h.path)
		s.mu.Unlock()
		fn()
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	if err := h.check("sync"); err != nil {
		return err
	}
	if err := s.change("sync", h.path); err != nil {
		return err
	}
	s.c.Syncs++
	if hit(&s.f.crashSync, h.path) {
		s.down = true
		return &iofs.PathError{Op: "sync", Path: h.path, Err: ErrCrashed}
	}
	n := h.n
	if hit(&s.f.sync, h.path) {
		s.c.SyncFaults++
		// As Linux does: the pages that failed are marked clean; they will never be written.
		for i := range n.ops {
			n.ops[i].lost = !n.ops[i].trunc
		}
		return injected("sync", h.path)
	}
	for _, o := range n.ops {
		n.disk = applyFop(n.disk, o)
	}
	n.ops = nil
	return nil
}

// Truncate implements db.File. It only shrinks; the cut is durable once the file is synced.
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
	h.n.data = h.n.data[:size:size]
	h.n.ops = append(h.n.ops, fop{trunc: true, size: int(size)})
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
		return &db.Error{Code: db.CodeLocked, Path: h.path, Offset: -1, Detail: "another handle holds the simulated lock"}
	}
	h.n.lock = h
	return nil
}

// Is implements db.File: whether path names this handle's file now.
func (h *handle) Is(path string) (bool, error) {
	s := h.fs
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := h.check("stat"); err != nil {
		return false, err
	}
	return s.files[path] == h.n, nil
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
