//go:build !race && !invariants

package hugemem

var offHeap = true
