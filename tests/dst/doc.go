// Package dst is the deterministic simulation suite of the database (db/): one integer
// seed drives a workload of transactions against the real engine on the simulated filesystem
// (db/simfs), an independent model (a map and a sort, sharing no code with the engine) tracks
// what was committed, then a crash, fault or corruption is injected and the database is
// reopened, at parallelism 1 and 4, and checked against the model and the rule of evidence.
//
//	go test ./tests/dst                                  # 50 seeds x every profile
//	WALREC_DEEP=1 go test ./tests/dst                    # 1,000 seeds (scripts/deep.sh)
//	DST_SEEDS=10000 go test ./tests/dst -timeout 2h      # a soak
//	DST_SEED=123 go test ./tests/dst -run TestSimulation -v   # replay one seed
//	DST_SEED=123 DST_PROFILE=torn go test ./tests/dst -run TestSimulation -v
//
// The suite is all in _test.go files; this file only names the package.
package dst
