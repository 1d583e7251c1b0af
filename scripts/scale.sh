#!/usr/bin/env bash
# Scaling past two cores: builds the pipeline benchmarks into one test binary and runs the
# recovery benchmarks at -cpu 1,2,4,8,16 (GOMAXPROCS; parallelism 0 follows it), then prints
# one table of payload MB/s per case and core count, with the raw pread of the same file
# measured in the same run as the limit.
#
#   scripts/scale.sh                 # 256 MiB logs, 256 B and 4 KiB records
#   BENCH_LOG_MIB=512 CPUS=1,2,4,8,16,32 scripts/scale.sh
#
# On a machine with fewer cores than a -cpu value, that column is oversubscribed (say so when
# you record it). The binary can be built here and run elsewhere:
#   go test -c -o bench.test ./pipeline && ./bench.test -test.run '^$' -test.bench ... -test.cpu ...
set -euo pipefail
cd "$(dirname "$0")/.."
cpus=${CPUS:-1,2,4,8,16}
bin=$(mktemp -d)/bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT INT TERM
go test -c -o "$bin" ./pipeline
echo "# $(uname -m), $(nproc) cores, $(go version | cut -d' ' -f3), $(date -u +%Y-%m-%dT%H:%MZ)" >&2
{
	# One -test.cpu value per run: with a list, a sub-benchmark's first (calibration) run can
	# happen at the previous value's GOMAXPROCS, which parallelism 0 then follows.
	for cpu in ${cpus//,/ }; do
		for pat in 'BenchmarkRecover/^size=(256B|4KiB)$/^raw-pread$' 'BenchmarkRecover/^size=(256B|4KiB)$/^(discard|map)$/^par=(1|0)$'; do
			"$bin" -test.run '^$' -test.bench "$pat" -test.cpu "$cpu" -test.benchtime "${BENCHTIME:-10x}"
		done
	done
} | tee /dev/stderr | awk '
	/^Benchmark/ {
		name = $1; procs = 1
		if (match(name, /-[0-9]+$/)) { procs = substr(name, RSTART + 1); name = substr(name, 1, RSTART - 1) }
		sub(/^BenchmarkRecover\//, "", name)
		for (i = 1; i <= NF; i++) if ($(i+1) == "MB/s") mbs = $i
		v[name, procs] = mbs; if (!(name in seen)) { seen[name] = 1; order[++n] = name }
		if (!(procs in pseen)) { pseen[procs] = 1; porder[++m] = procs }
	}
	END {
		printf "\n| case (payload MB/s) |"; for (j = 1; j <= m; j++) printf " cpu=%s |", porder[j]; printf "\n|---|"
		for (j = 1; j <= m; j++) printf "--:|"; printf "\n"
		for (i = 1; i <= n; i++) {
			printf "| %s |", order[i]
			for (j = 1; j <= m; j++) printf " %s |", ((order[i], porder[j]) in v) ? v[order[i], porder[j]] : "-"
			printf "\n"
		}
	}'
