package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/streamwal/recovery/apply"
	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/internal/chunk"
	"github.com/streamwal/recovery/internal/panics"
	"github.com/streamwal/recovery/internal/replay"
	"github.com/streamwal/recovery/internal/verifier"
	"github.com/streamwal/recovery/source"
	"github.com/streamwal/recovery/walerr"
)

// A stream (a pipe, a socket, an HTTP body) can be read only once, in order, by one reader, so
// its recovery has the design's literal shape rather than the file's read-ahead workers:
//
//	source goroutine:  header, then payload, into a pooled buffer (whole records back to back;
//	                   a record larger than a buffer whole in a buffer of its own) ──► in order
//	verifiers:         an errgroup bounded to the parallelism, one goroutine per buffer: CRCs,
//	                   ops, the Preparer
//	applier:           the caller's goroutine takes the buffers in order, waits for each one's
//	                   verifier, replays it (internal/replay), and gives the buffer back to the pool
//
// The decisions are the file's: the same header checks (the source checks each header for what
// it needs to go on, and source.Check names the trouble where it stops), the same verification
// (verify.Payload) and the same classification (internal/replay, classify). What a file's
// classification reads after the first bad record (the evidence search), a stream has only
// once: from the first trouble on, the rest of the stream is held in memory, up to
// StreamConfig.Spool bytes, and the classification reads it there. A stream with more than
// that after a bad record is refused (CORRUPT_WAL): the safe answer, as when the file's
// evidence search runs out of budget.

// StreamConfig sizes a stream's recovery.
type StreamConfig struct {
	Config
	// Spool is the most bytes of the stream held, from the first bad record on, for its
	// classification; a stream with more than that from there is refused (CORRUPT_WAL). The
	// bad record's own bytes count, so 0 refuses every damaged stream, a torn tail included.
	// recovery.DefaultStreamSpool is RecoverStream's.
	Spool int64
}

// StreamStats is what a stream's recovery replayed and used.
type StreamStats struct {
	Replayed
	Workers int // verifiers at most at once
	// Allocated is the most bytes held at once in buffers with their record tables (and the
	// Preparer's words), the read-ahead, the large record and the spool.
	Allocated int64
	// Abandoned says the source goroutine was inside the caller's Read when RunStream returned:
	// it gives its buffer back and exits when that Read returns (and reads nothing more).
	Abandoned bool
	// Read is the stream's bytes the recovery consumed, from offset 0 (-1 when the source was
	// abandoned); its read-ahead may have taken up to 256 KiB more from the reader.
	Read int64
}

