// Package panics carries a panic, or a runtime.Goexit, from the goroutine where it happened
// to the goroutine that waits for that one, with the stack of the goroutine where it happened.
//
// A panic in a caller's callback (a ReadAt, an Applier, a Preparer) that runs on one of
// recovery's goroutines must not kill the process from there: that goroutine's owner waits
// for it, and the panic is raised again on the caller's goroutine, where the caller's
// deferred cleanup runs and its own recover can see it. Raised again as it was, the value
// would lose the stack that says where it happened; raised as a *Recovered, it keeps it.
package panics

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
)

// Recovered is a panic caught on one goroutine, to be raised again on another.
type Recovered struct {
	// Value is what was passed to panic.
	Value any
	// Stack is the stack of the goroutine that panicked, taken where the panic was caught
	// (the frames of the panic's origin are in it).
	Stack []byte
}

// Error says what the panic was and where it happened: the value, then the original
// goroutine's stack, so that a program that dies of it prints both.
func (r *Recovered) Error() string {
	return fmt.Sprintf("panic: %v [recovered and raised again on the waiting goroutine]\n\noriginal stack:\n%s", r.Value, r.Stack)
}

// Unwrap returns the value when it is an error, so errors.Is and errors.As see through.
func (r *Recovered) Unwrap() error {
	err, _ := r.Value.(error)
	return err
}

// Catcher records the first panic or runtime.Goexit among the functions it runs. The zero
// value is ready to use; it is safe for concurrent use.
type Catcher struct {
	mu     sync.Mutex
	caught bool
	goexit bool
	r      *Recovered
}

// Try runs fn. When fn returns normally, so does Try, with true. When fn panics, Try records
// the panic (the first one only, with its stack) and returns false. When fn calls
// runtime.Goexit, Try records that (if it is the first) and the goroutine goes on exiting:
// Try does not return, but the deferred calls of its caller run. onFault, if not nil, runs
// after a panic or Goexit is recorded (to stop the other goroutines early).
func (c *Catcher) Try(fn func(), onFault func()) (ok bool) {
	normal := false
	defer func() {
		if normal {
			return
		}
		v := recover() // nil for runtime.Goexit (a panic(nil) is a *runtime.PanicNilError)
		c.mu.Lock()
		if !c.caught {
			c.caught = true
			if v == nil {
				c.goexit = true
			} else {
				c.r = Wrap(v)
			}
		}
		c.mu.Unlock()
		if onFault != nil {
			onFault()
		}
	}()
	fn()
	normal = true
	return true
}

// Caught reports whether Try recorded a panic or a Goexit.
func (c *Catcher) Caught() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.caught
}

// Repanic raises what Try recorded on the calling goroutine: a panic as a *Recovered (the
// value with its original stack), a Goexit as runtime.Goexit. It does nothing when nothing was
// recorded.
func (c *Catcher) Repanic() {
	c.mu.Lock()
	caught, goexit, r := c.caught, c.goexit, c.r
	c.mu.Unlock()
	switch {
	case !caught:
	case goexit:
		runtime.Goexit()
	default:
		panic(r)
	}
}

// Wrap makes v a *Recovered with the current goroutine's stack; a v that is a *Recovered
// already (a panic raised again through more than one hand-off) is returned as it is, so that
// it keeps the stack of its origin. Call it in the deferred function that recovered v.
func Wrap(v any) *Recovered {
	if r, ok := v.(*Recovered); ok {
		return r
	}
	return &Recovered{Value: v, Stack: debug.Stack()}
}
