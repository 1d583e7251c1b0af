package source_test

import (
	"testing"

	"github.com/streamwal/recovery/classify"
	"github.com/streamwal/recovery/format"
	"github.com/streamwal/recovery/source"
)

func header(layout format.Layout, n, crc uint32) []byte {
	h := make([]byte, layout.HeaderSize())
	format.PutHeader(h, layout, n, crc)
	return h
}

func TestCheck(t *testing.T) {
	const maxRecord = 1000
	off := format.LayoutV1.FirstRecord()
	hv1 := int64(format.LayoutV1.HeaderSize())
	selfBad := header(format.LayoutV1, 100, 7)
	selfBad[0] ^= 1 // the length no longer matches its own checksum

	for _, c := range []struct {
		name    string
		layout  format.Layout
		size    int64
		head    []byte
		trouble classify.Trouble
	}{
		{"v1 good", format.LayoutV1, off + hv1 + 100, header(format.LayoutV1, 100, 7), 0},
		{"v1 self-checksum", format.LayoutV1, off + hv1 + 100, selfBad, classify.Damaged},
		{"v1 zero length", format.LayoutV1, off + hv1 + 100, header(format.LayoutV1, 0, 7), classify.Damaged},
		{"v1 past the end", format.LayoutV1, off + hv1 + 99, header(format.LayoutV1, 100, 7), classify.Torn},
		{"v1 too large", format.LayoutV1, off + hv1 + 5000, header(format.LayoutV1, maxRecord+1, 7), classify.TooLarge},
		{"legacy good", format.LayoutLegacy, 8 + 100, header(format.LayoutLegacy, 100, 7), 0},
		{"legacy past the end", format.LayoutLegacy, 8 + 99, header(format.LayoutLegacy, 100, 7), classify.Damaged},
		{"legacy too large", format.LayoutLegacy, 8 + 5000, header(format.LayoutLegacy, maxRecord+1, 7), classify.LegacyOversize},
	} {
		at := off
		if c.layout == format.LayoutLegacy {
			at = 0
		}
		l, crc, tr, detail := source.Check(c.layout, maxRecord, c.size, at, c.head)
		if tr != c.trouble || (tr == 0) != (detail == "") {
			t.Errorf("%s: trouble %v (%q), want %v", c.name, tr, detail, c.trouble)
		}
		if tr == 0 && (l != 100 || crc != 7) {
			t.Errorf("%s: length %d, crc %d; want 100, 7", c.name, l, crc)
		}
	}
}
