#!/usr/bin/env bash
# walrec verify as a whole process against dd on the same cached file: the read limit a user
# sees. Writes a 512 MiB log of 4 KiB records (or uses $LOG), warms the page cache, then runs
# ROUNDS (default 15) alternating rounds of `dd bs=1M of=/dev/null`, `walrec verify` and
# `walrec verify --parallelism 1`, timing each process with date +%s%N, and prints the best and
# median of each and verify's share of dd's speed. Peak RSS of one verify via /usr/bin/time.
#
#   scripts/verify-vs-dd.sh
#   LOG=/path/to/file.wal ROUNDS=25 scripts/verify-vs-dd.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-15}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
go build -o "$work/walrec" ./cmd/walrec
log=${LOG:-}
if [ -z "$log" ]; then
	log=$work/w4k.wal
	"$work/walrec" gen "$log" --size 512MiB --record-size 4KiB --quiet >/dev/null
fi
cat "$log" >/dev/null # warm
echo "# $(uname -m), $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ), $(stat -c %s "$log") bytes" >&2
ms() { # run "$@" once, print its wall milliseconds
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1 || [ $? -le 1 ]
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
: >"$work/times"
for _ in $(seq "$rounds"); do
	echo "dd $(ms dd if="$log" of=/dev/null bs=1M)" >>"$work/times"
	echo "verify $(ms "$work/walrec" verify "$log" --quiet)" >>"$work/times"
	echo "verify-p1 $(ms "$work/walrec" verify "$log" --quiet --parallelism 1)" >>"$work/times"
	echo "true $(ms /bin/true)" >>"$work/times"
done
stat() { # best, median and count of one name's runs
	grep "^$1 " "$work/times" | cut -d' ' -f2 | sort -n | awk '{ v[NR] = $1 } END { print v[1], v[int((NR + 1) / 2)], NR }'
}
for name in dd verify verify-p1 true; do
	read -r best med n < <(stat "$name")
	printf "%-10s best %4d ms  median %4d ms  (%d runs)\n" "$name" "$best" "$med" "$n"
done
read -r ddb ddm _ < <(stat dd)
read -r vb vm _ < <(stat verify)
awk -v ddb="$ddb" -v ddm="$ddm" -v vb="$vb" -v vm="$vm" 'BEGIN {
	printf "verify at %.0f%% of dd by the medians, %.0f%% best against best\n", 100 * ddm / vm, 100 * ddb / vb }'
if [ -x /usr/bin/time ]; then
	/usr/bin/time -f "peak RSS of one verify: %M KiB" "$work/walrec" verify "$log" --quiet 2>&1 >/dev/null | tail -1
fi
