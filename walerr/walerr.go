// Package walerr defines the one error type of this module: every stage of recovery and the
// database return it.
//
// An *Error carries a stable Code, the file and the byte Offset it concerns, and the
// underlying cause. It matches the sentinel of its code with errors.Is (errors.Is(err,
// walerr.ErrCorruptWAL), errors.Is(err, walerr.ErrLocked)), and its cause too (errors.Is(err,
// context.Canceled), errors.Is(err, io.ErrUnexpectedEOF)). The root package re-exports the
// recovery codes as recovery.Error, recovery.ErrCorruptWAL, and so on; package db re-exports
// the database's as db.Error, db.ErrLocked, and so on: the same type, the same Code type.
package walerr

import (
	"errors"
	"fmt"
	"io"
)

// Code is a stable, machine-readable error class. Its string form never changes.
type Code string

const (
	NotADatabase       Code = "NOT_A_DATABASE"
	UnsupportedVersion Code = "UNSUPPORTED_VERSION"
	CorruptWAL         Code = "CORRUPT_WAL"
	IncompleteRead     Code = "INCOMPLETE_READ"
	RecordTooLarge     Code = "RECORD_TOO_LARGE"
	TailDamage         Code = "TAIL_DAMAGE" // strict mode refused a torn or damaged tail
	IO                 Code = "IO_ERROR"
	Canceled           Code = "CANCELED"
	ApplyFailed        Code = "APPLY_FAILED" // the caller's Applier returned an error
	InvalidArgument    Code = "INVALID_ARGUMENT"

	// The database's (package db).
	Locked       Code = "LOCKED"        // another writer holds the file's lock
	Failed       Code = "FAILED"        // an append or fsync failed earlier: reopen to write again
	ReadOnly     Code = "READ_ONLY"     // a write to a read-only database or transaction
	TxTooLarge   Code = "TX_TOO_LARGE"  // the transaction's record would exceed the maximum record size
	Closed       Code = "CLOSED"        // the database (or the transaction) is closed
	Nested       Code = "NESTED"        // Update or Close called from inside an Update's function
	SidecarsFull Code = "SIDECARS_FULL" // every sidecar name for one offset is taken by different bytes
	Identity     Code = "IDENTITY"      // a rewrite cannot keep the database file's identity (owner, group, mode, or the file itself)
	Rewritten    Code = "REWRITTEN"     // an incremental backup's base is no longer in the log (it was compacted or replaced since)
)

// Sentinels, one per code, for errors.Is.
var (
	ErrNotADatabase       = errors.New("recovery: not a database")
	ErrUnsupportedVersion = errors.New("recovery: unsupported format version")
	ErrCorruptWAL         = errors.New("recovery: corrupt write-ahead log")
	ErrIncompleteRead     = errors.New("recovery: incomplete read")
	ErrRecordTooLarge     = errors.New("recovery: record larger than the maximum record size")
	ErrTailDamage         = errors.New("recovery: damaged tail refused in strict mode")
	ErrIO                 = errors.New("recovery: I/O error")
	ErrCanceled           = errors.New("recovery: canceled")
	ErrApplyFailed        = errors.New("recovery: the applier failed")
	ErrInvalidArgument    = errors.New("recovery: invalid argument")

	ErrLocked       = errors.New("db: LOCKED: the database file is locked by another writer")
	ErrFailed       = errors.New("db: FAILED: an earlier append or fsync failed; reopen the database to write again")
	ErrReadOnly     = errors.New("db: READ_ONLY: the database or transaction is read-only")
	ErrTxTooLarge   = errors.New("db: TX_TOO_LARGE: the transaction is larger than the maximum record size")
	ErrClosed       = errors.New("db: CLOSED: the database or transaction is closed")
	ErrNested       = errors.New("db: NESTED: Update or Close called from inside an Update's function")
	ErrSidecarsFull = errors.New("db: SIDECARS_FULL: too many sidecars with different bytes for one offset")
	ErrIdentity     = errors.New("db: IDENTITY: a rewrite cannot keep the database file's owner, group and mode, or the path no longer names the database's file")
	ErrRewritten    = errors.New("db: REWRITTEN: the log was rewritten since the backup an incremental one would follow: take a full backup")
)

var sentinels = map[Code]error{
	NotADatabase:       ErrNotADatabase,
	UnsupportedVersion: ErrUnsupportedVersion,
	CorruptWAL:         ErrCorruptWAL,
	IncompleteRead:     ErrIncompleteRead,
	RecordTooLarge:     ErrRecordTooLarge,
	TailDamage:         ErrTailDamage,
	IO:                 ErrIO,
	Canceled:           ErrCanceled,
	ApplyFailed:        ErrApplyFailed,
	InvalidArgument:    ErrInvalidArgument,

	Locked:       ErrLocked,
	Failed:       ErrFailed,
	ReadOnly:     ErrReadOnly,
	TxTooLarge:   ErrTxTooLarge,
	Closed:       ErrClosed,
	Nested:       ErrNested,
	SidecarsFull: ErrSidecarsFull,
	Identity:     ErrIdentity,
	Rewritten:    ErrRewritten,
}

