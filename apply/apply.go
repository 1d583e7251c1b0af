// Package apply is the contract between recovery and the code that rebuilds a store from a
// log: the Record a caller receives, the Applier that receives it, strictly in file order and
// never two at once, and the Preparer that may do per-record work on the parallel workers
// first. Everything exported here is stable.
//
// The ordered applier itself (which replays the verified chunks in file order and hands the
// first damage to classify) is internal/replay; a user meets it only through Applier.
package apply

import (
	"github.com/streamwal/recovery/format"
)

// Record is one verified record as the Applier sees it. Payload (and every op decoded from it)
// aliases a pooled buffer: it is valid only during the Apply call and becomes stale (in
// race-detector and `invariants` builds, poisoned) as soon as Apply returns. Copy what must
// be kept.
//
// A Record is eight machine words, so that it travels to Apply in registers (docs/design.md,
// "Records in registers"): NumOps and PayloadOffset are methods for that reason. NewRecord
// builds one; the ordered applier builds every Record with it, and an Applier's own tests can.
type Record struct {
	Offset  int64  // file offset of the record header
	Payload []byte // the transaction's ops, verified: CRC holds, parses to its end
	// Prepared is what the Preparer (recovery.WithPrepare, pipeline.Config.Preparer) returned
	// for this record, nil without one.
	// Like Payload it aliases pooled memory: valid during the Apply call only.
	Prepared []uint64
	meta     uint64 // header size << 32 | number of ops
}

// NewRecord is the record at offset whose header is headerSize bytes, with numOps ops in
// payload (and what a Preparer returned for it, or nil).
func NewRecord(offset int64, headerSize int, payload []byte, numOps int, prepared []uint64) Record {
	return Record{Offset: offset, Payload: payload, Prepared: prepared, meta: uint64(uint32(headerSize))<<32 | uint64(uint32(numOps))}
}

// NumOps is the number of ops in the payload (counted when it was verified).
func (r *Record) NumOps() int { return int(uint32(r.meta)) }

// PayloadOffset is the file offset of Payload[0].
func (r *Record) PayloadOffset() int64 { return r.Offset + int64(r.meta>>32) }

// Preparer is per-record work done in the parallel stage, before the ordered applier sees the
// record: parsing, hashing, checksumming, whatever needs no shared state (Prometheus decodes
// its WAL records in parallel and applies them in order the same way). Prepare is called once
// per verified record, on the workers, many records at once and in no particular order, so
// it must not touch state shared between calls. It appends what the Applier should receive
// for r to dst and returns the extended slice; the Applier finds those words in
// Record.Prepared. The words are held with the chunk's buffer and counted with it
// (recovery.Result.PeakBuffered). Records after the first bad one may be prepared and never applied.
//
// Prepare runs on read-ahead too (parallelism > 1): on records past the point where the stream
// is decided, which parallelism 1 never prepares. A panic there is dropped with the read-ahead
// and the decision stands; a runtime.Goexit there cannot be kept for later and ends the
// caller's goroutine, where parallelism 1 returns a decision (recovery.WithPrepare).
type Preparer interface {
	Prepare(r Record, dst []uint64) []uint64
}

// PrepareFunc adapts a function to Preparer.
type PrepareFunc func(r Record, dst []uint64) []uint64

// Prepare calls f.
func (f PrepareFunc) Prepare(r Record, dst []uint64) []uint64 { return f(r, dst) }

// Ops returns an allocation-free iterator over the record's ops.
func (r *Record) Ops() format.OpIter { return format.Iter(r.Payload) }

// Applier receives the verified records of a log, one at a time, in file order, never two
// calls at once. At parallelism 1 every call is on the caller's goroutine; in parallel, calls
// come from the pipeline's workers (whichever finds the next chunk ready), each call ordered
// after the one before it, so an Applier needs no locking of its own (a stream's recovery
// calls it on the caller's goroutine only). An error stops recovery, which returns it wrapped
// in an APPLY_FAILED error at the record's offset (errors.Is and errors.As still find it); a
// panic in Apply is raised again on the caller's goroutine as a *recovery.Panic, and a
// runtime.Goexit as a Goexit, once every worker has stopped.
type Applier interface {
	Apply(Record) error
}

// Func adapts a function to Applier.
type Func func(Record) error

// Apply calls f.
func (f Func) Apply(r Record) error { return f(r) }

// Discard is an Applier that keeps nothing (verify-only runs, benchmarks).
var Discard Applier = Func(func(Record) error { return nil })
