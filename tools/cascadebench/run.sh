#!/usr/bin/env bash
# Cascade benchmark (docs/benchmarks.md, "Cascade"): one publisher and N
# observers on a cluster of NODES chamber serve processes sharing one
# PostgreSQL database, with --gallery-node-threshold T, measured by
# chamber loadtest. Prints the load generator's summary (loss, latency;
# its "server CPU" is node n1's, measured in the steady window), and per
# node, over the whole load test (joins included): CPU seconds, RTP packets
# forwarded, relay packets received and missing on arrival.
#
#   source /tmp/<you>-servers.env      # CHAMBER_TEST_POSTGRES, from ./scripts/test --servers
#   tools/cascadebench/run.sh NODES OBSERVERS THRESHOLD [VIDEO_BITRATE] [DURATION]
#   CASCADEBENCH_SIMULCAST=1 tools/cascadebench/run.sh …   # the publisher sends q/h/f
#
# e.g. tools/cascadebench/run.sh 3 60 20   vs   tools/cascadebench/run.sh 1 20 0
set -euo pipefail
nodes=${1:?nodes} observers=${2:?observers} threshold=${3:?threshold}
bitrate=${4:-1.5M} duration=${5:-15s}
: "${CHAMBER_TEST_POSTGRES:?source the env of scripts/test --servers first}"
work=$(mktemp -d /tmp/cascadebench.XXXX)
bin=$work/chamber
go build -o "$bin" ./cmd/chamber
db=cb_$(date +%s)_$$
psql -q "$CHAMBER_TEST_POSTGRES" -c "CREATE DATABASE $db"
dsn=${CHAMBER_TEST_POSTGRES%/*}/$db?sslmode=disable
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql -q "$CHAMBER_TEST_POSTGRES" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
  if [ -n "${CASCADEBENCH_LOGS:-}" ]; then for f in "$work"/*.log; do echo "== $f"; tail -5 "$f"; done >&2; fi
  rm -rf "$work"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A url metrics
for i in $(seq 1 "$nodes"); do
  id=n$i http=$(port) mport=$(port)
  mkdir -p "$work/$id/data"
  # One development PKI for the cluster, as in TestCluster.
  if [ "$i" -gt 1 ]; then cp -r "$work/n1/data/pki" "$work/$id/data/"; fi
  "$bin" serve --data-dir "$work/$id/data" --database "$dsn" --node-id "$id" \
    --listen 127.0.0.1:$http --public-url http://127.0.0.1:$http --metrics-listen 127.0.0.1:$mport \
    --media-udp-port 0 --media-tcp-port -1 --turn-udp-port -1 --turn-tcp-port -1 --nat-ip 127.0.0.1 --gallery-node-threshold "$threshold" \
    >"$work/$id.log" 2>&1 &
  pids+=($!)
  url[$id]=http://127.0.0.1:$http metrics[$id]=http://127.0.0.1:$mport
  for _ in $(seq 100); do curl -fs "${url[$id]}/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
done
sid=$("$bin" staff add --data-dir "$work/n1/data" --database "$dsn" --name "Bench Clerk" --role clerk)
tok=$("$bin" token add --data-dir "$work/n1/data" --database "$dsn" --staff "$sid" --scope sessions:write --expires 2h)
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }
metric() { curl -fs "$1/metrics" | awk -v n="$2" '$1==n {print $2; f=1} END {if (!f) print 0}'; }
declare -A cpu0 fwd0
for i in $(seq 1 "$nodes"); do
  cpu0[n$i]=$(cpu "${pids[$((i-1))]}") fwd0[n$i]=$(metric "${metrics[n$i]}" chamber_rtp_packets_forwarded_total)
done
"$bin" loadtest --url "${url[n1]}" --staff-token "$tok" --publishers 1 --subscribers "$observers" \
  --duration "$duration" --warmup 3s --video-bitrate "$bitrate" ${CASCADEBENCH_SIMULCAST:+--simulcast} --server-pid "${pids[0]}"
tck=$(getconf CLK_TCK)
home=$(psql -qtA "$dsn" -c "SELECT node_id FROM room_leases ORDER BY claimed_at DESC LIMIT 1")
echo "home node: $home; the load test's server CPU line is node n1"
printf '%-4s %10s %14s %10s %14s\n' node cpu_s fwd_packets relay_in relay_missing
for i in $(seq 1 "$nodes"); do
  id=n$i m=${metrics[$id]}
  c=$(( $(cpu "${pids[$((i-1))]}") - ${cpu0[$id]} ))
  f=$(metric "$m" chamber_rtp_packets_forwarded_total)
  printf '%-4s %10.2f %14.0f %10s %14s\n' "$id" "$(echo "$c/$tck" | bc -l)" "$(echo "$f-${fwd0[$id]}" | bc -l)" \
    "$(metric "$m" chamber_cascade_relay_packets_total)" "$(metric "$m" chamber_cascade_relay_packets_missing_total)"
done
