#!/usr/bin/env bash
# `make run`: Levee's main job on the embedded defaults. Builds the `levee` proxy and the
# example `inventory` upstream, starts three upstream processes (two inventory replicas and a
# recommendations service), then runs `levee run --config examples/levee.yaml` in front of
# them with the embedded registry. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p levee -p inventory
target="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release"

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$target/inventory" --port 7001 --name inventory-a & pids+=($!)
"$target/inventory" --port 7002 --name inventory-b & pids+=($!)
"$target/inventory" --port 7003 --name recommendations & pids+=($!)

export LEVEE_ADMIN_TOKEN="${LEVEE_ADMIN_TOKEN:-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
cat <<TXT

Levee is starting in front of inventory (127.0.0.1:7001, :7002) and recommendations (:7003).
Try:
  curl -i http://127.0.0.1:8080/inventory/items/7          # balanced over two replicas
  curl -i http://127.0.0.1:8080/recommendations             # sheddable, static fallback
  curl -s http://127.0.0.1:9901/health | python3 -m json.tool
  curl -s http://127.0.0.1:9901/metrics | grep levee_breaker_state
  curl -X POST "http://127.0.0.1:7001/control/fail?status=503"  # break one replica; /control/reset heals
  curl -X PUT -H "Authorization: Bearer $LEVEE_ADMIN_TOKEN" -d '{"state":"forced_open"}' \\
       http://127.0.0.1:9901/api/breakers/inventory/override
Admin token for this run: $LEVEE_ADMIN_TOKEN

TXT
"$target/levee" run --config examples/levee.yaml & pids+=($!)
wait "${pids[-1]}"
