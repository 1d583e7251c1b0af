// Package faults makes readers that misbehave on command, for tests: a Reader (an
// io.ReaderAt, and a recovery.File when its source has a Size) or a Stream (an io.Reader) over
// a source, with rules that fail, lie, stall or panic at the calls or offsets they name, and
// that count, and on request record, the calls made.
//
// A rule is a match (which calls) and its steps (what to do then):
//
//	r := faults.Bytes(data,
//		faults.OnCall(3).Fail(faults.ErrInjected),      // the third call fails
//		faults.Touching(x).Panic("byte x unreadable"),  // every read of byte x panics
//		faults.Past(64<<10).Stall(gate.C()),            // reads past 64 KiB wait for gate
//		faults.Always().Short(7, nil))                  // the rest come 7 bytes at a time
//
// Every call goes through the rules in order. A matching rule runs its steps in order: a
// passing step (Do, Delay, Stall, Await, Record) lets the call go on, to the rule's next step
// and then to the next rule; a deciding step (Fail, Short, Half, Dribble, Lie, Claim, Corrupt,
// Panic, Goexit) decides what the call returns, and nothing after it runs. A call no rule
// decides reads the source as it is. Steps are added with methods on the Rule; a step after a
// deciding one is a mistake in the test, and panics when the rule is built.
//
// Readers are safe for concurrent use (ReadAt may be called from several goroutines; the
// call numbers are the order in which calls began) and deterministic: nothing depends on time
// or chance but what a test asks for (Delay, and the scheduling of its own goroutines). A
// Stream, like any io.Reader, takes one Read at a time. A Rule belongs to one reader.
package faults

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrInjected is an error for Fail and the others to return when the test needs no error of
// its own.
var ErrInjected = errors.New("faults: injected read error")

// Call is one read: its number, where it starts and how much it asked for.
type Call struct {
	N   int64     // 1-based, in the order the calls began (across goroutines)
	Off int64     // ReadAt's offset; for a Stream, the bytes delivered before this Read
	Len int       // len(p)
	At  time.Time // when Record kept it (zero otherwise)
}

// End is the offset just past the bytes the call asked for.
func (c Call) End() int64 { return c.Off + int64(c.Len) }

// Touches reports whether the call asked for byte x.
func (c Call) Touches(x int64) bool { return c.Off <= x && x < c.End() }

// A Rule is a match and the steps to take on the calls it matches. Build one with a match
// (Always, OnCall, FromCall, Touching, Past, StartingAt, StartingFrom, When, Where), then add
// its steps.
type Rule struct {
	match   func(Call) bool
	steps   []step
	decides bool // the last step decides the call

	count atomic.Int64
	once  sync.Once
	fired chan struct{}
}

// step is one thing a rule does to a call; done says that it decided the call's result.
// src reads from the source what the call asks for (or less).
type step func(e *engine, c Call, p []byte, src source) (n int, err error, done bool)

func newRule(match func(Call) bool) *Rule {
	return &Rule{match: match, fired: make(chan struct{})}
}

// Fired is closed when the rule first matches a call, before its steps run (so a test can
// wait until a read has stalled, or is about to panic).
func (r *Rule) Fired() <-chan struct{} { return r.fired }

// Count is how many calls the rule has matched.
func (r *Rule) Count() int64 { return r.count.Load() }

func (r *Rule) add(s step, decides bool) *Rule {
	if r.decides {
		panic("faults: a step after one that decides the call would never run")
	}
	r.steps = append(r.steps, s)
	r.decides = decides
	return r
}

// Matches.

// Always matches every call.
func Always() *Rule { return newRule(func(Call) bool { return true }) }

// OnCall matches call n (1-based) only.
func OnCall(n int64) *Rule { return newRule(func(c Call) bool { return c.N == n }) }

// FromCall matches call n and every call after it.
func FromCall(n int64) *Rule { return newRule(func(c Call) bool { return c.N >= n }) }

// Touching matches every call that asks for byte x.
func Touching(x int64) *Rule { return newRule(func(c Call) bool { return c.Touches(x) }) }

// Past matches every call that asks for a byte at or past x.
func Past(x int64) *Rule { return newRule(func(c Call) bool { return c.End() > x }) }

// StartingAt matches every call that starts at one of offs.
func StartingAt(offs ...int64) *Rule {
	offs = slices.Clone(offs)
	return newRule(func(c Call) bool { return slices.Contains(offs, c.Off) })
}

// StartingFrom matches every call that starts at or past x.
func StartingFrom(x int64) *Rule { return newRule(func(c Call) bool { return c.Off >= x }) }

// When matches every call that begins while armed returns true (an atomic.Bool's Load, say).
func When(armed func() bool) *Rule { return newRule(func(Call) bool { return armed() }) }