// RunStream replays the log that r yields, from its first byte, into app. It reads the start
// of the stream first (the file header, or a legacy log's whole first record, classified as
// classify.ReadPrefix classifies a file's) and returns that Prefix; an empty stream or a torn
// file header ends there, with a nil error and no Truncation (the caller decides what a torn
// header means: RecoverStream reports the torn_header cut, or refuses it in strict mode). The
// records are then replayed and classified as Run replays and classifies a file of the same
// bytes. A stream's size is not known: Progress gets a total of 0.
//
// RunStream returns once the log is decided, or the context is done, or the caller's Read,
// Applier, Preparer or a callback fails (a panic comes back as a *recovery.Panic; a
// runtime.Goexit is raised again as a Goexit). What may outlive it: the source goroutine,
// when it is inside the caller's Read at that moment; it reads nothing more once that Read returns, and exits. Every
// verifier (and so every call of the Preparer) has returned when RunStream does.
func RunStream(ctx context.Context, r io.Reader, app apply.Applier, cfg StreamConfig) (pre classify.Prefix, stats StreamStats, err error) {
	if err := cfg.check(); err != nil {
		return pre, stats, err
	}
	if r == nil || app == nil {
		return pre, stats, walerr.New(walerr.InvalidArgument, -1, "pipeline: nil reader or applier")
	}
	if cfg.Spool < 0 {
		return pre, stats, walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: spool %d < 0", cfg.Spool))
	}
	if cfg.Depth > MaxDepth { // a stream always has a pool, whatever its parallelism
		return pre, stats, walerr.New(walerr.InvalidArgument, -1, fmt.Sprintf("pipeline: depth %d > %d", cfg.Depth, MaxDepth))
	}
	depth := max(cfg.Depth, 2)
	s := &stream{
		ctx: ctx, r: r, max: cfg.MaxRecord, readSize: cfg.ReadSize,
		spoolMax: cfg.Spool, workers: cfg.Parallelism,
		free: make(chan []byte, depth), ordered: make(chan *streamJob, depth), stop: make(chan struct{}), done: make(chan struct{}),
		prefixed: make(chan prefixResult, 1), bigFree: make(chan struct{}, 1),
		depth: depth, prep: cfg.Preparer,
	}
	st := &replay.Stage{
		Applier: app, Preparer: cfg.Preparer, Progress: cfg.Progress, Verified: cfg.Verified,
		Classify: classify.Config{MaxRecord: cfg.MaxRecord, Mode: cfg.Mode},
	}
	s.bigFree <- struct{}{}
	s.vg.SetLimit(s.workers)
	// The caller's reader is read in large reads, whatever the records' sizes: a read per
	// header and per payload would be two system calls per record from a pipe or a socket.
	ahead := min(streamReadAhead, max(s.readSize, format.FileHeaderSize))
	s.in = bufio.NewReaderSize(readerFunc(s.readCaller), ahead)
	s.hold(int64(ahead))
	go s.run()
	defer func() { // however the applier ends: the source and the verifiers are stopped
		stats = StreamStats{Workers: s.workers, Read: -1}
		if stats.Abandoned = s.close(); !stats.Abandoned {
			stats.Read = s.read0 + s.off + s.tailRead
		}
		stats.Allocated = s.peak.Load()
		stats.Replayed = replayed(st, err)
	}()
	defer func() {
		// The Applier, the Verified or Progress callback panicked on this goroutine: raised
		// again as every other panic of the caller's code is, with its stack (the deferred
		// call above stops the source first).
		if p := recover(); p != nil {
			panic(panics.Wrap(p))
		}
	}()
	pre, err = s.prefix()
	if err != nil || pre.Empty || pre.TornHeader {
		return pre, stats, err
	}
	st.Layout, st.Classify.Layout = pre.Layout, pre.Layout
	st.Stats = replay.Stats{End: pre.Layout.FirstRecord()}
	return pre, stats, s.apply(st)
}

// prefixResult is what the source found at the start of the stream.
type prefixResult struct {
	pre classify.Prefix
	n   int64 // bytes read
	err error
	job *streamJob // a panic or Goexit in the caller's Read, to raise
}

// prefix waits for the source's reading of the stream's start.
func (s *stream) prefix() (classify.Prefix, error) {
	select {
	case r := <-s.prefixed:
		if r.job != nil {
			s.fault(r.job)
		}
		s.read0 = r.n
		return r.pre, r.err
	case <-s.ctx.Done():
		return classify.Prefix{}, walerr.Wrap(walerr.Canceled, 0, s.ctx.Err(), "recovery not started: the stream's first bytes had not come")
	}
}

