#!/usr/bin/env bash
# Where the pool's buffers should come from (issue 21, item 3): builds the pipeline's and the
# database's benchmark binaries three times, one per allocator of internal/hugemem,
#
#   offheap   (no tags: the default until 2026-12-08) mappings outside the Go heap, huge pages
#   hugeheap  (-tags pool_hugeheap) Go heap, every huge page a buffer touches advised MADV_HUGEPAGE
#   heap      (-tags pool_heap)     plain Go heap (4 KiB pages), as race builds have it
#
# then runs ROUNDS (default 5) rounds of fresh processes, each round every variant once (the
# order rotates round by round: A B C, B C A, C A B, ...), and prints a markdown table of
# median MB/s (min-max) with ratios against the plain heap and the off-heap against the better
# heap variant. Benchmarks: BenchmarkRecover's discard and map appliers at parallelism 1 and 2,
# 256 B and 4 KiB records (256 MiB logs, BENCH_LOG_MIB to change), and BenchmarkOpenDemo's
# read-only db.Open at parallelism 1 and 0 (= GOMAXPROCS). 4 to 7 minutes on the shared 2-core
# VM with 5 rounds (load 4 to 14). Results: docs/design.md, decision record "The pool on the Go heap". The
# benchmarks' logs live in $TMPDIR while a binary runs (at most 512 MiB); the binaries and raw
# outputs in a temporary directory, removed at the end (also on Ctrl-C) unless KEEP=1. Needs
# go, git and python3.
#
# The variants are built from REV (default 0c7e8c4, the commit that added the build tags; the
# off-heap allocator was removed after this measurement, so later trees cannot build it), taken
# out with git archive into the temporary directory: the working tree is not touched.
#
#   scripts/pool-alloc.sh
#   ROUNDS=3 RECOVER_X=5 OPEN_X=3 scripts/pool-alloc.sh     # shorter
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${REV:-0c7e8c46cac2badd2e9498cf2a696f1319a47062}
rounds=${ROUNDS:-5}
rx=${RECOVER_X:-10}
ox=${OPEN_X:-5}
work=$(mktemp -d "${TMPDIR:-/tmp}/poolalloc.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then
	trap 'echo "raw outputs in $work" >&2' EXIT
else
	trap 'rm -rf "$work"' EXIT
fi
trap 'exit 130' INT TERM

variants=(offheap hugeheap heap)
declare -A tags=([offheap]="" [hugeheap]=pool_hugeheap [heap]=pool_heap)
mkdir "$work/src"
git archive "$rev" | tar -x -C "$work/src"
for v in "${variants[@]}"; do
	(cd "$work/src" && go test -c -tags "${tags[$v]}" -o "$work/pipeline.$v.test" ./pipeline)
	(cd "$work/src" && go test -c -tags "${tags[$v]}" -o "$work/db.$v.test" ./db)
done
recbench='^BenchmarkRecover$/^size=(256B|4KiB)$/^(discard|map)$/^par=(1|2)$'
openbench='^BenchmarkOpenDemo$/^open$/^parallelism=(1|0)$'

echo "# pool allocators: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), $(go version | cut -d' ' -f3), THP $(sed 's/.*\[\(.*\)\].*/\1/' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo '?')"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# $rounds rounds; per variant and round, two fresh processes:"
echo "#   pipeline.\$v.test -test.run '^\$' -test.bench '$recbench' -test.benchtime ${rx}x"
echo "#   db.\$v.test -test.run '^\$' -test.bench '$openbench' -test.benchtime ${ox}x"
echo "# built from $(git rev-parse --short "$rev") with go test -c [-tags pool_hugeheap|pool_heap] ./pipeline ./db"
for r in $(seq "$rounds"); do
	for i in 0 1 2; do
		v=${variants[$(((r - 1 + i) % 3))]}
		"$work/pipeline.$v.test" -test.run '^$' -test.bench "$recbench" -test.benchtime "${rx}x" >"$work/out.$r.$v.pipeline" 2>&1
		"$work/db.$v.test" -test.run '^$' -test.bench "$openbench" -test.benchtime "${ox}x" >"$work/out.$r.$v.db" 2>&1
		echo "# round $r $v done $(date -u +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg)" >&2
	done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work" "$rounds" <<'EOF'
import glob, os, re, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
runs = {}  # (bench, variant) -> [MB/s]
for path in sorted(glob.glob(os.path.join(work, "out.*")), key=lambda p: int(os.path.basename(p).split(".")[1])):
    _, r, v, _ = os.path.basename(path).split(".")
    text = open(path).read()
    if "FAIL" in text or "panic:" in text:
        sys.exit(f"{path} failed:\n{text}")
    for line in text.splitlines():
        m = re.match(r"(Benchmark\S+?)(-\d+)?\s+\d+\s+.*?([\d.]+) MB/s", line)
        if m:
            runs.setdefault((m.group(1), v), []).append(float(m.group(3)))
names = []
for b, _ in runs:
    if b not in names:
        names.append(b)
order = lambda b: (b.startswith("BenchmarkOpenDemo"), "4KiB" in b, "/map/" in b, b)
names.sort(key=order)
def cell(xs):
    return f"{statistics.median(xs):,.0f} ({min(xs):,.0f}-{max(xs):,.0f})"
print("| benchmark | off-heap | heap, huge pages | heap | off-heap / heap | heap huge / heap | off-heap / better heap |")
print("|---|--:|--:|--:|--:|--:|--:|")
for b in names:
    off, huge, heap = (runs.get((b, v), []) for v in ("offheap", "hugeheap", "heap"))
    if not (off and huge and heap):
        continue
    mo, mh, mp = (statistics.median(x) for x in (off, huge, heap))
    short = b.replace("BenchmarkRecover/", "recover ").replace("BenchmarkOpenDemo/open/", "db.Open demo ")
    print(f"| {short} | {cell(off)} | {cell(huge)} | {cell(heap)} | {mo / mp:.2f}x | {mh / mp:.2f}x | {mo / max(mh, mp):.2f}x |")
print(f"(median MB/s of {rounds} fresh processes per variant, min-max in brackets; every run:)")
for b in names:
    for v in ("offheap", "hugeheap", "heap"):
        print(" ", b, v, *(f"{x:.0f}" for x in runs.get((b, v), [])))
EOF