// ofDatabase reports whether c is one of the database's codes (its message says "db:").
func ofDatabase(c Code) bool {
	switch c {
	case Locked, Failed, ReadOnly, TxTooLarge, Closed, Nested, SidecarsFull, Identity, Rewritten:
		return true
	}
	return false
}

// Error is a failure of recovery or of the database.
type Error struct {
	Code   Code
	Path   string // the file the error concerns, "" when none applies (recovery reads an io.ReaderAt)
	Offset int64  // byte offset in the file the error concerns; -1 when none applies
	Detail string // what was found there, for a person
	Hint   string // what a person can do about it (may be empty)
	Err    error  // underlying cause, may be nil
}

// New builds an *Error (no Path: WithPath adds one).
func New(code Code, off int64, detail string) *Error {
	return &Error{Code: code, Offset: off, Detail: detail}
}

// Wrap builds an *Error around a cause.
func Wrap(code Code, off int64, cause error, detail string) *Error {
	return &Error{Code: code, Offset: off, Detail: detail, Err: cause}
}

// WithPath returns e with the file it concerns.
func (e *Error) WithPath(p string) *Error { e.Path = p; return e }

// WithHint returns e with a hint attached.
func (e *Error) WithHint(h string) *Error { e.Hint = h; return e }

func (e *Error) Error() string {
	msg := "recovery: " + string(e.Code)
	if ofDatabase(e.Code) || e.Path != "" { // recovery reads an io.ReaderAt: a file is the database's
		msg = "db: " + string(e.Code)
	}
	if e.Path != "" {
		msg += " " + e.Path
	}
	if e.Offset >= 0 {
		msg += fmt.Sprintf(" at offset %d", e.Offset)
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Unwrap yields the code's sentinel and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	s := sentinels[e.Code]
	if e.Err == nil {
		return []error{s}
	}
	return []error{s, e.Err}
}

// CodeOf returns the Code of the first *Error in err's chain, or "" if there is none.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// OffsetOf returns the Offset of the first *Error in err's chain, or -1.
func OffsetOf(err error) int64 {
	var e *Error
	if errors.As(err, &e) {
		return e.Offset
	}
	return -1
}

// IsCorruption reports whether err says the log itself is damaged or unreadable as a log
// (as opposed to an I/O failure, a cancellation or a bad argument), like pebble's
// IsInvalidRecord.
func IsCorruption(err error) bool {
	switch CodeOf(err) {
	case NotADatabase, UnsupportedVersion, CorruptWAL, RecordTooLarge, TailDamage:
		return true
	}
	return false
}

// ReadFull reads len(p) bytes at off. It is where a read becomes a typed error: a read that
// fails is IO_ERROR, and one that returns fewer bytes than asked (the file ended before the
// size it reported, or the reader stopped making progress) is INCOMPLETE_READ. Neither is ever
// a reason to truncate. A read that returns every byte together with an error other than io.EOF
// is IO_ERROR too: the bytes came with a failure and are not trusted. Readers that deliver in chunks (n < len(p) with a nil error, which
// io.ReaderAt forbids but real adapters do) are read again from where they stopped.
func ReadFull(r interface {
	ReadAt(p []byte, off int64) (int, error)
}, p []byte, off int64) error {
	got := 0
	for got < len(p) {
		n, err := r.ReadAt(p[got:], off+int64(got))
		if n < 0 || n > len(p)-got {
			return Wrap(IO, off+int64(got), nil, fmt.Sprintf("reader returned an impossible count %d", n))
		}
		got += n
		if err == nil && got == len(p) {
			return nil
		}
		if err != nil && got == len(p) && errors.Is(err, io.EOF) {
			return nil // a full read that also reports the end of the file is a full read
		}
		if err != nil && got == len(p) {
			// Any other error with a full count: the bytes cannot be trusted (a device that
			// fills the buffer and reports EIO). Never a reason to cut.
			return Wrap(IO, off, err, fmt.Sprintf("read of %d bytes returned them together with an error", len(p)))
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return Wrap(IncompleteRead, off+int64(got), err,
					fmt.Sprintf("read %d of %d bytes: the file ended before the size it reported", got, len(p))).
					WithHint("the file may be changing under us, or the storage returned a short read; retry, nothing was truncated")
			}
			return Wrap(IO, off+int64(got), err, "read failed")
		}
		if n == 0 {
			return Wrap(IncompleteRead, off+int64(got), io.ErrNoProgress,
				fmt.Sprintf("read %d of %d bytes: the reader stopped making progress", got, len(p)))
		}
	}
	return nil
}
