#!/usr/bin/env bash
# Capacity per node under the realistic court load (docs/benchmarks.md,
# "Hearings per core"): R concurrent hearings of P participants, everyone
# publishing audio and video and receiving all the others, R stepped up
# until the medians no longer hold (loss < LOSS %, latency p99 < P99); next
# to it, in the same session, the one-room fan-out figure (1 publisher, N
# subscribers). A fresh server per run. Appends one JSON line per run to
# OUT and prints the report (mediabench report) at the end.
#
#   tools/mediabench/rooms.sh [RUNS] [DURATION] [R...]
#   e.g. tools/mediabench/rooms.sh 3 20s 1 2 4 6 8 10 12 14 16
#
# Environment:
#   P=6            participants per hearing
#   SIMULCAST=1    publish three layers, received as a browser's grid does
#                  (P > 4: every video capped at the middle layer); 0: one
#                  VP8 layer at BITRATE
#   BITRATE=1.5M   video bitrate of the (top) layer
#   FANOUT=100     subscribers of the one-room reference (0: none)
#   PIN=1          server on CPU 0, load generator on CPU 1 (taskset)
#   LOSS=0.1 P99=50ms  what a step must hold to
#   STOP=1         stop stepping after the first R that does not hold
#   OUT=rooms-bench.jsonl   (overwritten)
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-3}
DUR=${2:-20s}
shift 2 || true
RS=${*:-1 2 4 6 8 10 12 14 16}
P=${P:-6}
SIMULCAST=${SIMULCAST:-1}
BITRATE=${BITRATE:-1.5M}
FANOUT=${FANOUT:-100}
LOSS=${LOSS:-0.1}
P99=${P99:-50ms}
STOP=${STOP:-1}
OUT=${OUT:-rooms-bench.jsonl}
BIN=$(mktemp -d)/mediabench
go build -o "$BIN" ./tools/mediabench
srv_pin=() load_pin=()
if [ "${PIN:-0}" = 1 ]; then srv_pin=(taskset -c 0); load_pin=(taskset -c 1); fi
sim=()
if [ "$SIMULCAST" = 1 ]; then sim=(-simulcast); fi
port=19089

# run MODE RUN LOAD-FLAGS...: one load test against a fresh server,
# appended to OUT as one JSON line with "mode" and "run".
run() {
	local mode=$1 n=$2
	shift 2
	port=$((port + 2))
	"${srv_pin[@]}" "$BIN" serve -mode chamber -addr 127.0.0.1:$port -media-udp 127.0.0.1:$((port + 1)) 2>/dev/null &
	local spid=$!
	for _ in $(seq 50); do curl -fso /dev/null http://127.0.0.1:$port/metrics && break; sleep 0.1; done
	local out
	out=$("${load_pin[@]}" "$BIN" load -url http://127.0.0.1:$port -duration "$DUR" -warmup 5s \
		-video-bitrate "$BITRATE" -server-pid "$spid" -json "$@" 2>/dev/null || true)
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	if [ -z "$out" ]; then echo "rooms.sh: $mode run $n $* printed nothing" >&2; return; fi
	echo "$out" | jq -c --arg mode "$mode" --argjson run "$n" \
		'. + {mode: $mode, run: $run} | del(.tracks) | if .per_room then .per_room |= map(del(.members)) else . end' >>"$OUT"
	echo "$out" | jq -r --arg mode "$mode" --argjson run "$n" \
		'"\($mode) run \($run): rooms \(.rooms // 0) loss \(.loss_pct)% p99 \(.latency_ms_p99) ms \(.server_cpu_us_per_packet) µs/pkt, load \(.load_average_before[0] // "?")"' >&2
}

: >"$OUT"
echo "rooms.sh: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), PIN=${PIN:-0} SIMULCAST=$SIMULCAST P=$P" >&2
if [ "$FANOUT" != 0 ]; then
	for r in $(seq 1 "$RUNS"); do run chamber "$r" -publishers 1 -subscribers "$FANOUT"; done
fi
for R in $RS; do
	for r in $(seq 1 "$RUNS"); do run rooms "$r" -rooms "$R" -participants "$P" "${sim[@]}"; done
	if [ "$STOP" = 1 ] && ! "$BIN" report -loss "$LOSS" -p99 "$P99" <"$OUT" | grep -q "^| $R | .*| yes |$"; then
		echo "rooms.sh: R=$R does not hold; stopping" >&2
		break
	fi
done
"$BIN" report -loss "$LOSS" -p99 "$P99" <"$OUT"
