package db

import (
	"errors"

	"github.com/streamwal/recovery"
)

// Code is a stable, machine-readable class of a database error. Its string form never changes.
type Code string

const (
	CodeLocked     Code = "LOCKED"        // another writer holds the file's lock
	CodeFailed     Code = "FAILED"        // an append or fsync failed earlier: reopen to write again
	CodeReadOnly   Code = "READ_ONLY"     // a write to a read-only database or transaction
	CodeTxTooLarge Code = "TX_TOO_LARGE"  // the transaction's record would exceed the maximum record size
	CodeClosed     Code = "CLOSED"        // the database (or the transaction) is closed
	CodeNested     Code = "NESTED"        // Update or Close called from inside an Update's function
	CodeSidecars   Code = "SIDECARS_FULL" // every sidecar name for one offset is taken by different bytes
	CodeIdentity   Code = "IDENTITY"      // a rewrite cannot keep the database file's identity (owner, group, mode, or the file itself)
)

// Sentinels, one per code, for errors.Is. Every error the database returns for one of these
// conditions is an *Error that matches its sentinel and unwraps to its cause.
var (
	ErrLocked     = errors.New("db: LOCKED: the database file is locked by another writer")
	ErrFailed     = errors.New("db: FAILED: an earlier append or fsync failed; reopen the database to write again")
	ErrReadOnly   = errors.New("db: READ_ONLY: the database or transaction is read-only")
	ErrTxTooLarge = errors.New("db: TX_TOO_LARGE: the transaction is larger than the maximum record size")
	ErrClosed     = errors.New("db: CLOSED: the database or transaction is closed")
	ErrNested     = errors.New("db: NESTED: Update or Close called from inside an Update's function")
	ErrSidecars   = errors.New("db: SIDECARS_FULL: too many sidecars with different bytes for one offset")
	ErrIdentity   = errors.New("db: IDENTITY: a rewrite cannot keep the database file's owner, group and mode, or the path no longer names the database's file")
)

var sentinels = map[Code]error{
	CodeLocked:     ErrLocked,
	CodeFailed:     ErrFailed,
	CodeReadOnly:   ErrReadOnly,
	CodeTxTooLarge: ErrTxTooLarge,
	CodeClosed:     ErrClosed,
	CodeNested:     ErrNested,
	CodeSidecars:   ErrSidecars,
	CodeIdentity:   ErrIdentity,
}

// Error is a database error with a stable code, the file it concerns, and its cause.
type Error struct {
	Code   Code
	Path   string // the database file, "" when none applies
	Detail string // what happened, for a person
	Err    error  // the cause, may be nil
}

func newError(code Code, path, detail string, cause error) *Error {
	return &Error{Code: code, Path: path, Detail: detail, Err: cause}
}

func (e *Error) Error() string {
	msg := "db: " + string(e.Code)
	if e.Path != "" {
		msg += " " + e.Path
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap yields the code's sentinel and the cause, so errors.Is matches either.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{sentinels[e.Code]}
	}
	return []error{sentinels[e.Code], e.Err}
}

// CodeOf returns the code of err: a database Code ("LOCKED", ...) or a recovery code
// ("CORRUPT_WAL", ...), or "" when err is neither.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return string(e.Code)
	}
	return string(recovery.CodeOf(err))
}
