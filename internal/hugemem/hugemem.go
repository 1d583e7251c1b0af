// Package hugemem allocates large byte slices that the kernel can back with transparent huge
// pages.
//
// Why: recovery's buffers and the database's arena are megabytes of fresh memory touched once.
// The first touch of each fresh 4 KiB page is a page fault, and on the VMs this project is
// measured on a fault costs about 10 µs (the hypervisor takes part in it): 2.5 ms per MiB,
// more than it takes to read and checksum that MiB. A 2 MiB transparent huge page is one fault
// (about 120 µs, most of it zeroing the page), so the same MiB costs about 60 µs.
//
// The memory is ordinary Go memory (make): the garbage collector owns it, a slice kept too long
// is never a dangling pointer, and nothing has to be freed. On Linux, when the kernel offers
// transparent huge pages to memory that asks for them (/sys/kernel/mm/transparent_hugepage/
// enabled is "always" or "madvise"), Alloc aligns the slice to a huge page and advises its whole
// huge pages MADV_HUGEPAGE before anything touches them. Elsewhere Alloc is make.
package hugemem

// Page is the transparent huge page size Alloc aligns to: 2 MiB, the PMD size of amd64 and of
// arm64 with 4 KiB base pages (Alloc does nothing special where the kernel reports another).
const Page = 2 << 20

// Alloc returns a zeroed slice of length and capacity n.
//
// When n is at least Page and huge pages are offered, the slice starts on a Page boundary and
// its whole Pages are advised for huge pages. The allocation behind it is then up to Page
// bytes larger than n; those bytes are never touched, so they are address space, not
// resident memory.
func Alloc(n int) []byte {
	if n < Page || !offered() {
		return make([]byte, n)
	}
	return alloc(n)
}

// Offered reports whether Alloc can back memory with huge pages here.
func Offered() bool { return offered() }
