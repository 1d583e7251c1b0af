package recovery

import "github.com/streamwal/recovery/internal/panics"

// Panic is the value a panic in a caller's callback (a ReadAt, a stream's Read, an Applier, a
// Preparer) is raised again with on the caller's goroutine, by Recover, RecoverStream and the
// database (db.Open reads
// the store back on goroutines of its own): Value is what was passed to panic, Stack the stack
// of the goroutine where it happened, and Error prints both, so a program that dies of it
// shows where it began. recover() gets a *Panic; errors.Is and errors.As see through it to a
// Value that is an error. A runtime.Goexit is raised again as a Goexit.
type Panic = panics.Recovered
