//go:build race || invariants

package hugemem

// In race and invariants builds buffers stay on the Go heap, where the race detector sees them
// (this package's own tests turn it on to test it).
var offHeap = false