// Where matches every call for which match returns true.
func Where(match func(Call) bool) *Rule { return newRule(match) }

// Passing steps: the call goes on.

// Do calls fn with the call (to cancel a context, or tell a test the read began).
func (r *Rule) Do(fn func(Call)) *Rule {
	return r.add(func(_ *engine, c Call, _ []byte, _ source) (int, error, bool) {
		fn(c)
		return 0, nil, false
	}, false)
}

// Delay sleeps for d.
func (r *Rule) Delay(d time.Duration) *Rule {
	return r.add(func(*engine, Call, []byte, source) (int, error, bool) {
		time.Sleep(d)
		return 0, nil, false
	}, false)
}

// Stall blocks the call until release is closed (a Gate's C, another rule's Fired).
func (r *Rule) Stall(release <-chan struct{}) *Rule { return r.Await(release, 0, nil) }

// Await blocks the call until ch is closed. If limit (when > 0) passes first, the call fails
// with err, or goes on as if ch had closed when err is nil.
func (r *Rule) Await(ch <-chan struct{}, limit time.Duration, err error) *Rule {
	return r.add(func(*engine, Call, []byte, source) (int, error, bool) {
		if limit <= 0 {
			<-ch
			return 0, nil, false
		}
		t := time.NewTimer(limit)
		defer t.Stop()
		select {
		case <-ch:
			return 0, nil, false
		case <-t.C:
			return 0, err, err != nil
		}
	}, false)
}

// Record keeps the call, with the time, in the reader's Log.
func (r *Rule) Record() *Rule {
	return r.add(func(e *engine, c Call, _ []byte, _ source) (int, error, bool) {
		c.At = time.Now()
		e.mu.Lock()
		e.log = append(e.log, c)
		e.mu.Unlock()
		return 0, nil, false
	}, false)
}

// Deciding steps: the call returns what they say.

// Fail reads nothing and returns (0, err).
func (r *Rule) Fail(err error) *Rule {
	return r.add(func(*engine, Call, []byte, source) (int, error, bool) {
		return 0, err, true
	}, true)
}

// Short delivers at most n bytes of the read (n may be 0: a reader that makes no progress),
// with err, which may be nil (a short count with a nil error, as io.ReaderAt forbids and some
// readers do) or io.EOF; an error of the source's own (io.EOF at its end) is returned instead.
func (r *Rule) Short(n int, err error) *Rule {
	return r.add(func(_ *engine, _ Call, p []byte, src source) (int, error, bool) {
		m, serr := src.read(p[:max(0, min(n, len(p)))])
		if serr != nil {
			return m, serr, true
		}
		return m, err, true
	}, true)
}

// Half delivers half the bytes asked for (rounded down), with err; as Short otherwise.
func (r *Rule) Half(err error) *Rule {
	return r.add(func(_ *engine, _ Call, p []byte, src source) (int, error, bool) {
		m, serr := src.read(p[:len(p)/2])
		if serr != nil {
			return m, serr, true
		}
		return m, err, true
	}, true)
}

// Dribble delivers a number of bytes from 1 to len(p) with a nil error, a hash of the call's
// offset and length (so every goroutine sees the same count for the same read, and a failure
// reproduces); a read that reaches the end of a source with a Size reports io.EOF with its
// last bytes, a full count included (which io.ReaderAt allows).
func (r *Rule) Dribble() *Rule {
	return r.add(func(e *engine, c Call, p []byte, src source) (int, error, bool) {
		if len(p) == 0 {
			m, err := src.read(p)
			return m, err, true
		}
		h := uint64(c.Off)*0x9E3779B97F4A7C15 ^ uint64(len(p))*0xBF58476D1CE4E5B9
		h ^= h >> 29
		m, err := src.read(p[:1+int(h%uint64(len(p)))])
		if size := e.size(); err == nil && size >= 0 && c.Off+int64(m) == size {
			err = io.EOF
		}
		return m, err, true
	}, true)
}

// Lie returns a full count together with err, with zeros in p: a device that fills the
// buffer with nothing and reports the failure.
func (r *Rule) Lie(err error) *Rule {
	return r.add(func(_ *engine, _ Call, p []byte, _ source) (int, error, bool) {
		clear(p)
		return len(p), err, true
	}, true)
}

// Claim reads p from the source, then returns n and err whatever it got: n may be more than
// len(p) or negative, a count no reader may return.
func (r *Rule) Claim(n int, err error) *Rule {
	return r.add(func(_ *engine, _ Call, p []byte, src source) (int, error, bool) {
		src.read(p)
		return n, err, true
	}, true)
}

