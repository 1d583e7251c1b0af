package db_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/streamwal/recovery"
	"github.com/streamwal/recovery/db"
	"github.com/streamwal/recovery/db/simfs"
)

// Random transactions against a plain map, with reopens between them: keys of every length
// around the index's limits (empty, the prepared-key limit of 24 bytes and one past it, the
// inline limit of 32 and one past it, long ones), drawn from a small pool so that keys are
// overwritten, deleted and set again across records and within one; empty, small, large
// (past the read-back window) values, and transactions of many small values larger than the
// window. Every reopen (in one part or in several, at several parallelisms, read-only or not)
// equals the model, and the database keeps working after it.
func TestOpenAgreesWithAModelAcrossReopens(t *testing.T) {
	defer db.SetPartBytes(1 << 10)() // several parts even for a small store
	lengths := []int{0, 1, 7, 8, 23, 24, 25, 31, 32, 33, 64, 200}
	for seed := range uint64(6) {
		rng := rand.New(rand.NewPCG(seed, 77))
		fs := simfs.New(seed)
		pool := make([]string, 0, 40)
		for i := range cap(pool) {
			n := lengths[rng.IntN(len(lengths))]
			k := fmt.Sprintf("%d/%d-", i, n)
			k += string(bytes.Repeat([]byte{byte('a' + i%26)}, max(0, n-len(k))))
			if n < len(k) {
				k = k[:n] // short keys may coincide: more overwrites
			}
			pool = append(pool, k)
		}
		value := func() string {
			switch rng.IntN(40) {
			case 0:
				return ""
			case 1:
				return string(bytes.Repeat([]byte{byte(rng.Uint32())}, 256<<10+rng.IntN(5000))) // past the window
			default:
				return fmt.Sprintf("v%d", rng.Uint32()) + string(bytes.Repeat([]byte{'.'}, rng.IntN(300)))
			}
		}
		want := model{}
		d := mustOpen(t, "/db", db.WithFS(fs))
		for round := range 6 {
			for range 1 + rng.IntN(30) {
				mustUpdate(t, d, func(tx *db.Tx) error {
					ops := 1 + rng.IntN(6)
					if rng.IntN(30) == 0 {
						ops = 3000 // a record of many values, larger than the window
					}
					for range ops {
						k := pool[rng.IntN(len(pool))]
						if rng.IntN(3) == 0 {
							delete(want, k)
							if err := tx.Delete([]byte(k)); err != nil {
								return err
							}
							continue
						}
						v := value()
						if ops > 100 {
							v = fmt.Sprintf("%0150d", rng.Uint64())
						}
						want[k] = v
						if err := tx.Set([]byte(k), []byte(v)); err != nil {
							return err
						}
					}
					return nil
				})
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			par := []int{1, 2, 4}[rng.IntN(3)]
			if rng.IntN(3) == 0 { // a read-only look first
				ro := mustOpen(t, "/db", db.WithFS(fs), db.ReadOnly(), db.WithRecovery(recovery.WithParallelism(par)))
				compare(t, fmt.Sprintf("seed %d, round %d, read-only at %d", seed, round, par), state(t, ro), want)
				ro.Close()
			}
			d = mustOpen(t, "/db", db.WithFS(fs), db.WithRecovery(recovery.WithParallelism(par)))
			compare(t, fmt.Sprintf("seed %d, round %d, parallelism %d", seed, round, par), state(t, d), want)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func compare(t *testing.T, what string, got []kv, want model) {
	t.Helper()
	w := want.sorted()
	if len(got) != len(w) {
		t.Fatalf("%s: %d pairs, want %d", what, len(got), len(w))
	}
	for i := range got {
		if got[i] != w[i] {
			t.Fatalf("%s: pair %d is %q=%.40q, want %q=%.40q", what, i, got[i].K, got[i].V, w[i].K, w[i].V)
		}
	}
}
