#!/usr/bin/env bash
# The deep sweeps: the suites the README's `go test -race ./...` runs at a newcomer's breadth,
# run deep. CI runs this after the README's command (.ci/run).
#
#   scripts/deep.sh                          # everything below
#   DEEP_RANDOM_LOGS=50000 DEEP_DST_SEEDS=50000 DEEP_FUZZTIME=10m scripts/deep.sh
#   DEEP_CRASH=30m DEEP_CRASH_TIMEOUT=40m scripts/deep.sh   # a longer soak needs a longer -timeout
#
# Time budget: 40 minutes on the 2-core development VM, where it took 16m28s with nothing else
# running (docs/testing.md). Each step has its own -timeout, well above what it takes, so that a hang fails with the stacks printed. The
# steps, in order:
#   1. race detector on, WALREC_DEEP=1 (internal/testdepth): ./tests, ./tests/dst, ./tests/oracle
#      and ./db at their deep size: 3,000 random logs through every pipeline configuration in
#      every mode, 1,000 simulation seeds per profile, every bit of an 8-record log flipped, the heap check
#      on a 512 MiB log, 64 MiB logs of the smallest records, the database's loader against a
#      map on 200 logs, every prefix of the kernel's fixtures but the largest;
#   2. without the race detector (several times faster, and the build programs run): 20,000
#      random logs (RANDOM_LOGS) and 10,000 simulation seeds (DST_SEEDS);
#   3. the real SIGKILL crash test as a soak (CRASH_DURATION, 2 minutes);
#   4. fuzzing against the oracle, every configuration (3 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
random_logs=${DEEP_RANDOM_LOGS:-20000}
dst_seeds=${DEEP_DST_SEEDS:-10000}
crash=${DEEP_CRASH:-2m}
fuzztime=${DEEP_FUZZTIME:-3m}

step() { echo "== deep: $* ($(date -u +%H:%M:%S) UTC)"; }
start=$(date +%s)

step "1/4 race, WALREC_DEEP=1: ./tests ./tests/dst ./tests/oracle ./db"
WALREC_DEEP=1 go test -race -count=1 -timeout 40m ./tests/ ./tests/dst/ ./tests/oracle/ ./db/ .

step "2/4 no race: $random_logs random logs, $dst_seeds simulation seeds"
RANDOM_LOGS=$random_logs go test -count=1 -timeout 25m -run '^TestRandomLogsAllConfigs$' ./tests/
DST_SEEDS=$dst_seeds go test -count=1 -timeout 25m -run '^TestSimulation$' ./tests/dst/

step "3/4 SIGKILL crash soak, $crash"
CRASH_DURATION=$crash go test -count=1 -timeout "${DEEP_CRASH_TIMEOUT:-10m}" -run '^TestSIGKILL$' -v ./tests/crash/

step "4/4 fuzzing FuzzRecover for $fuzztime"
go test -run '^$' -fuzz '^FuzzRecover$' -fuzztime "$fuzztime" -fuzzminimizetime 5s ./tests/

step "done in $(( ($(date +%s) - start) / 60 )) min $(( ($(date +%s) - start) % 60 )) s"
