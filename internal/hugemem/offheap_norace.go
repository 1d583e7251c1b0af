//go:build !race && !invariants && !pool_heap && !pool_hugeheap

package hugemem

var offHeap = true
