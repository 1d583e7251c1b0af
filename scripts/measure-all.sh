#!/usr/bin/env bash
# One measuring session, and docs/benchmarks.md written from it: every measurement in sequence
# (nothing else should run meanwhile: the machine's noise is bad enough), each step's raw output,
# exact command and exit status kept in $OUT, then scripts/benchdoc writes the whole page from
# them. The page is never edited by hand: run this again. A step that fails or leaves no output
# gets a "Not measured in this run" line on the page, never an old number.
#
#   scripts/measure-all.sh                  # the full run (see below); writes docs/benchmarks.md
#   QUICK=1 scripts/measure-all.sh          # smoke run of every step with tiny logs and counts
#                                           # (under a minute); writes $OUT/benchmarks.md only
#   OUT=/tmp/m STEPS="recover demo" scripts/measure-all.sh   # some steps only
#
# Counts: the full run took 5 minutes on the quiet 2-core VM with -count 3 everywhere; these
# took 6 min 48 s there (load 0.8 to 1.9), leaving room for the VM's slow patches within about
# 20 minutes. The Go
# benchmarks run -count 5 (BenchmarkRecover, 51 cases, at -benchtime 0.5s rather than the
# default 1s: 2 to 3 minutes), the stream and backup benchmarks -count 3
# (each alternates two rounds inside one run), walrec bench 7 fresh processes of one run each
# rather than one process's best of 5, walrec demo 5 processes, verify-vs-dd 25 rounds, the
# peers their default 5 replays and gc-pacing its default 7 rounds. The page gives medians.
#
# Environment: OUT (the raw outputs: a new or empty directory, default a new temporary one, kept
# and printed at the end), DOC (the page; default docs/benchmarks.md, with QUICK=1
# $OUT/benchmarks.md), QUICK=1, STEPS (space-separated step names; default all). Temporary logs
# (at most about 2 GiB at once, gc-pacing's) go to a directory in $TMPDIR that is removed when
# the script ends, also on Ctrl-C; TMPDIR points there for every step, so the benchmarks' own
# temporary files go there too. The peers run writes its results to $OUT/peers, not to
# benchmarks/peers.
set -u
cd "$(dirname "$0")/.."
repo=$(pwd)
quick=${QUICK:-0}
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/measure.XXXXXX")}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -n "$(ls -A "$out")" ]; then # the page must come from this run's outputs alone
	echo "measure-all.sh: OUT=$out is not empty; give a new or empty directory" >&2
	exit 2
fi
if [ "$quick" = 1 ]; then
	doc=${DOC:-$out/benchmarks.md}
else
	doc=${DOC:-docs/benchmarks.md}
fi
W=$(mktemp -d "${TMPDIR:-/tmp}/measure-logs.XXXXXX")
trap 'rm -rf "$W"' EXIT
trap 'exit 130' INT TERM
mkdir -p "$W/bin" "$W/tmp"
export TMPDIR=$W/tmp W OUT=$out
export PATH=$W/bin:$PATH
go build -o "$W/bin/walrec" ./cmd/walrec || exit 1

# x QUICK FULL: the value for this mode.
x() { if [ "$quick" = 1 ]; then echo "$1"; else echo "$2"; fi; }
env=$(x 'BENCH_LOG_MIB=16 ' '') deep=$(x '' 'WALREC_DEEP=1 ')
count=$(x 1 5) count2=$(x 1 3)

