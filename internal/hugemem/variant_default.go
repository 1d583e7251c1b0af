//go:build !pool_hugeheap

package hugemem

// hugeHeap is set only in pool_hugeheap builds (variant_hugeheap.go).
const hugeHeap = false

func heapGet(int) ([]byte, bool) { return nil, false }

func heapPut([]byte) bool { return false }

func heapTake(int) ([]byte, bool) { return nil, false }
