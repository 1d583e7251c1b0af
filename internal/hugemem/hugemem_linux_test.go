package hugemem

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// vmFlags returns the VmFlags of the mapping that holds address p, from /proc/self/smaps.
func vmFlags(t *testing.T, p uintptr) []string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := strings.Cut(strings.Fields(line)[0], "-"); ok && strings.Count(line, " ") >= 4 {
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(p) >= a && uint64(p) < b
			continue
		}
		if rest, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return strings.Fields(rest)
		}
	}
	t.Fatalf("no mapping holds %#x", p)
	return nil
}

func advised(t *testing.T, p uintptr) bool {
	for _, f := range vmFlags(t, p) {
		if f == "hg" { // MADV_HUGEPAGE
			return true
		}
	}
	return false
}

// The memory Alloc hands out really is advised for huge pages (the hg flag of its mapping),
// where huge pages are offered.
func TestMemoryIsAdvisedForHugePages(t *testing.T) {
	if !offered() {
		t.Skip("no transparent huge pages offered here")
	}
	b := Alloc(4 * Page)
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	inner := (p + Page - 1) &^ (Page - 1) // the first whole huge page inside b
	if !advised(t, inner) {
		t.Fatalf("Alloc(%d) at %#x: its huge page at %#x is not advised", len(b), p, inner)
	}
}
