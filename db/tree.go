package db

import (
	"bytes"

	"github.com/tidwall/btree"
)

// The store is an ordered in-memory map on github.com/tidwall/btree's generic BTreeG.
//
// Why that library: its Copy is an O(1) copy-on-write snapshot (no node copied until one side
// writes), which is exactly what a transaction needs: a writer copies the committed tree and
// mutates the copy (read-your-writes for free, abort is dropping it), and a reader keeps
// whatever tree was published when it began, untouched by later commits, because no node
// reachable from a published tree is ever written again. It stores items by value in its
// nodes, has no dependencies, is maintained and widely used, and it has Load, a bulk load of
// sorted items: Open builds the tree from tens of thousands of sorted pairs, and Load takes
// a third of the time inserting them one by one takes (docs/design.md, decision record "The
// store's tree"). Locking is off (Options.NoLocks): the store orders its own writers, and readers
// only read published trees, which no method of the library mutates on a read.
//
// A tree is never mutated once published (DB.pub), kept as the writers' base (DB.w), or
// handed to an iterator; see db.go and tx.go.

// degree of the B-tree: nodes of up to 63 items. Degrees 8, 32 and 64 measured within 10% of
// each other on overwrite-heavy inserts; 32 is the libraries' customary choice.
const degree = 32

// item is one key-value pair. Key and value live in one slice, kv = key ++ value, so a set
// costs one copy into one allocation (or one arena carve).
type item struct {
	kv   []byte
	klen uint32
}

func (it item) key() []byte   { return it.kv[:it.klen:it.klen] }
func (it item) value() []byte { return it.kv[it.klen:] }

// probe is a search key: an item with no value.
func probe(key []byte) item { return item{kv: key, klen: uint32(len(key))} }

// less orders keys by unsigned byte-lexicographic comparison.
func less(a, b item) bool { return bytes.Compare(a.key(), b.key()) < 0 }

// tree is the store's B-tree, with the few operations the store uses.
type tree struct{ t *btree.BTreeG[item] }

func newTree() *tree {
	return &tree{btree.NewBTreeGOptions(less, btree.Options{Degree: degree, NoLocks: true})}
}

// Clone is an O(1) copy-on-write snapshot: t and the clone may each be written afterwards
// without the other seeing it.
func (t *tree) Clone() *tree { return &tree{t.t.Copy()} }

func (t *tree) Get(key item) (item, bool)                          { return t.t.Get(key) }
func (t *tree) ReplaceOrInsert(it item) (item, bool)               { return t.t.Set(it) }
func (t *tree) Delete(key item) (item, bool)                       { return t.t.Delete(key) }
func (t *tree) Len() int                                           { return t.t.Len() }
func (t *tree) Ascend(fn func(item) bool)                          { t.t.Scan(fn) }
func (t *tree) AscendGreaterOrEqual(from item, fn func(item) bool) { t.t.Ascend(from, fn) }

// AscendRange visits the items with from <= key < to.
func (t *tree) AscendRange(from, to item, fn func(item) bool) {
	t.t.Ascend(from, func(it item) bool { return less(it, to) && fn(it) })
}

// load adds it, which must sort after every item in t, faster than ReplaceOrInsert.
func (t *tree) load(it item) { t.t.Load(it) }

// ownedItem copies key and value into one fresh allocation the store owns (the commit path:
// a commit is one fsync, so one allocation per set is noise there).
func ownedItem(key, value []byte) item {
	kv := make([]byte, len(key)+len(value))
	copy(kv, key)
	copy(kv[len(key):], value)
	return item{kv: kv, klen: uint32(len(key))}
}
