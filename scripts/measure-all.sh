#!/usr/bin/env bash
# One measuring session for docs/benchmarks.md: every measurement in sequence, nothing else
# should run meanwhile (the machine's noise is bad enough). About 10 minutes on the 2-core VM.
# Raw outputs go to $OUT (default: a new temporary directory, printed at the end); the peers
# run rewrites benchmarks/peers/results.{md,json,svg}. Temporary logs: two 512 MiB files in
# $TMPDIR, removed when the script ends (also on Ctrl-C).
#
#   scripts/measure-all.sh            # then copy the numbers into docs/benchmarks.md
set -u
cd "$(dirname "$0")/.."
out=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/measure.XXXXXX")}
mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/measure-logs.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
go build -o "$work/walrec" ./cmd/walrec || exit 1
st() { echo "=== $1 $(date -u +%H:%M:%S)" | tee -a "$out/times"; }
st recover; go test -run '^$' -bench 'BenchmarkRecover' -count 2 ./pipeline/ > "$out/recover.txt" 2>&1
st tune; go test -run '^$' -bench 'BenchmarkTune/size=(256B|4KiB)/read=(256|1024|2048|4096)KiB/par=(1|2)/depth=0' -benchtime 10x -count 2 ./pipeline/ > "$out/tune.txt" 2>&1
st applybatch; go test -run '^$' -bench ApplyBatch -count 3 ./internal/replay/ > "$out/applybatch.txt" 2>&1
st walrecbench
"$work/walrec" gen "$work/w4k.wal" --size 512MiB --record-size 4KiB --quiet --force
"$work/walrec" gen "$work/w256.wal" --size 512MiB --record-size 256 --quiet --force
"$work/walrec" bench "$work/w4k.wal" --parallelism 1,2,4,0 --runs 5 > "$out/bench4k.txt" 2>&1
"$work/walrec" bench "$work/w256.wal" --parallelism 1,2,4,0 --runs 5 > "$out/bench256.txt" 2>&1
st verifydd; LOG="$work/w4k.wal" scripts/verify-vs-dd.sh > "$out/verifydd.txt" 2>&1
rm -f "$work/w4k.wal" "$work/w256.wal"
st memory; WALREC_DEEP=1 go test -count=1 -run 'TestMemoryBoundedByPool|TestTinyRecordsStayWithinTheBound|TestHeapStaysSmallOn512MiBLog' -v ./tests/ > "$out/memory.txt" 2>&1
go test -count=1 -run 'TestOpenMemoryWithPreparedWords|TestBigValueCommitHoldsItOnce' -v ./db/ >> "$out/memory.txt" 2>&1
st open; go test -run '^$' -bench 'BenchmarkOpen' -benchtime 3x -count 2 ./db/ > "$out/open.txt" 2>&1
st opendemo5; go test -run '^$' -bench 'BenchmarkOpenDemo' -benchtime 5x -count 3 ./db/ > "$out/opendemo.txt" 2>&1
st commits; go test -run '^$' -bench ConcurrentCommits -benchtime 3000x -count 3 ./db/ > "$out/commits.txt" 2>&1
st compact; go test -run '^$' -bench CompactDemo -benchtime 3x -count 3 ./db/ > "$out/compact.txt" 2>&1
st demo; (cd "$work" && ./walrec demo > "$out/demo.txt" 2>&1)
st peers; (cd benchmarks/peers && go run . -sizes 256,4KiB -volume 256MiB,512MiB > "$out/peers.txt" 2>&1)
st gcpacing; scripts/gc-pacing.sh > "$out/gcpacing.txt" 2>&1
st done
echo "outputs in $out"
