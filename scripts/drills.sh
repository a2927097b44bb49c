#!/usr/bin/env bash
# The drills of `make test`, against a real `levee demo` (every port picked by the OS):
#   1. examples/fleet/drill.yaml, the demo's own drill, must pass (exit 0, JSON "passed": true);
#   2. tests/drills/slo-fail.yaml is built to fail an SLO: it must exit 1 and say FAIL;
#   3. a drill file with a mistake must exit 2 naming file:line:column.
# Needs the demo fleet's programs: `make demo-build` builds them.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BIN=${BIN:-$ROOT/target/release}
LEVEE="$BIN/levee"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/levee-drills.XXXXXX")
DEMO_PID=""
cleanup() {
	if [ -n "$DEMO_PID" ] && kill -0 "$DEMO_PID" 2>/dev/null; then
		kill -INT "$DEMO_PID" 2>/dev/null || true
		wait "$DEMO_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

export LEVEE_ADMIN_TOKEN="drills-$RANDOM$RANDOM"
"$LEVEE" demo --no-drill --listen 127.0.0.1:0 --admin 127.0.0.1:0 --storefront 127.0.0.1:0 \
	--env-file "$WORK/demo.env" >"$WORK/demo.out" 2>&1 &
DEMO_PID=$!
for _ in $(seq 1 300); do
	[ -s "$WORK/demo.env" ] && break
	kill -0 "$DEMO_PID" 2>/dev/null || { echo "drills: levee demo exited:"; cat "$WORK/demo.out"; exit 1; }
	sleep 0.1
done
[ -s "$WORK/demo.env" ] || { echo "drills: levee demo did not start:"; cat "$WORK/demo.out"; exit 1; }
set -a
# shellcheck disable=SC1091
. "$WORK/demo.env"
set +a
echo "drills: demo fleet up (sidecar $LEVEE_DEMO_PROXY, admin $LEVEE_DEMO_ADMIN)"

echo "drills: 1. examples/fleet/drill.yaml must pass"
if ! "$LEVEE" drill --quiet --json "$WORK/pass.json" examples/fleet/drill.yaml; then
	echo "drills: the demo drill failed; demo output:"; cat "$WORK/demo.out"; exit 1
fi
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["passed"] is True and all(s["passed"] for s in r["slos"]) and len(r["slos"])==5, r["slos"]' "$WORK/pass.json"

echo "drills: 2. tests/drills/slo-fail.yaml must fail its SLO"
set +e
"$LEVEE" drill --quiet --json "$WORK/fail.json" tests/drills/slo-fail.yaml >"$WORK/fail.out" 2>&1
status=$?
set -e
cat "$WORK/fail.out"
[ "$status" -eq 1 ] || { echo "drills: expected exit 1 from the failing drill, got $status"; exit 1; }
grep -q "FAIL  reservations succeed" "$WORK/fail.out" || { echo "drills: the report does not show the failed SLO"; exit 1; }
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["passed"] is False and r["slos"][0]["passed"] is False, r' "$WORK/fail.json"

echo "drills: 3. a broken drill file must exit 2 with file:line:column"
printf 'name: broken\nduration: 5s\ntraffic:\n  - {name: a, path: /, rate: 10/s}\n' >"$WORK/broken.yaml"
set +e
"$LEVEE" drill "$WORK/broken.yaml" >"$WORK/broken.out" 2>&1
status=$?
set -e
[ "$status" -eq 2 ] || { echo "drills: expected exit 2 for a broken file, got $status"; cat "$WORK/broken.out"; exit 1; }
grep -q "broken.yaml:4:21: traffic\[0\].path: a \`path\` needs the scenario's \`target\`" "$WORK/broken.out" \
	|| { echo "drills: unexpected error text:"; cat "$WORK/broken.out"; exit 1; }
echo "drills: all three behaved"
