package dst

import (
	"sort"
	"strings"
)

// The model: what the database must hold. A plain map and a sort; it shares no code with the
// engine (no B-tree, no encoder, no iterator).
type model map[string]string

func (m model) clone() model {
	c := make(model, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// pair is one key-value pair, comparable and printable.
type pair struct{ K, V string }

// scan is the model's half-open range [start, end) in unsigned byte order (Go compares
// strings bytewise, unsigned); end == nil means no upper bound.
func (m model) scan(start string, end *string) []pair {
	var out []pair
	for k, v := range m {
		if k >= start && (end == nil || k < *end) {
			out = append(out, pair{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].K, out[j].K) < 0 })
	return out
}

func (m model) all() []pair { return m.scan("", nil) }

// op is one mutation of a transaction, as the model sees it.
type op struct {
	del  bool
	k, v string
}

func (m model) apply(ops []op) model {
	c := m.clone()
	for _, o := range ops {
		if o.del {
			delete(c, o.k)
		} else {
			c[o.k] = o.v
		}
	}
	return c
}

// payloadSize is the size of the record payload a transaction's ops make, per the format
// spec's op encoding (tag, u32 lengths): the model's own arithmetic, to predict TX_TOO_LARGE.
func payloadSize(ops []op) int64 {
	var n int64
	for _, o := range ops {
		n += 1 + 4 + int64(len(o.k))
		if !o.del {
			n += 4 + int64(len(o.v))
		}
	}
	return n
}

func equalPairs(a, b []pair) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
