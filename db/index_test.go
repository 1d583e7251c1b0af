package db

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"
)

// The index agrees with a map through random sets and deletes, with a good hash and with
// hashes that collide (every key on a few tags, so probes walk long runs of other keys and of
// tombstones), short keys, keys at the inline limit and long ones, through growth and the
// rebuilds that clear tombstones.
func TestIndexAgreesWithAMap(t *testing.T) {
	seed := maphash.MakeSeed()
	hashes := map[string]func([]byte) uint32{
		"maphash":   func(k []byte) uint32 { return uint32(maphash.Bytes(seed, k)) },
		"colliding": func(k []byte) uint32 { return uint32(len(k) % 3) }, // tags 0, 1 and 2 all become 2, 3, 2
		"one tag":   func([]byte) uint32 { return 7 },
	}
	for name, hash := range hashes {
		t.Run(name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 3))
			ix := newIndex(0)
			want := map[string]int64{}
			keys := 400
			if name != "maphash" {
				keys = 60 // every probe walks all of them
			}
			for step := range 40000 {
				k := []byte(fmt.Sprintf("%0*d", []int{1, 8, inlineKey, inlineKey + 1, 70}[rng.IntN(5)], rng.IntN(keys)))
				h := hash(k)
				switch rng.IntN(3) {
				case 0:
					e := ix.find(h, k)
					if _, ok := want[string(k)]; ok != (e != nil) {
						t.Fatalf("step %d: find(%q) = %v, want present %v", step, k, e != nil, ok)
					}
					if e != nil {
						ix.remove(e)
						delete(want, string(k))
					}
				default:
					e, added := ix.upsert(h, k)
					if _, ok := want[string(k)]; ok == added {
						t.Fatalf("step %d: upsert(%q) added %v, but present %v", step, k, added, ok)
					}
					e.voff = int64(step)
					want[string(k)] = int64(step)
				}
				if ix.n != len(want) {
					t.Fatalf("step %d: %d keys, want %d", step, ix.n, len(want))
				}
			}
			seen := 0
			for i := range ix.tab {
				e := &ix.tab[i]
				if e.tag < 2 {
					continue
				}
				seen++
				k := ix.keyOf(e)
				if v, ok := want[string(k)]; !ok || v != e.voff {
					t.Fatalf("entry %q=%d, want %d (present %v)", k, e.voff, v, ok)
				}
				if f := ix.find(hash(k), bytes.Clone(k)); f != e {
					t.Fatalf("find(%q) does not reach its entry", k)
				}
			}
			if seen != len(want) {
				t.Fatalf("%d live entries, want %d", seen, len(want))
			}
			if live := len(ix.long) - len(ix.freeL); live > len(want) {
				t.Fatalf("%d long keys held for %d keys: deleted ones are not given back", live, len(want))
			}
		})
	}
}