// readPrefix reads and classifies the start of the stream, on the source goroutine: the 8
// bytes of a v1 file header, or, with no magic, a legacy log's whole first record (its
// checksum and ops decide whether it is one). It leaves a legacy log's first record in
// pending, and sets the layout and where records start.
func (s *stream) readPrefix() (classify.Prefix, int64, error) {
	head := make([]byte, format.FileHeaderSize)
	n, err := s.read(head)
	head = head[:n]
	switch {
	case errors.Is(err, errStreamStopped):
		return classify.Prefix{}, int64(n), err
	case n == 0 && errors.Is(err, io.EOF):
		return classify.Prefix{Empty: true}, 0, nil
	case err != nil && !errors.Is(err, io.EOF):
		return classify.Prefix{}, int64(n), err
	case n < format.FileHeaderSize, string(head[:4]) == string(format.FileHeader[:4]):
		pre, err := classify.ReadPrefix(s.ctx, bytes.NewReader(head), int64(n), s.max)
		if err == nil && !pre.TornHeader {
			s.setLayout(pre.Layout, format.FileHeaderSize) // the header's bytes are counted in off
			return pre, 0, nil
		}
		return pre, int64(n), err
	}
	h := format.DecodeLegacyHeader(head)
	if h.Length > s.max {
		// Too large to hold: its checksum, streamed, decides as the file's does whether it
		// is a record at all.
		c := crc32.NewIEEE()
		m, err := io.CopyN(c, readerFunc(s.read), int64(h.Length))
		switch {
		case err != nil && !errors.Is(err, io.EOF):
			return classify.Prefix{}, int64(n) + m, err
		case m < int64(h.Length) || c.Sum32() != h.PayloadCRC:
			return classify.Prefix{}, int64(n) + m, walerr.New(walerr.NotADatabase, 0, "no LRDB magic, and the bytes are not a legacy record either")
		}
		return classify.Prefix{Layout: format.LayoutLegacy}, int64(n) + m, walerr.New(walerr.RecordTooLarge, 0,
			fmt.Sprintf("record of %d bytes, over the maximum record size %d", h.Length, s.max))
	}
	// The buffer grows with the bytes that arrive, not with the length the header claims.
	var b bytes.Buffer
	b.Write(head)
	_, err = io.CopyN(&b, readerFunc(s.read), int64(h.Length))
	if err != nil && !errors.Is(err, io.EOF) {
		return classify.Prefix{}, int64(b.Len()), err
	}
	pre, err := classify.ReadPrefix(s.ctx, bytes.NewReader(b.Bytes()), int64(b.Len()), s.max)
	if err == nil {
		s.setLayout(pre.Layout, 0)
		s.pending = b.Bytes() // the first record, read again from here
		return pre, 0, nil
	}
	return pre, int64(b.Len()), err
}

func (s *stream) setLayout(l format.Layout, off int64) {
	s.layout, s.hdr, s.off = l, l.HeaderSize(), off
	s.readSize = max(s.readSize, s.hdr)
}

// streamJob is one pooled buffer on its way through: its records, what the verifier found,
// and, on the last one, why the stream ended.
type streamJob struct {
	bt   chunk.Batch
	buf  []byte // whole records back to back: buf[:used]
	used int
	aux  []byte // a record larger than a buffer, header included, after buf's records
	// tail is, on the last job when the stream stopped at trouble, the stream's bytes from
	// bt.Stop.Off to its end (overflow: there were more than the spool holds).
	tail      []byte
	overflow  bool
	err       error             // a read error: the stream cannot be read past it
	readFault *panics.Recovered // a panic in the caller's Read (the source's)
	fault     *panics.Recovered // a panic in the Preparer (the verifier's)
	goexit    bool              // a runtime.Goexit in the Read or the Preparer
	last      bool
	verified  chan struct{} // closed by the verifier
	meta      int64         // the bytes of bt's tables, counted by the verifier (hold)
}

// raw is the job's bytes as the stream had them, from file offset from on.
func (j *streamJob) raw(from int64) [][]byte {
	var out [][]byte
	if b := j.buf[:j.used]; len(b) > 0 && from < j.bt.Base+int64(len(b)) {
		out = append(out, b[max(0, from-j.bt.Base):])
	}
	if j.aux != nil && from < j.bt.AuxOff+int64(len(j.aux)) {
		out = append(out, j.aux[max(0, from-j.bt.AuxOff):])
	}
	if len(j.tail) > 0 {
		out = append(out, j.tail[max(0, from-j.bt.Stop.Off):])
	}
	return out
}

