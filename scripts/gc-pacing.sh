#!/usr/bin/env bash
# How the program's garbage-collection pacing decides whether parallelism pays for an applier
# that allocates (the peers' map mode: m[key] = copy of value). Writes the peers' logs of 256 B
# and 4 KiB records (recovery and pebble only, map mode), then runs ROUNDS (default 7)
# alternating rounds of fresh replay children: this project at parallelism 1 and 2 and pebble's
# record reader, each at GOGC=100 (Go's default) and GOGC=200, and prints the median MB/s of
# each with the ratios that issue 11 asks about. About 3 minutes on the 2-core VM; the logs
# (about 1.6 GiB) are removed when it ends (also on Ctrl-C). Needs go and python3.
#
#   scripts/gc-pacing.sh
#   ROUNDS=11 scripts/gc-pacing.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-7}
work=$(mktemp -d "${TMPDIR:-/tmp}/gcpacing.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
(cd benchmarks/peers && go build -o "$work/peers" .)
"$work/peers" -sizes 256,4KiB -volume 256MiB,512MiB -systems recovery,pebble -modes map -par 1 \
	-runs 1 -keep -dir "$work" -out "$work/out" >/dev/null 2>&1
echo "# $(uname -m), $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ), $rounds rounds"
: >"$work/times"
for _ in $(seq "$rounds"); do
	for size in 256 4096; do
		dir=$(echo "$work"/walpeers-*/size-$size)
		for gogc in 100 200; do
			for sys in recovery:1 recovery:2 pebble:1; do
				name=${sys%%:*} par=${sys##*:} path=$dir/recovery.wal
				[ "$name" = pebble ] && path=$dir/pebble.log
				line=$(GOGC=$gogc "$work/peers" replay -system "$name" -par "$par" -mode map -path "$path")
				mbps=$(echo "$line" | python3 -c 'import json, sys; r = json.load(sys.stdin); print(int(r["bytes"] / r["seconds"] / 1e6))')
				label=$name
				[ "$name" = recovery ] && label=p$par
				echo "$size $gogc $label $mbps" >>"$work/times"
			done
		done
	done
done
python3 - "$work/times" <<'EOF'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    size, gogc, label, mbps = line.split()
    runs.setdefault((size, gogc, label), []).append(int(mbps))
med = {k: statistics.median(v) for k, v in runs.items()}
print("| record | GOGC | p1 MB/s | p2 MB/s | pebble MB/s | p2 / p1 | best of p1,p2 / pebble |")
print("|---|--:|--:|--:|--:|--:|--:|")
for size in ("256", "4096"):
    for gogc in ("100", "200"):
        p1, p2, pb = (med[(size, gogc, l)] for l in ("p1", "p2", "pebble"))
        print(f"| {size} B | {gogc} | {p1:.0f} | {p2:.0f} | {pb:.0f} | {p2 / p1:.2f}x | {max(p1, p2) / pb:.2f}x |")
print("(medians of each configuration's runs; every run:)")
for k in sorted(runs):
    print(" ", *k, *runs[k])
EOF
