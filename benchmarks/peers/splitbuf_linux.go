package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// splitBuffers returns k buffers of n bytes outside the Go heap, carved from one mapping aligned
// to a huge page and advised for huge pages (as this project's pool takes its buffers on
// Linux), and the function that unmaps it.
func splitBuffers(k, n int) ([][]byte, func()) {
	const page = 2 << 20
	m, err := unix.Mmap(-1, 0, k*n+page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return heapBuffers(k, n), func() {}
	}
	pad := int(-uintptr(unsafe.Pointer(unsafe.SliceData(m))) & (page - 1))
	body := m[pad : pad+k*n]
	_ = unix.Madvise(body, unix.MADV_HUGEPAGE)
	var bufs [][]byte
	for i := range k {
		bufs = append(bufs, body[i*n:(i+1)*n:(i+1)*n])
	}
	return bufs, func() { _ = unix.Munmap(m) }
}