type stream struct {
	ctx      context.Context
	r        io.Reader
	in       *bufio.Reader // r, read ahead
	pending  []byte
	off      int64 // the stream's offset of the next byte the source reads
	layout   format.Layout
	hdr      int
	max      uint32
	readSize int
	spoolMax int64
	workers  int
	depth    int
	prep     apply.Preparer

	vg       errgroup.Group    // the verifiers, bounded to the parallelism
	prefixed chan prefixResult // the start of the stream, once read
	bigFree  chan struct{}     // the one record larger than a buffer that may be held at once
	read0    int64             // bytes of the prefix not counted in off (a v1 file header is)

	free      chan []byte     // the pool: buffers given back
	made      int             // buffers made (the source's)
	ordered   chan *streamJob // the source's jobs, in stream order
	stop      chan struct{}   // closed when RunStream returns
	done      chan struct{}   // closed when the source goroutine has ended
	state     atomic.Int32    // streamIdle, streamReading, streamStopped
	closing   sync.Once
	abandoned bool
	held      atomic.Int64 // bytes held now
	peak      atomic.Int64
	carry     []byte // a header read for a record that goes in the next buffer
	at        int64  // the applier's: the end of what it replayed, for a CANCELED's offset
	// tailRead is the bytes of the last job's tail (read after off).
	tailRead int64
}

const (
	streamIdle = iota
	streamReading
	streamStopped
)

// errStreamStopped is the source's own signal that RunStream returned: it ends quietly.
var errStreamStopped = errors.New("pipeline: the stream's recovery returned")

func (s *stream) hold(n int64) {
	v := s.held.Add(n)
	for p := s.peak.Load(); v > p && !s.peak.CompareAndSwap(p, v); p = s.peak.Load() {
	}
}

// run is the source goroutine: it reads the stream's start, then fills buffers and hands
// them, in order, to the applier and to a verifier. A panic or Goexit in the caller's Read
// goes to the applier, which raises it.
func (s *stream) run() {
	defer close(s.done)
	prefixSent, normal := false, false
	defer func() {
		if normal {
			return
		}
		j := &streamJob{last: true, verified: closed()}
		if v := recover(); v != nil {
			j.readFault = panics.Wrap(v)
		} else {
			j.goexit = true
		}
		if !prefixSent {
			s.prefixed <- prefixResult{job: j}
			return
		}
		s.send(j)
	}()
	pre, n, err := s.readPrefix()
	s.prefixed <- prefixResult{pre: pre, n: n, err: err}
	prefixSent = true
	if err != nil || pre.Empty || pre.TornHeader {
		normal = true
		return
	}
	for k := int64(0); ; k++ {
		j, err := s.fill(k)
		if errors.Is(err, errStreamStopped) || !s.send(j) {
			normal = true
			return
		}
		s.vg.Go(func() error {
			s.verify(j)
			return nil
		})
		if j.last {
			normal = true
			return
		}
	}
}

// send hands j to the applier, or reports false once RunStream has returned.
func (s *stream) send(j *streamJob) bool {
	select {
	case s.ordered <- j:
		return true
	case <-s.stop:
		return false
	}
}

func closed() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// verify checks j's records and prepares them; a panic or Goexit in the Preparer is carried
// to the applier with the job.
func (s *stream) verify(j *streamJob) {
	normal := false
	defer func() {
		if !normal {
			if v := recover(); v != nil {
				j.fault = panics.Wrap(v)
			} else {
				j.goexit = true
			}
		}
		close(j.verified)
	}()
	verifier.Batch(s.layout, &j.bt, j.buf[:j.used], j.aux, s.prep)
	// The tables the verifier made (op counts, the Preparer's words) are held with the buffer
	// until the applier gives it back: counted, as a file's pool counts them.
	j.meta = j.bt.MetaBytes()
	s.hold(j.meta)
	normal = true
}