{
	echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "cores: $(nproc)"
	echo "memory: $(grep -m1 MemTotal /proc/meminfo | awk '{ print $2, $3 }')"
	echo "kernel: $(uname -sr)"
	echo "go: $(go version | sed 's/^go version //')"
	echo "thp: $(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?')"
	echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' 2>/dev/null || echo ' (with uncommitted changes)')"
	if [ "$quick" = 1 ]; then echo "command: QUICK=1 scripts/measure-all.sh"; else echo "command: scripts/measure-all.sh"; fi
	echo "start: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "load-start: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$out/machine.txt"
: >"$out/times"

want() { # the step gen (the walrec logs) goes with the steps that read its logs
	[ -z "${STEPS:-}" ] || [[ " $STEPS " == *" $1 "* ]] || { [ "$1" = gen ] && { want bench4k || want bench256 || want verifydd; }; }
}
# step NAME DIR COMMAND: runs COMMAND (a shell string, run with eval in DIR) with its output in
# $OUT/NAME.txt; the command as run goes to NAME.cmd, its exit status to NAME.rc.
step() {
	local name=$1 dir=$2 cmd=$3
	want "$name" || return 0
	echo "=== $name $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/times"
	printf '%s\n' "$cmd" >"$out/$name.cmd"
	rm -f "$out/$name.rc"
	(cd "$dir" && eval "$cmd") >"$out/$name.txt" 2>&1
	echo $? >"$out/$name.rc"
}

step recover "$repo" "${env}go test -run '^\$' -bench 'BenchmarkRecover' -benchtime $(x 1x 0.5s) -count $count ./pipeline/"
step tune "$repo" "${env}go test -run '^\$' -bench 'BenchmarkTune/size=(256B|4KiB)/read=(256|1024|2048|4096)KiB/par=(1|2)/depth=0' -benchtime $(x 1x 10x) -count $count ./pipeline/"
step applybatch "$repo" "go test -run '^\$' -bench ApplyBatch -benchtime $(x 100x 1s) -count $count ./internal/replay/"
gen=$(x 16MiB 512MiB)
step gen "$W" "walrec gen w4k.wal --size $gen --record-size 4KiB --quiet --force && walrec gen w256.wal --size $gen --record-size 256 --quiet --force && cat w4k.wal w256.wal >/dev/null"
loop="for i in \$(seq $(x 2 7)); do walrec bench"
step bench4k "$W" "$loop w4k.wal --parallelism 1,2,4,0 --runs 1 --json || exit; done"
step bench256 "$W" "$loop w256.wal --parallelism 1,2,4,0 --runs 1 --json || exit; done"
step verifydd "$repo" "LOG=\$W/w4k.wal ROUNDS=$(x 3 25) scripts/verify-vs-dd.sh"
rm -f "$W/w4k.wal" "$W/w256.wal"
step memory "$repo" "${deep}go test -count=1 -run 'TestMemoryBoundedByPool|TestTinyRecordsStayWithinTheBound|TestHeapStaysSmallOn512MiBLog' -v ./tests/"
step memorydb "$repo" "go test -count=1 -run 'TestOpenMemoryWithPreparedWords|TestBigValueCommitHoldsItOnce' -v ./db/"
step stream "$repo" "${env}go test -run '^\$' -bench 'BenchmarkStream' -benchtime $(x 1x 5x) -count $count2 ./pipeline/"
step backup "$repo" "go test -run '^\$' -bench 'BenchmarkBackup' -benchtime $(x 1x 3x) -count $count2 ./db/"
step restoremem "$repo" "${deep}go test -count=1 -run 'TestRestoreMemoryIsFlatInStreamSize' -v ./db/"
step open "$repo" "go test -run '^\$' -bench '^BenchmarkOpen(256MiB|UniqueKeys)\$' -benchtime $(x 1x 3x) -count $count ./db/"
step opendemo "$repo" "go test -run '^\$' -bench '^BenchmarkOpenDemo\$' -benchtime $(x 1x 5x) -count $count ./db/"
step commits "$repo" "go test -run '^\$' -bench ConcurrentCommits -benchtime $(x 300x 3000x) -count $count ./db/"
step compact "$repo" "go test -run '^\$' -bench CompactDemo -benchtime $(x 1x 3x) -count $count ./db/"
step demo "$W" "for i in \$(seq $(x 1 5)); do walrec demo || exit; done"
step peers "$repo/benchmarks/peers" "go run . -sizes 256,4KiB $(x '-volume 16MiB -runs 1' '-volume 256MiB,512MiB') -out \$OUT/peers"
step gcpacing "$repo" "$(x 'ROUNDS=1 ' '')scripts/gc-pacing.sh"
echo "=== done $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/times"
{
	echo "end: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "load-end: $(cut -d' ' -f1-3 /proc/loadavg)"
} >>"$out/machine.txt"

go run ./scripts/benchdoc -in "$out" -out "$doc"
rc=$?
echo "raw outputs in $out; page written to $doc (generator exit $rc)"
exit $rc
