package hugemem

import "testing"

func TestAllocShape(t *testing.T) {
	for _, n := range []int{0, 1, 4 << 10, Page - 1, Page, Page + 1, 3*Page + 12345, 8 * Page} {
		b := Alloc(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i, c := range b {
			if c != 0 {
				t.Fatalf("Alloc(%d)[%d] = %d, want zeroed memory", n, i, c)
			}
		}
		// Writable to its last byte, and an append reallocates.
		if n > 0 {
			b[0], b[n-1] = 1, 2
			c := append(b, 3)
			if &c[0] == &b[0] {
				t.Fatalf("Alloc(%d): append wrote in place", n)
			}
		}
	}
}