// fill reads the next job: whole records into a pooled buffer until it is full, the stream
// ends, or trouble stops it.
func (s *stream) fill(k int64) (*streamJob, error) {
	buf, err := s.buffer()
	if err != nil {
		return nil, err
	}
	j := &streamJob{buf: buf, verified: make(chan struct{})}
	j.bt.Reset(k, s.off)
	for {
		if j.used+s.hdr > len(buf) {
			return j, nil
		}
		head := buf[j.used : j.used+s.hdr]
		got := 0
		if s.carry != nil {
			got = copy(head, s.carry)
			s.carry = nil
		} else {
			got, err = s.read(head)
		}
		switch {
		case got == 0 && errors.Is(err, io.EOF):
			j.bt.Stop, j.last = chunk.Stop{Set: true, Off: s.off}, true
			return j, nil
		case errors.Is(err, errStreamStopped):
			return nil, err
		case err != nil && !errors.Is(err, io.EOF):
			j.err, j.last = err, true
			return j, nil
		case got < s.hdr:
			return s.trouble(j, head[:got])
		}
		l, crc := s.decode(head)
		_ = crc
		if s.bad(head, l) {
			return s.trouble(j, head)
		}
		size := s.hdr + int(l)
		switch {
		case j.used+size <= len(buf):
			got, err = s.read(buf[j.used+s.hdr : j.used+size])
			if err != nil {
				if errors.Is(err, errStreamStopped) {
					return nil, err
				}
				if !errors.Is(err, io.EOF) {
					j.err, j.last = err, true
					return j, nil
				}
				return s.trouble(j, buf[j.used:j.used+s.hdr+got])
			}
			j.used += size
			j.bt.N++
			s.off += int64(size)
		case size <= s.readSize && j.used > 0:
			s.carry = append([]byte(nil), head...) // it goes first in the next buffer
			return j, nil
		default:
			// Larger than a buffer: whole, in a buffer of its own, after this buffer's records.
			aux, got, err := s.big(head, size)
			if err != nil {
				if errors.Is(err, errStreamStopped) {
					return nil, err
				}
				if !errors.Is(err, io.EOF) {
					j.err, j.last = err, true
					return j, nil
				}
				return s.trouble(j, got)
			}
			j.aux, j.bt.HasAux, j.bt.AuxOff = aux, true, s.off
			s.off += int64(size)
			return j, nil
		}
	}
}

// big reads a record larger than a buffer (head is its header, size its whole length) into a
// buffer of its own, the one such buffer that may be held at once (the next waits for the
// applier to give it back). The buffer grows with the bytes that arrive, never ahead of them
// by more than it already holds: a length no byte backs never sizes an allocation. Growing
// costs a copy: while the last one is made, the old buffer and the new one are both held, so
// the bound counts the largest record twice (about 1.5 times in practice). When the stream
// ends inside the record, it returns the bytes it got (a copy) and io.EOF.
func (s *stream) big(head []byte, size int) (aux, got []byte, err error) {
	select {
	case <-s.bigFree:
	case <-s.stop:
		return nil, nil, errStreamStopped
	}
	aux = make([]byte, 0, min(size, s.readSize))
	s.hold(int64(cap(aux)))
	aux = append(aux, head...)
	for len(aux) < size && err == nil {
		if len(aux) == cap(aux) {
			next := 2 * cap(aux)
			if next >= size || size-next < cap(aux) {
				next = size // rather than a last step of a few bytes, and one more copy
			}
			grown := make([]byte, len(aux), next)
			s.hold(int64(cap(grown)))
			copy(grown, aux)
			s.held.Add(-int64(cap(aux)))
			aux = grown
		}
		var n int
		n, err = s.read(aux[len(aux):min(cap(aux), size)])
		aux = aux[:len(aux)+n]
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			got = bytes.Clone(aux)
		}
		s.held.Add(-int64(cap(aux)))
		s.bigFree <- struct{}{}
		return nil, got, err
	}
	return aux, nil, nil
}

func (s *stream) decode(head []byte) (l, crc uint32) {
	if s.layout == format.LayoutV1 {
		h := format.DecodeV1Header(head)
		return h.Length, h.PayloadCRC
	}
	h := format.DecodeLegacyHeader(head)
	return h.Length, h.PayloadCRC
}

