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

// advise asks for huge pages on the whole huge pages inside b. Only a hint: if the kernel
// refuses it, b is ordinary memory.
func advise(b []byte) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := int(-p & (Page - 1))
	hi := lo + (len(b)-lo)&^(Page-1)
	if hi > lo {
		_ = unix.Madvise(b[lo:hi], unix.MADV_HUGEPAGE)
	}
}
