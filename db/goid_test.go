package db

import (
	"sync"
	"testing"
)

// The fast goroutine id agrees with the stack's on this Go release, on many goroutines at
// once (if it did not, init would have fallen back to the stack's, and nested-call detection
// would still work, only slower).
func TestGoidIsTheStacksGoid(t *testing.T) {
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if a, b := goid(), stackGoid(); a != b || a <= 0 {
				t.Errorf("goid %d, stack %d", a, b)
			}
		})
	}
	wg.Wait()
}

func BenchmarkGoid(b *testing.B) {
	for b.Loop() {
		goid()
	}
}

func BenchmarkStackGoid(b *testing.B) {
	for b.Loop() {
		stackGoid()
	}
}