// bad reports a header the stream cannot go past without knowing the rest: one the file's
// check refuses whatever the size (a v1 self-checksum, a zero length), or a length over the
// maximum (whether it runs past the end decides what the file calls it).
func (s *stream) bad(head []byte, l uint32) bool {
	if s.layout == format.LayoutV1 && !format.DecodeV1Header(head).SelfCheckOK() {
		return true
	}
	return l == 0 || l > s.max
}

// trouble ends the stream at the record that starts at s.off, whose first bytes (read so far)
// are got: it reads the rest of the stream into the job's tail, up to the spool, and sets the
// stop with the trouble the file's check finds there, knowing where the stream ends.
func (s *stream) trouble(j *streamJob, got []byte) (*streamJob, error) {
	j.last = true
	off := s.off
	tail := append([]byte(nil), got...)
	s.hold(int64(len(tail)))
	buf := make([]byte, 64<<10)
	for int64(len(tail)) <= s.spoolMax {
		n, err := s.read(buf)
		tail = append(tail, buf[:n]...)
		s.hold(int64(n))
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errStreamStopped) {
			return nil, err
		}
		if err != nil {
			j.err = err
			s.tailRead = int64(len(tail))
			return j, nil
		}
	}
	j.tail, j.overflow = tail, int64(len(tail)) > s.spoolMax
	s.tailRead = int64(len(tail))
	size := off + int64(len(tail))
	var t classify.Trouble
	var detail string
	if len(tail) < s.hdr {
		t, detail = classify.Short, "fewer bytes left than a record header"
	} else {
		_, _, t, detail = source.Check(s.layout, s.max, size, off, tail[:s.hdr])
	}
	if t == 0 { // cannot happen (a header the stream stopped at fails a check that knows the size)
		t, detail = classify.Damaged, "record header the stream could not go past"
	}
	j.bt.Stop = chunk.Stop{Set: true, Off: off, Trouble: t, Detail: detail}
	return j, nil
}

// streamReadAhead is the largest read of the caller's reader (the read size, when smaller).
const streamReadAhead = 256 << 10

// read fills p from the pending bytes, then the caller's reader (through the read-ahead):
// io.ReadFull's contract, except that a partial read ends with io.EOF too, with n < len(p).
// Errors other than EOF are IO_ERROR at the offset; errStreamStopped once RunStream returned.
func (s *stream) read(p []byte) (int, error) {
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	for empty := 0; n < len(p); {
		m, err := s.in.Read(p[n:])
		n += m
		if m == 0 && err == nil {
			if empty++; empty == 100 { // as bufio and io do: a reader that never delivers
				return n, walerr.Wrap(walerr.IO, s.off+int64(n), io.ErrNoProgress, "read failed")
			}
			continue
		}
		empty = 0
		if errors.Is(err, io.EOF) {
			if n < len(p) {
				return n, io.EOF
			}
			return n, nil
		}
		if err != nil {
			var stopped *stopError
			if errors.As(err, &stopped) {
				return n, errStreamStopped
			}
			return n, walerr.Wrap(walerr.IO, s.off+int64(n), err, "read failed")
		}
	}
	return n, nil
}

// stopError is readCaller's refusal once RunStream returned (a type of its own, so that no
// error of the caller's reader can pass for it).
type stopError struct{}

func (*stopError) Error() string { return errStreamStopped.Error() }

// readCaller is one Read of the caller's reader, through the gate that lets RunStream return
// while it is in progress: no Read starts once RunStream returned or the context is done, and
// what a Read returns after that is dropped.
func (s *stream) readCaller(p []byte) (n int, err error) {
	if !s.state.CompareAndSwap(streamIdle, streamReading) {
		return 0, &stopError{}
	}
	if s.ctx.Err() != nil { // no read starts once the context is done
		s.state.Store(streamIdle)
		return 0, &stopError{}
	}
	defer func() { // also when Read panics or calls runtime.Goexit: the state is idle again
		if !s.state.CompareAndSwap(streamReading, streamIdle) {
			n, err = 0, &stopError{} // abandoned: what the read returned is not wanted
		}
	}()
	m, err := s.r.Read(p)
	if m < 0 || m > len(p) {
		return 0, fmt.Errorf("reader returned an impossible count %d", m)
	}
	return m, err
}

