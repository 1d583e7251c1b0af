package db

import "github.com/streamwal/recovery/walerr"

// Code is a stable, machine-readable class of an error: the database's codes below and
// recovery's (recovery.CodeCorruptWAL, ...) are one type, walerr.Code. Its string form never
// changes.
type Code = walerr.Code

const (
	CodeLocked     = walerr.Locked       // another writer holds the file's lock
	CodeFailed     = walerr.Failed       // an append or fsync failed earlier: reopen to write again
	CodeReadOnly   = walerr.ReadOnly     // a write to a read-only database or transaction
	CodeTxTooLarge = walerr.TxTooLarge   // the transaction's record would exceed the maximum record size
	CodeClosed     = walerr.Closed       // the database (or the transaction) is closed
	CodeNested     = walerr.Nested       // Update or Close called from inside an Update's function
	CodeSidecars   = walerr.SidecarsFull // every sidecar name for one offset is taken by different bytes
	CodeIdentity   = walerr.Identity     // a rewrite cannot keep the database file's identity
	CodeRewritten  = walerr.Rewritten    // an incremental backup's base was rewritten away
)

// Sentinels, one per code, for errors.Is. Every error the database returns for one of these
// conditions is an *Error that matches its sentinel and unwraps to its cause.
var (
	ErrLocked     = walerr.ErrLocked
	ErrFailed     = walerr.ErrFailed
	ErrReadOnly   = walerr.ErrReadOnly
	ErrTxTooLarge = walerr.ErrTxTooLarge
	ErrClosed     = walerr.ErrClosed
	ErrNested     = walerr.ErrNested
	ErrSidecars   = walerr.ErrSidecarsFull
	ErrIdentity   = walerr.ErrIdentity
	ErrRewritten  = walerr.ErrRewritten
)

// Error is the one error type of the database and of recovery (walerr.Error, also
// recovery.Error): a stable Code, the file (Path) and the Offset it concerns, what happened
// (Detail), what to do (Hint) and the cause (Err). Match it with errors.Is against a sentinel
// (ErrLocked, recovery.ErrCorruptWAL) or errors.As to read its fields.
type Error = walerr.Error

func newError(code Code, path, detail string, cause error) *Error {
	return &Error{Code: code, Path: path, Offset: -1, Detail: detail, Err: cause}
}

// CodeOf returns the code of the first *Error in err's chain (a database code, "LOCKED", ...,
// or a recovery code, "CORRUPT_WAL", ...), or "" when there is none.
func CodeOf(err error) Code { return walerr.CodeOf(err) }
