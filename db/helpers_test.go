package db_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/streamwal/recovery/db"
	kernel "github.com/streamwal/recovery/internal/fixtures"
)

// Recovery's parallel pipeline starts goroutines on Open: none may outlive it.
// testChildren are the child processes tests start (this binary, re-executed), by the name
// DB_TEST_CHILD gives.
var testChildren = map[string]func() int{}

// DB_TEST_CHILD makes the binary a child process of a test instead.
func TestMain(m *testing.M) {
	if child := testChildren[os.Getenv("DB_TEST_CHILD")]; child != nil {
		os.Exit(child())
	}
	goleak.VerifyTestMain(m)
}

// kv is one pair of a state, in a form that prints and compares.
type kv struct{ K, V string }

// state reads the whole committed state.
func state(t testing.TB, d *db.DB) []kv {
	t.Helper()
	var out []kv
	if err := d.View(func(tx *db.Tx) error {
		for k, v := range tx.Range(nil, nil) {
			out = append(out, kv{string(k), string(v)})
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// model is the expected state: a map, sorted on demand.
type model map[string]string

func (m model) sorted() []kv {
	var out []kv
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	slices.SortFunc(out, func(a, b kv) int { return strings.Compare(a.K, b.K) })
	return out
}

func mustOpen(t testing.TB, path string, opts ...db.Option) *db.DB {
	t.Helper()
	d, err := db.Open(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustUpdate(t testing.TB, d *db.DB, fn func(*db.Tx) error) {
	t.Helper()
	if err := d.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func set(t testing.TB, d *db.DB, k, v string) {
	t.Helper()
	mustUpdate(t, d, func(tx *db.Tx) error { return tx.Set([]byte(k), []byte(v)) })
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ---- the TypeScript kernel's fixtures (testdata/kernel, through internal/fixtures) ----

type fixture struct{ kernel.Fixture }

func (f fixture) state(t testing.TB) []kv {
	var out []kv
	for _, p := range f.Pairs(t) {
		out = append(out, kv{string(p.Key), string(p.Value)})
	}
	return out
}

// fixtures is testdata/kernel and every fixture listed there; missing fixtures fail the test.
func fixtures(t *testing.T) (dir string, all []fixture) {
	t.Helper()
	dir, list := kernel.Load(t)
	for _, f := range list {
		all = append(all, fixture{f})
	}
	return dir, all
}

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, readFile(t, from), 0o644); err != nil {
		t.Fatal(err)
	}
}
