package hugemem

import (
	"bytes"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

var offered = sync.OnceValue(func() bool {
	enabled, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !(bytes.Contains(enabled, []byte("[always]")) || bytes.Contains(enabled, []byte("[madvise]"))) {
		return false
	}
	size, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size")
	return err == nil && string(bytes.TrimSpace(size)) == "2097152"
})

func alloc(n int) []byte {
	m := make([]byte, n+Page) // a fresh large object: the runtime does not touch it
	pad := int(-uintptr(unsafe.Pointer(unsafe.SliceData(m))) & (Page - 1))
	b := m[pad : pad+n : pad+n]
	// Only a hint: if the kernel refuses it, b is ordinary memory.
	_ = unix.Madvise(b[:n&^(Page-1)], unix.MADV_HUGEPAGE)
	return b
}