// readerFunc is a func as an io.Reader.
type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// buffer is a pooled buffer: one given back, or a new one while fewer than depth exist.
func (s *stream) buffer() ([]byte, error) {
	select {
	case b := <-s.free:
		return b, nil
	default:
	}
	if s.made < s.depth {
		s.made++
		s.hold(int64(s.readSize))
		return make([]byte, s.readSize), nil
	}
	select {
	case b := <-s.free:
		return b, nil
	case <-s.stop:
		return nil, errStreamStopped
	}
}

// release gives j's memory back: its buffer to the pool, its large record and tail to the
// collector.
func (s *stream) release(j *streamJob) {
	if j.buf != nil {
		s.free <- j.buf // never blocks: at most depth buffers exist
		j.buf = nil
	}
	if j.aux != nil {
		s.held.Add(-int64(cap(j.aux)))
		s.bigFree <- struct{}{} // never blocks: the slot was taken for it
	}
	s.held.Add(-int64(len(j.tail)) - j.meta)
	j.aux, j.tail, j.meta = nil, nil, 0
}

// close stops the source: it waits for it, unless it is inside the caller's Read (then it is
// abandoned: it ends when that Read returns).
func (s *stream) close() (abandoned bool) {
	s.closing.Do(func() {
		close(s.stop)
		if s.state.Swap(streamStopped) == streamReading {
			s.abandoned = true // it starts no verifier once its Read returns
		} else {
			<-s.done
		}
		s.vg.Wait() // every verifier it started: no Preparer runs after RunStream returns
	})
	return s.abandoned
}

// apply is the ordered applier, on the caller's goroutine: the jobs in stream order, each once
// its verifier is done, replayed through st; it gives each buffer back after it.
func (s *stream) apply(st *replay.Stage) error {
	for {
		j, err := s.next()
		if err != nil {
			return err
		}
		if err := s.fault(j); err != nil {
			return err
		}
		if j.bt.FirstBad < j.bt.Count() || j.bt.Stop.Trouble != 0 {
			return s.end(st, j)
		}
		done, err := st.Batch(s.ctx, &j.bt, j.buf[:j.used], j.aux)
		s.at = st.Stats.End
		s.release(j)
		if err == nil && j.err != nil {
			err = j.err // a read error after the records it read, as a file's
		}
		if done || err != nil {
			return err
		}
		if j.last {
			return nil
		}
	}
}

// end ends the stream at j, which holds a bad record or the trouble the source stopped
// at. The good records before it are replayed first, as a file's applier replays them before
// it classifies (an Applier's error on one of them comes first, in file order); then what the
// classification needs after them is gathered (the rest of the stream, up to the spool), and
// the trouble is decided.
func (s *stream) end(st *replay.Stage, j *streamJob) error {
	defer s.release(j)
	err := st.Replay(&j.bt, j.buf[:j.used], j.aux)
	s.at = st.Stats.End
	switch {
	case err != nil:
	case j.bt.FirstBad < j.bt.Count(): // the verifier found a bad record
		err = s.gather(st, j, j.bt.Bad.Offset)
	case j.overflow:
		err = tooMuch(j.bt.Stop.Off, s.spoolMax)
	default:
		st.File, st.Size = &spoolView{base: j.bt.Stop.Off, b: j.tail}, j.bt.Stop.Off+int64(len(j.tail))
	}
	if err == nil {
		_, err = st.Decide(s.ctx, &j.bt)
	}
	if err == nil && j.err != nil {
		err = j.err // a read error after the records it read, as a file's
	}
	return err
}

// next is the next job in stream order, once verified.
func (s *stream) next() (*streamJob, error) {
	var j *streamJob
	select {
	case j = <-s.ordered:
	case <-s.ctx.Done():
		return nil, walerr.Wrap(walerr.Canceled, s.at, s.ctx.Err(), "recovery of the stream stopped")
	}
	select {
	case <-j.verified:
		return j, nil
	case <-s.ctx.Done():
		// Not given back: its verifier may still read it (close waits for the verifiers).
		return nil, walerr.Wrap(walerr.Canceled, s.at, s.ctx.Err(), "recovery of the stream stopped")
	}
}

