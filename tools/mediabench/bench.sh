#!/usr/bin/env bash
# Runs the media forwarding benchmark of docs/benchmarks.md: Chamber's
# SFU and a bare pion fan-out under the same load, alternating, several runs
# per subscriber count. Prints one JSON summary per line (with "mode" and
# "run" added) on stdout.
#
#   tools/mediabench/bench.sh [RUNS] [DURATION] [N...]
#   e.g. tools/mediabench/bench.sh 3 20s 10 50 100 200
#
# PIN=1 pins the server to CPU 0 and the load generator to CPU 1.
# MODES="chamber" runs only Chamber; CHAMBER_FLAGS="-no-batching" passes
# flags to Chamber's server.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
DUR=${2:-20s}
shift 2 || true
NS=${*:-10 50 100 200}
BIN=$(mktemp -d)/mediabench
go build -o "$BIN" ./tools/mediabench
srv_pin=() load_pin=()
if [ "${PIN:-0}" = 1 ]; then srv_pin=(taskset -c 0); load_pin=(taskset -c 1); fi
port=18089
for n in $NS; do
	for run in $(seq 1 "$RUNS"); do
		for mode in ${MODES:-chamber bare}; do
			port=$((port + 1))
			flags=()
			if [ "$mode" = chamber ] && [ -n "${CHAMBER_FLAGS:-}" ]; then read -ra flags <<<"$CHAMBER_FLAGS"; fi
			"${srv_pin[@]}" "$BIN" serve -mode "$mode" -addr 127.0.0.1:$port -media-udp 127.0.0.1:$((port + 1000)) "${flags[@]}" 2>/dev/null &
			spid=$!
			sleep 1
			out=$("${load_pin[@]}" "$BIN" load -url http://127.0.0.1:$port -publishers 1 -subscribers "$n" \
				-duration "$DUR" -warmup 5s -video-bitrate 1.5M -server-pid "$spid" -json 2>/dev/null || true)
			kill "$spid" 2>/dev/null || true
			wait "$spid" 2>/dev/null || true
			[ -n "$out" ] && echo "$out" | python3 -c "import json,sys; d=json.load(sys.stdin); d['mode']='$mode'; d['run']=$run; d.pop('tracks',None); print(json.dumps(d))"
		done
	done
done