// Corrupt reads from the source, then lets fn change the bytes delivered before the call
// returns them: storage that returns other bytes than it holds, or a file changed under the
// reader between two reads.
func (r *Rule) Corrupt(fn func(b []byte, c Call)) *Rule {
	return r.add(func(_ *engine, c Call, p []byte, src source) (int, error, bool) {
		m, err := src.read(p)
		fn(p[:max(0, min(m, len(p)))], c)
		return m, err, true
	}, true)
}

// Panic panics with v.
func (r *Rule) Panic(v any) *Rule {
	return r.add(func(*engine, Call, []byte, source) (int, error, bool) {
		panic(v)
	}, true)
}

// Goexit calls runtime.Goexit, as t.Fatal does, ending the reading goroutine.
func (r *Rule) Goexit() *Rule {
	return r.add(func(*engine, Call, []byte, source) (int, error, bool) {
		runtime.Goexit()
		return 0, nil, true
	}, true)
}

// source is the reader's source, at the call's offset.
type source struct {
	at  io.ReaderAt // a Reader's source
	off int64
	s   io.Reader // a Stream's
}

func (s source) read(p []byte) (int, error) {
	if s.at != nil {
		return s.at.ReadAt(p, s.off)
	}
	return s.s.Read(p)
}

// engine is what a Reader and a Stream share: the rules, the counters and the log.
type engine struct {
	rules  []*Rule
	size   func() int64
	calls  atomic.Int64
	asked  atomic.Int64
	maxLen atomic.Int64

	mu  sync.Mutex
	log []Call
}

func (e *engine) call(p []byte, src source) (int, error) {
	c := Call{N: e.calls.Add(1), Off: src.off, Len: len(p)}
	e.asked.Add(int64(len(p)))
	for m := e.maxLen.Load(); int64(len(p)) > m && !e.maxLen.CompareAndSwap(m, int64(len(p))); m = e.maxLen.Load() {
	}
	for _, r := range e.rules {
		if !r.match(c) {
			continue
		}
		r.count.Add(1)
		r.once.Do(func() { close(r.fired) })
		for _, s := range r.steps {
			if n, err, done := s(e, c, p, src); done {
				return n, err
			}
		}
	}
	return src.read(p)
}

// Calls is how many calls have begun.
func (e *engine) Calls() int64 { return e.calls.Load() }

// Asked is how many bytes the calls asked for, in all.
func (e *engine) Asked() int64 { return e.asked.Load() }

// MaxLen is the largest read asked for.
func (e *engine) MaxLen() int64 { return e.maxLen.Load() }

// Log is the calls Record kept, in the order they began.
func (e *engine) Log() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	log := slices.Clone(e.log)
	slices.SortFunc(log, func(a, b Call) int { return int(a.N - b.N) })
	return log
}

// Reader is an io.ReaderAt over a source that follows its rules.
type Reader struct {
	engine
	src io.ReaderAt
}

// New is a Reader over src.
func New(src io.ReaderAt, rules ...*Rule) *Reader {
	r := &Reader{src: src}
	r.rules = rules
	r.engine.size = r.Size
	return r
}

// Bytes is a Reader over b (not copied).
func Bytes(b []byte, rules ...*Rule) *Reader { return New(bytes.NewReader(b), rules...) }

// ReadAt reads at off, as the rules say.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	return r.call(p, source{at: r.src, off: off})
}

// Size is the source's Size (a recovery.File's), or -1 if it has none.
func (r *Reader) Size() int64 {
	if s, ok := r.src.(interface{ Size() int64 }); ok {
		return s.Size()
	}
	return -1
}

// Stream is an io.Reader over a source that follows its rules; a call's Off is the number of
// bytes the Stream delivered before it.
type Stream struct {
	engine
	src io.Reader
	pos atomic.Int64
}

// NewStream is a Stream over src.
func NewStream(src io.Reader, rules ...*Rule) *Stream {
	s := &Stream{src: src}
	s.rules = rules
	s.engine.size = func() int64 { return -1 }
	return s
}

// Read reads the next bytes, as the rules say.
func (s *Stream) Read(p []byte) (int, error) {
	off := s.pos.Load()
	n, err := s.call(p, source{off: off, s: s.src})
	if n > 0 && n <= len(p) {
		s.pos.Add(int64(n))
	}
	return n, err
}

// Gate is a channel for Stall that is closed once, however many times Release is called (a
// test defers a Release so that a failure leaves no read stalled, and releases earlier too).
type Gate struct {
	once sync.Once
	ch   chan struct{}
}

// NewGate is a closed gate: Stall(g.C()) blocks until g.Release().
func NewGate() *Gate { return &Gate{ch: make(chan struct{})} }

// C is closed once Release has been called.
func (g *Gate) C() <-chan struct{} { return g.ch }

// Release opens the gate.
func (g *Gate) Release() { g.once.Do(func() { close(g.ch) }) }
