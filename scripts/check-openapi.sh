#!/usr/bin/env bash
# Checks that a live `levee registry` behaves as api/registry.openapi.yaml says, with
# schemathesis (property-based requests generated from the document): every documented
# operation is called with generated valid and invalid input, and each answer must be a
# documented status with a matching content type, headers and schema, and never a 5xx.
#
#   scripts/check-openapi.sh [MAX_EXAMPLES]      (default 50 per operation)
#
# Runs twice: once with the operator token (operator and read endpoints), once with the
# reporter token (reports and probe leases), since each write endpoint takes one role.
# /v1/watch is excluded: it is an endless event stream, covered by the Rust end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples="${1:-50}"

if ! python3 -c 'import schemathesis' 2>/dev/null; then
  python3 -m pip install -q schemathesis
fi

cargo build -q -p levee
target_dir="$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
levee="$target_dir/debug/levee"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
export LEVEE_REGISTRY_REPORTER_TOKEN="schemathesis-reporter"
export LEVEE_REGISTRY_OPERATOR_TOKEN="schemathesis-operator"
log="$(mktemp)"
"$levee" registry --listen "127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  if python3 -c "import urllib.request, sys; urllib.request.urlopen('$url/healthz', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.1
done

checks="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,missing_required_header,ignored_auth"
common=(
  --url "$url"
  --checks "$checks"
  --max-examples "$max_examples"
  --seed 7
  --request-timeout 5
  --exclude-path /v1/watch
  --suppress-health-check all
  --warnings off
)

status=0
echo "== operator token: operator and read endpoints"
schemathesis --config-file scripts/schemathesis.toml run api/registry.openapi.yaml "${common[@]}" \
  -H "Authorization: Bearer $LEVEE_REGISTRY_OPERATOR_TOKEN" \
  --exclude-path-regex '^/v1/(reports|breakers/\{key\}/leases.*)$' || status=1
echo "== reporter token: reports and probe leases"
schemathesis --config-file scripts/schemathesis.toml run api/registry.openapi.yaml "${common[@]}" \
  -H "Authorization: Bearer $LEVEE_REGISTRY_REPORTER_TOKEN" \
  --include-path-regex '^/v1/(reports|breakers/\{key\}/leases.*)$' || status=1

if ! kill -0 "$pid" 2>/dev/null; then
  echo "the registry died during the run:" >&2
  cat "$log" >&2
  status=1
fi
exit "$status"
