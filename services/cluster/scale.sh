#!/usr/bin/env bash
# Scale-out of the compose cluster, measured: `./deploy.sh cluster-scale`.
#
# For each number of worker containers (1 2 3 6) and slots per worker (2 4), scale
# the running cluster (`docker compose up -d --scale worker=N`, slots from
# RUNSTREAM_CLUSTER_WORKER_SLOTS), wait until the group has N workers, then run
# `runstream bench run services/cluster/sleep-1s.toml` (each request sleeps 1 s)
# through the balancer, closed loop with 2 x N x slots clients, and print one table
# row: the ideal is N x slots requests/s. Needs a cluster started with
# RUNSTREAM_CLUSTER_AUTH=false (the bench sends no API key).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PROJECT=${RUNSTREAM_CLUSTER_PROJECT:-runstream-cluster}
PORT=${RUNSTREAM_CLUSTER_PORT:-8080}
WORKERS=${SCALE_WORKERS:-1 2 3 6}
SLOTS=${SCALE_SLOTS:-2 4}
DURATION=${SCALE_DURATION_S:-30}
URL="http://127.0.0.1:$PORT"
compose() { docker compose -p "$PROJECT" -f docker-compose.yaml "$@"; }

workers_ready() {  # n: /readyz shows n workers, within 180 s
  local deadline=$((SECONDS + 180)) got
  while [ "$SECONDS" -lt "$deadline" ]; do
    got=$(curl -s "$URL/readyz" | python3 -c 'import json,sys
try: print(json.load(sys.stdin).get("workers", 0))
except Exception: print(0)')
    [ "$got" = "$1" ] && return 0
    sleep 1
  done
  echo "scale: the group did not reach $1 workers in 180 s" >&2
  return 1
}

echo "| worker containers | slots each | slots | clients | ideal req/s | measured req/s | of ideal | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|---|---|---|"
for slots in $SLOTS; do
  for n in $WORKERS; do
    # Slots are a container setting: compose recreates the workers when it changes.
    RUNSTREAM_CLUSTER_AUTH=false RUNSTREAM_CLUSTER_WORKER_SLOTS=$slots \
      compose up -d --scale "worker=$n" worker >/dev/null 2>&1
    workers_ready "$n"
    clients=$((2 * n * slots))
    out="$ROOT/bench-results/cluster-scale-w$n-s$slots"
    rm -rf "$out"
    "$ROOT/.venv/bin/runstream" bench run services/cluster/sleep-1s.toml --target http \
      --url "$URL" --model closed --clients "$clients" --duration "$DURATION" --warmup 5 \
      --no-record --no-progress --out "$out" --run-id "cluster-scale-w$n-s$slots" >/dev/null
    python3 - "$out/report.json" "$n" "$slots" "$clients" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
fig = report
n, slots, clients = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ideal = n * slots
rps = fig["throughput_rps"]
lat = fig["latency_ms"]
print(f"| {n} | {slots} | {ideal} | {clients} | {ideal} | {rps:.2f} | {rps / ideal:.0%} | "
      f"{lat.get('p50', 0):.0f} | {lat.get('p99', 0):.0f} |")
PY
  done
done
