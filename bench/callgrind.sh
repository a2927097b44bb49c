#!/usr/bin/env bash
# Instructions per proxied request: `levee run --threads 1` under valgrind's callgrind, with
# bench/proxy.sh's levee config (breaker, bulkhead, retry, access log on) in front of a static
# nginx upstream. Counting starts after a warm-up and stops with the load, so start-up is not
# in the figure. docs/benchmarks.md (the data-path passes) holds the figures.
#
#   bench/callgrind.sh                         # 1000 requests at 200 req/s over 8 connections
#   LOAD=max bench/callgrind.sh                # closed loop over 8 connections for 5 s
#   LEVEE_BIN=/path/to/levee bench/callgrind.sh  # a levee built elsewhere (default: scripts/release.sh,
#                                              # the profile-guided production build)
#   LOAD_ARGS=--http2 bench/callgrind.sh       # loadgen's request shape: --http2 (h2c from the client;
#                                              # HTTP/1.1 upstream), --body-bytes N (POSTs of N bytes)
#   LEVEE_LOG=warn bench/callgrind.sh          # without the access line
#   KEEP_WORK=1 bench/callgrind.sh             # keep the callgrind file (for callgrind_annotate)
#   PROXY=hyper bench/callgrind.sh             # bench/hyper-floor instead: bare hyper, Levee's floor
#   PROXY=haproxy bench/callgrind.sh           # HAProxy (bench/proxy.sh's config, log line on)
#   PROXY=h1 bench/callgrind.sh                # bench/h1-floor: own HTTP/1.1 framing, http::HeaderMap
#   PROXY=h1 H1_ARGS=--raw bench/callgrind.sh  # ... heads forwarded as they came; or one side
#   PROXY=h1 H1_ARGS='--server hyper' ...      # hyper's (--server hyper / --client hyper)
#   CONNECTIONS=64 LOAD=max bench/callgrind.sh # as many connections as bench/proxy.sh's max load
#   CACHE_SIM=1 ... bench/callgrind.sh         # also simulated cache misses and branch
#                                              # mispredictions a request (valgrind's model: L1 32 KiB
#                                              # each for code and data; the last level set to 512
#                                              # KiB, this machine's L2, so its misses are L2's)
#
# Needs valgrind and nginx (Debian packages; installed when missing), and haproxy for
# PROXY=haproxy.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

LOAD=${LOAD:-rate}
CONNECTIONS=${CONNECTIONS:-8}
SIM=()
if [ -n "${CACHE_SIM:-}" ]; then SIM=(--cache-sim=yes --branch-sim=yes --LL=524288,8,64); fi
PROXY=${PROXY:-levee}
CARGO=${CARGO:-cargo}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/levee-bench-callgrind.XXXXXX")

BENCH=callgrind
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
install_debian_packages valgrind nginx
if [ "$PROXY" = haproxy ]; then install_debian_packages haproxy; fi
build_release -p levee-bench-hyper-floor -p levee-bench-h1-floor

UP_PORT=$(free_port)
PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)
write_upstream_nginx_config "$WORK" "$UP_PORT"
nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/error.log" &
PIDS+=($!)
wait_port "$UP_PORT" "the upstream (nginx)"

write_levee_config "$WORK/levee.yaml" "$PROXY_PORT" "$ADMIN_PORT" "$UP_PORT"
case "$PROXY" in
levee) command=("$LEVEE_BIN" run --config "$WORK/levee.yaml" --threads 1) ;;
hyper) command=("$TARGET_DIR/release/hyper-floor" --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$UP_PORT") ;;
h1)
	# shellcheck disable=SC2206 # H1_ARGS is a list of flags
	command=("$TARGET_DIR/release/h1-floor" --listen "127.0.0.1:$PROXY_PORT" --upstream "127.0.0.1:$UP_PORT" ${H1_ARGS:-})
	;;
haproxy)
	write_haproxy_config "$WORK/haproxy.cfg" "$PROXY_PORT" "$UP_PORT" on
	command=(haproxy -db -f "$WORK/haproxy.cfg")
	;;
*)
	echo "bench/callgrind: PROXY is levee, hyper, h1 or haproxy, not $PROXY" >&2
	exit 2
	;;
esac
LEVEE_LOG=${LEVEE_LOG:-info} valgrind -q --tool=callgrind --instr-atstart=no "${SIM[@]}" \
	--callgrind-out-file="$WORK/callgrind.out" "${command[@]}" >"$WORK/proxy.out" 2>"$WORK/proxy.log" &
LEVEE_PID=$!
PIDS+=("$LEVEE_PID")
wait_port "$PROXY_PORT" "$PROXY (under valgrind)" 30

URL=http://127.0.0.1:$PROXY_PORT/items/1
# shellcheck disable=SC2206 # LOAD_ARGS is a list of flags
SHAPE=(${LOAD_ARGS:-})
"$LOADGEN" max --url "$URL" --connections "$CONNECTIONS" --warmup 1s --duration 3s "${SHAPE[@]}" >/dev/null
callgrind_control -i on "$LEVEE_PID" >/dev/null 2>&1
case "$LOAD" in
rate) "$LOADGEN" rate --url "$URL" --rate 200 --connections "$CONNECTIONS" --warmup 0s --duration 5s "${SHAPE[@]}" >"$WORK/load.json" ;;
max) "$LOADGEN" max --url "$URL" --connections "$CONNECTIONS" --warmup 0s --duration 5s "${SHAPE[@]}" >"$WORK/load.json" ;;
*)
	echo "bench/callgrind: LOAD is rate or max, not $LOAD" >&2
	exit 2
	;;
esac
callgrind_control -i off "$LEVEE_PID" >/dev/null 2>&1
callgrind_control -d "$LEVEE_PID" >/dev/null 2>&1
python3 - "$WORK/callgrind.out.1" "$WORK/load.json" "$LOAD" "$PROXY${H1_ARGS:+ $H1_ARGS}" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().splitlines()
events = next(l.split()[1:] for l in lines if l.startswith("events:"))
totals = [int(t) for t in next(l.split()[1:] for l in lines if l.startswith("totals:"))]
instructions = totals[0]
load = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
ok = load["ok"]
if ok == 0 or load["errors"] or load["non_2xx"]:
    sys.exit(f"bench/callgrind: the load failed: {load}")
print(f"bench/callgrind ({sys.argv[4]}, {sys.argv[3]}): {ok} requests, {instructions:,} instructions, "
      f"{instructions / ok:,.0f} instructions/request")
if len(events) > 1:
    # Ir instructions, Dr/Dw data reads/writes, I1mr/D1mr/D1mw first-level misses, ILmr/DLmr/
    # DLmw last-level (here L2) misses, Bc/Bcm conditional branches/mispredicted, Bi/Bim
    # indirect branches/mispredicted.
    print("  a request: " + "  ".join(f"{e} {t / ok:,.0f}" for e, t in zip(events, totals)))
PY
if [ -n "${KEEP_WORK:-}" ]; then echo "bench/callgrind: callgrind file $WORK/callgrind.out.1"; fi
