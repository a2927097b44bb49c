#!/usr/bin/env bash
# A real Prometheus (Debian's package) scrapes a real `levee run`'s /metrics, and PromQL
# queries return the breaker-state series (SPEC §11): every state of the `inventory` breaker
# with `service` and `language="rust"`, `closed` at 1; then, after an operator forces the
# breaker open through the admin API, `forced_open` at 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
bash scripts/ensure-package.sh prometheus prometheus
LEVEE=${LEVEE:-$ROOT/target/release/levee}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/levee-prometheus.XXXXXX")
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
LISTEN=$(free_port); ADMIN=$(free_port); PROM=$(free_port)
export LEVEE_ADMIN_TOKEN="prom-$RANDOM$RANDOM"
cat >"$WORK/levee.yaml" <<YAML
service: prometheus-check
listeners: [{address: 127.0.0.1:$LISTEN}]
admin: {address: 127.0.0.1:$ADMIN}
upstreams:
  inventory: {endpoints: ["127.0.0.1:1"]}
routes:
  - {match: {path_prefix: /}, upstream: inventory}
YAML
LEVEE_LOG=warn "$LEVEE" run --config "$WORK/levee.yaml" 2>"$WORK/levee.log" &
pids+=($!)
cat >"$WORK/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: levee
    static_configs: [{targets: ["127.0.0.1:$ADMIN"]}]
YAML
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
	--web.listen-address="127.0.0.1:$PROM" >"$WORK/prometheus.log" 2>&1 &
pids+=($!)

# query EXPR PYTHON-CHECK: polls the PromQL query until the check on its result list passes.
query() {
	local expr=$1 check=$2
	for _ in $(seq 1 120); do
		if curl -fsS --get "http://127.0.0.1:$PROM/api/v1/query" --data-urlencode "query=$expr" \
			-o "$WORK/answer.json" 2>/dev/null &&
			python3 - "$WORK/answer.json" "$check" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
result = answer["data"]["result"]
series = {s["metric"].get("state"): (s["metric"], float(s["value"][1])) for s in result}
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
		then
			return 0
		fi
		sleep 0.5
	done
	echo "prometheus: the query $expr never satisfied: $check"
	cat "$WORK/answer.json" 2>/dev/null || true
	tail -5 "$WORK/prometheus.log" "$WORK/levee.log"
	return 1
}

query 'levee_breaker_state{endpoint="inventory"}' \
	'set(series) == {"closed","open","half_open","forced_open","disabled"} and series["closed"][1] == 1 and all(m["language"] == "rust" and m["service"] == "prometheus-check" for m, _ in series.values())'
echo "prometheus: levee_breaker_state has the inventory breaker's five states, closed = 1"
curl -fsS -X PUT -H "Authorization: Bearer $LEVEE_ADMIN_TOKEN" -H 'content-type: application/json' \
	-d '{"state": "forced_open"}' "http://127.0.0.1:$ADMIN/api/breakers/inventory/override" >/dev/null
query 'levee_breaker_state{endpoint="inventory"} == 1' 'list(series) == ["forced_open"]'
echo "prometheus: after the override, the only state at 1 is forced_open"
