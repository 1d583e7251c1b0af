#!/usr/bin/env bash
# Three walnode processes on this machine (127.0.0.1 only): raft on ports 7001-7003, HTTP on
# 8001-8003, data and logs in $DATA (default ./data, relative to where you run it).
#
#   scripts/cluster.sh              build walnode, start n1 (bootstrap), n2 and n3 (join), wait
#                                   until they agree on a leader; Ctrl-C stops all three
#   scripts/cluster.sh start N      start node N (1, 2 or 3) again, from its data (another terminal)
#   scripts/cluster.sh leader       print the leader's ID and HTTP address
#
# Run from replication/ (the module's directory). The README walks through stopping the leader.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-$PWD/data}
BIN=$DATA/walnode
mkdir -p "$DATA"

start() { # start N [flags...]: node N in the background, its PID in $DATA/nN.pid
	local n=$1
	shift
	"$BIN" --id "n$n" --dir "$DATA/n$n" --raft "127.0.0.1:700$n" --http "127.0.0.1:800$n" "$@" \
		>>"$DATA/n$n.log" 2>&1 &
	echo $! >"$DATA/n$n.pid"
	echo "n$n: pid $!, raft 127.0.0.1:700$n, http 127.0.0.1:800$n, log $DATA/n$n.log"
}

leader() { # the leader as some running node sees it
	local n
	for n in 1 2 3; do
		if out=$(curl -sf "127.0.0.1:800$n/status" 2>/dev/null); then
			id=$(sed -n 's/.*"leader_id": "\(.*\)".*/\1/p' <<<"$out")
			http=$(sed -n 's/.*"leader_http_addr": "\(.*\)".*/\1/p' <<<"$out")
			if [[ -n $id && -n $http ]]; then
				echo "$id $http"
				return 0
			fi
		fi
	done
	return 1
}

stop_all() {
	local n
	for n in 1 2 3; do
		if [[ -f $DATA/n$n.pid ]]; then
			kill "$(cat "$DATA/n$n.pid")" 2>/dev/null || true
			rm -f "$DATA/n$n.pid"
		fi
	done
	wait 2>/dev/null || true
	echo "stopped; the data stays in $DATA (remove it for a new cluster)"
}

case "${1:-}" in
start)
	[[ ${2:-} =~ ^[123]$ ]] || { echo "usage: $0 start 1|2|3" >&2; exit 2; }
	start "$2"
	exit 0
	;;
leader)
	leader || { echo "no leader known" >&2; exit 1; }
	exit 0
	;;
"") ;;
*)
	echo "usage: $0 [start N | leader]" >&2
	exit 2
	;;
esac

go build -o "$BIN" ./cmd/walnode
trap stop_all EXIT
trap 'exit 130' INT TERM
if [[ -d $DATA/n1 ]]; then # a cluster that ran before: restart it as it was
	start 1 && start 2 && start 3
else
	start 1 --bootstrap
	start 2 --join 127.0.0.1:8001
	start 3 --join 127.0.0.1:8001
fi
for _ in $(seq 1 120); do
	if l=$(leader) && [[ $(curl -sf 127.0.0.1:8001/status | grep -c '"raft_addr"') == 3 ]]; then
		echo "leader: $l"
		break
	fi
	sleep 0.5
done
cat <<'EOF'

  curl -L -X PUT 127.0.0.1:8002/kv/hello -d world     # any node: followers redirect to the leader
  curl -L 127.0.0.1:8003/kv/hello                     # strong read (through the leader)
  curl '127.0.0.1:8003/kv/hello?consistency=stale'    # this node's own state
  curl '127.0.0.1:8001/scan?prefix=h'
  curl 127.0.0.1:8001/status
  scripts/cluster.sh leader                           # who leads

Ctrl-C stops the cluster.
EOF
while :; do sleep 1; done
