// Package workload generates realistic transactions, the same for the same seed: the log of
// walrec demo, and of the database's open benchmarks.
package workload

import (
	"fmt"
	"math/rand/v2"

	"github.com/streamwal/recovery/format"
)

// Shop makes realistic transactions for a small shop: orders (each also updating its
// customer and a counter, and expiring an old order), profile updates, logins and logouts,
// and now and then a bulk catalogue import. Values are JSON documents of a few hundred bytes
// to a few KiB; keys live in bounded key spaces, so later transactions overwrite and delete
// earlier ones, as in a real log.
type Shop struct {
	rng       *rand.Rand
	nextOrder int64
	payload   []byte
	val       []byte
}

const (
	demoUsers    = 20_000
	demoItems    = 20_000
	demoSessions = 5_000
	orderWindow  = 20_000 // orders kept; older ones are deleted
)

var lorem = []byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " +
	"incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation " +
	"ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in " +
	"voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non " +
	"proident, sunt in culpa qui officia deserunt mollit anim id est laborum. ")

// NewShop returns the generator for seed: the same seed, the same transactions.
func NewShop(seed uint64) *Shop {
	return &Shop{rng: rand.New(rand.NewPCG(seed, 0xdeadbeefcafe))}
}

// text appends n bytes of lorem ipsum, starting somewhere, to w.val.
func (w *Shop) text(n int) {
	for end := len(w.val) + n; len(w.val) < end; {
		i := w.rng.IntN(len(lorem))
		w.val = append(w.val, lorem[i:min(len(lorem), i+end-len(w.val))]...)
	}
}

func (w *Shop) set(key, value []byte) { w.payload = format.AppendSet(w.payload, key, value) }

func (w *Shop) profile(u int) {
	w.val = w.val[:0]
	w.val = fmt.Appendf(w.val, `{"id":%d,"name":"customer %d","email":"c%d@example.com","plan":"%s","visits":%d,"bio":"`,
		u, u, u, []string{"free", "pro", "team"}[w.rng.IntN(3)], w.rng.IntN(100000))
	w.text(150 + w.rng.IntN(600))
	w.val = append(w.val, `"}`...)
	w.set(fmt.Appendf(nil, "user:%06d", u), w.val)
}

// Tx returns the next transaction's payload (valid until the next call).
func (w *Shop) Tx() []byte {
	w.payload = w.payload[:0]
	r := w.rng
	switch x := r.IntN(100); {
	case x < 45: // an order
		id := w.nextOrder
		w.nextOrder++
		u := r.IntN(demoUsers)
		w.val = fmt.Appendf(w.val[:0], `{"order":%d,"user":%d,"items":[`, id, u)
		for i := range 1 + r.IntN(8) {
			if i > 0 {
				w.val = append(w.val, ',')
			}
			w.val = fmt.Appendf(w.val, `{"sku":"item:%06d","qty":%d,"cents":%d}`, r.IntN(demoItems), 1+r.IntN(4), 100+r.IntN(50000))
		}
		w.val = append(w.val, `],"note":"`...)
		w.text(200 + r.IntN(1200))
		w.val = append(w.val, `"}`...)
		w.set(fmt.Appendf(nil, "order:%010d", id), w.val)
		w.profile(u)
		w.set([]byte("counter:orders"), fmt.Appendf(nil, "%d", id+1))
		if id >= orderWindow {
			w.payload = format.AppendDelete(w.payload, fmt.Appendf(nil, "order:%010d", id-orderWindow))
		}
	case x < 75: // a profile update
		w.profile(r.IntN(demoUsers))
	case x < 95: // a login and a logout
		w.val = fmt.Appendf(w.val[:0], `{"user":%d,"token":"%016x%016x","agent":"Mozilla/5.0 (X11; Linux x86_64)"}`,
			r.IntN(demoUsers), r.Uint64(), r.Uint64())
		w.set(fmt.Appendf(nil, "session:%05d", r.IntN(demoSessions)), w.val)
		w.payload = format.AppendDelete(w.payload, fmt.Appendf(nil, "session:%05d", r.IntN(demoSessions)))
	default: // a bulk catalogue import
		for range 20 + r.IntN(180) {
			i := r.IntN(demoItems)
			w.val = fmt.Appendf(w.val[:0], `{"sku":"item:%06d","cents":%d,"stock":%d,"description":"`, i, 100+r.IntN(50000), r.IntN(1000))
			w.text(100 + r.IntN(1000))
			w.val = append(w.val, `"}`...)
			w.set(fmt.Appendf(nil, "item:%06d", i), w.val)
		}
	}
	return w.payload
}
