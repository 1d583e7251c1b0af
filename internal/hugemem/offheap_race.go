//go:build race || invariants || pool_heap || pool_hugeheap

package hugemem

// In race and invariants builds buffers stay on the Go heap, where the race detector sees them
// (this package's own tests turn it on to test it). The pool_heap and pool_hugeheap builds
// (measurement only: scripts/pool-alloc.sh) keep them on the Go heap too.
var offHeap = false
