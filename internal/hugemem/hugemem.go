// Package hugemem allocates large byte slices that the kernel can back with transparent huge
// pages.
//
// Why: recovery's buffers and the database's arena are megabytes of fresh memory touched once.
// The first touch of each fresh 4 KiB page is a page fault, and on the VMs this project is
// measured on a fault costs about 10 µs (the hypervisor takes part in it): 2.5 ms per MiB,
// more than it takes to read and checksum that MiB. A 2 MiB transparent huge page is one fault
// (about 120 µs, most of it zeroing the page), so the same MiB costs about 60 µs.
//
// Alloc's memory is ordinary Go memory (make): the garbage collector owns it, a slice kept too
// long is never a dangling pointer, and nothing has to be freed. On Linux, when the kernel
// offers transparent huge pages to memory that asks for them (/sys/kernel/mm/
// transparent_hugepage/enabled is "always" or "madvise"), Alloc advises the huge pages that lie
// wholly inside the slice MADV_HUGEPAGE before anything touches them. Elsewhere Alloc is make.
//
// (Recovery's pooled buffers once lived outside the Go heap, in mappings of this package's;
// measured against the Go heap, plain and advised for huge pages, they won nowhere by the 10 %
// that would have paid for memory GOMEMLIMIT and pprof do not see, and were removed:
// docs/design.md, "Who owns each buffer".)
package hugemem

// Page is the transparent huge page size: 2 MiB, the PMD size of amd64 and of arm64 with 4 KiB
// base pages (nothing is advised where the kernel reports another).
const Page = 2 << 20

// Alloc returns a zeroed slice of length and capacity n from the Go heap, exactly n bytes (the
// heap's accounting sees no more). The whole huge pages inside it are advised for huge pages:
// for n of a few Pages, most of it (the rest, less than a Page at each end, is ordinary pages).
func Alloc(n int) []byte {
	b := make([]byte, n) // a large object: fresh from the OS, the runtime does not touch it
	if n >= 2*Page && offered() {
		advise(b)
	}
	return b
}

// Offered reports whether huge pages are offered here.
func Offered() bool { return offered() }