// fault raises on the caller's goroutine a panic or Goexit that happened in the caller's Read
// or Preparer, after stopping the source; a read error with no records is returned.
func (s *stream) fault(j *streamJob) error {
	switch {
	case j.readFault != nil:
		s.close()
		panic(j.readFault)
	case j.fault != nil:
		s.close()
		panic(j.fault)
	case j.goexit:
		s.close()
		runtime.Goexit()
	}
	return nil
}

// gather holds the stream's bytes from the bad record at off on, for its classification: the
// rest of j, every later job's (given back as they are copied), and the last job's tail. More
// than the spool: refused, as a search out of budget would be.
func (s *stream) gather(st *replay.Stage, j *streamJob, off int64) error {
	var spool []byte
	add := func(job *streamJob, from int64) bool {
		for _, b := range job.raw(from) {
			if int64(len(spool)+len(b)) > s.spoolMax {
				return false
			}
			spool = append(spool, b...)
		}
		return !job.overflow
	}
	ok := add(j, off)
	if j.aux != nil {
		// The record larger than a buffer is the bad one or after it, never replayed (a
		// batch is replayed up to its first bad record): give its slot back now, or the
		// source could wait for it while this waits for the source.
		s.held.Add(-int64(cap(j.aux)))
		s.bigFree <- struct{}{}
		j.aux = nil
	}
	for last := j.last; ok && !last; {
		k, err := s.nextRaw()
		if err != nil {
			return err
		}
		if k.err != nil {
			s.release(k)
			return k.err
		}
		last = k.last
		ok = add(k, k.bt.Base)
		s.release(k)
	}
	if !ok {
		return tooMuch(off, s.spoolMax)
	}
	s.hold(int64(len(spool)))
	st.File, st.Size = &spoolView{base: off, b: spool}, off+int64(len(spool))
	return nil
}

// nextRaw is the next job in stream order, its bytes only (its verification is not needed).
func (s *stream) nextRaw() (*streamJob, error) {
	select {
	case j := <-s.ordered:
		select {
		case <-j.verified: // its verifier uses the buffer: it goes back to the pool after
		case <-s.ctx.Done():
			return nil, walerr.Wrap(walerr.Canceled, s.at, s.ctx.Err(), "recovery of the stream stopped")
		}
		// The bytes are what is wanted: a panic of the Preparer on records past the bad one
		// is dropped, as the sequential loop never prepares them; one in the caller's Read is
		// raised (the classification needed that read), and so is a Goexit (as in a file's
		// read-ahead: it cannot be kept).
		if j.readFault != nil || j.goexit {
			return nil, s.fault(j)
		}
		return j, nil
	case <-s.ctx.Done():
		return nil, walerr.Wrap(walerr.Canceled, s.at, s.ctx.Err(), "recovery of the stream stopped")
	}
}

// tooMuch is the refusal of a stream whose bytes after a bad record are more than the spool.
func tooMuch(off, spool int64) error {
	return walerr.New(walerr.CorruptWAL, off, fmt.Sprintf(
		"a bad record, followed by more than %d bytes of stream: a stream's recovery holds at most that much to search for evidence of a later write, so the damage cannot be proven to be a torn tail", spool)).
		WithHint("recover the log from a file, which can be searched to its end")
}

// spoolView is the stream's bytes from base on, as the classification reads them.
type spoolView struct {
	base int64
	b    []byte
}

func (v *spoolView) ReadAt(p []byte, off int64) (int, error) {
	if off < v.base {
		return 0, fmt.Errorf("pipeline: the stream's bytes before offset %d are gone (read at %d)", v.base, off)
	}
	i := off - v.base
	if i >= int64(len(v.b)) {
		return 0, io.EOF
	}
	n := copy(p, v.b[i:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
