// Package testdepth is the one switch between the default test run and the deep sweeps.
//
// The default run (`go test -race ./...`, the README's command) runs every suite at a breadth
// that fits a newcomer's machine and CI's first step; WALREC_DEEP=1 makes the suites that have a
// depth (random logs, simulation seeds, large-log memory checks) run deeper, as scripts/deep.sh
// does in CI. A suite's own knob (RANDOM_LOGS, DST_SEEDS, CRASH_DURATION, ...) still overrides
// both. No suite is skipped in the default run: only its size changes, so a bug that the deep
// run finds is one the default run can find too, only less often.
package testdepth

import (
	"os"
	"strings"
)

// Env is the variable that turns the deep sweeps on: WALREC_DEEP=1 (or true, yes, on).
const Env = "WALREC_DEEP"

// Deep reports whether WALREC_DEEP asks for the deep sweeps.
func Deep() bool {
	switch strings.ToLower(strings.TrimSpace(os.Getenv(Env))) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

// Pick returns deep when WALREC_DEEP is on, normal otherwise.
func Pick[T any](normal, deep T) T {
	if Deep() {
		return deep
	}
	return normal
}
