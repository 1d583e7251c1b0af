package panics

import (
	"errors"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
)

//go:noinline
func explode() { panic(io.ErrUnexpectedEOF) }

// A panic on another goroutine comes back on the waiting one as a *Recovered whose stack names
// the function that panicked, and that unwraps to the value.
func TestRepanicCarriesTheOriginalStack(t *testing.T) {
	var c Catcher
	var wg sync.WaitGroup
	faults := 0
	for i := range 4 {
		wg.Go(func() {
			c.Try(func() {
				if i == 2 {
					explode()
				}
			}, func() { faults++ })
		})
	}
	wg.Wait()
	if !c.Caught() || faults != 1 {
		t.Fatalf("caught %v, faults %d", c.Caught(), faults)
	}
	defer func() {
		v := recover()
		r, ok := v.(*Recovered)
		if !ok {
			t.Fatalf("raised %T %v, want *Recovered", v, v)
		}
		if !strings.Contains(string(r.Stack), "panics.explode") || !strings.Contains(r.Error(), "panics.explode") {
			t.Fatalf("the stack does not name the function that panicked:\n%s", r.Stack)
		}
		if !errors.Is(r, io.ErrUnexpectedEOF) || r.Value != io.ErrUnexpectedEOF {
			t.Fatalf("value %v", r.Value)
		}
	}()
	c.Repanic()
	t.Fatal("Repanic returned")
}

// A Goexit on a goroutine is raised again as a Goexit on the waiting one, and Try does not
// return there: the goroutine goes on exiting.
func TestRepanicGoexit(t *testing.T) {
	var c Catcher
	returned := false
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Try(runtime.Goexit, nil)
		returned = true
	}()
	<-done
	if returned || !c.Caught() {
		t.Fatalf("returned %v, caught %v", returned, c.Caught())
	}
	exited := make(chan bool)
	go func() {
		normal := false
		defer func() { exited <- !normal }()
		c.Repanic()
		normal = true
	}()
	if !<-exited {
		t.Fatal("Repanic of a Goexit returned")
	}
}

// Nothing recorded: Repanic does nothing, Try returns true.
func TestNothingCaught(t *testing.T) {
	var c Catcher
	if !c.Try(func() {}, nil) || c.Caught() {
		t.Fatal("a normal return was recorded")
	}
	c.Repanic()
}

// A panic raised again through two hand-offs keeps the stack of its origin.
func TestWrapKeepsTheFirstStack(t *testing.T) {
	first := Wrap("x")
	if Wrap(first) != first {
		t.Fatal("a *Recovered was wrapped again")
	}
}
