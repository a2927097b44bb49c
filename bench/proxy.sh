#!/usr/bin/env bash
# Levee's proxy beside HAProxy and nginx (Debian's packages), in one run on loopback: the same
# upstream reached directly, through `levee run` (breaker, bulkhead and retry on the route),
# through HAProxy and through nginx, each with one worker thread and keep-alive to the upstream;
# and through bench/hyper-floor (target `hyper`), bare hyper with nothing of Levee's: the floor
# of the stack Levee's proxy is built on, which says how much of Levee's cost is its own.
# docs/benchmarks.md ("Proxy: levee beside HAProxy and nginx") holds the figures and says how
# to read them.
#
#   bench/proxy.sh                         # 3 rounds, 10 s per measurement, 2000 req/s fixed rate
#   ROUNDS=1 DURATION=5s bench/proxy.sh    # a quick look
#   LOGS=off bench/proxy.sh                # no access log anywhere (default: one line per request on all three)
#   UPSTREAM=inventory bench/proxy.sh      # examples/inventory as the upstream instead of a static nginx
#   TARGETS="direct levee" bench/proxy.sh  # only some of them
#   LEVEE_BIN=/path/to/levee bench/proxy.sh  # a levee built elsewhere (default: cargo build --release)
#   OUT=/tmp/proxy.jsonl bench/proxy.sh    # where the raw results go (one JSON object per measurement)
#   NICE=-10 bench/proxy.sh                # all benchmark processes above a neighbour's build (root)
#
# Per target and round, after a warm-up: (1) closed-loop maximum throughput, CONNECTIONS
# keep-alive connections with one request in flight each, for DURATION; (2) open-loop fixed
# RATE for DURATION, latency measured from each request's due time (coordinated omission
# corrected, as wrk2 does), and the proxy's CPU time (utime + stime of every process of it, from
# /proc/<pid>/stat) over the measured period divided by the requests answered in it; then the
# proxy's peak RSS (VmHWM; for nginx the master and worker summed). Rounds interleave the
# targets (direct, levee, haproxy, nginx, hyper, direct, ...) so a neighbour's build slowing the
# machine down hits all of them alike; the table shows the median of the rounds and each
# figure's ratio to HAProxy's. "added p99" is the proxy's p99 minus the direct p99 of the same
# round.
#
# Placement on 2 cores (taskset): the proxy alone on CPU 1; the load generator and the upstream
# share CPU 0. The max-throughput figure is therefore the proxy's only while its CPU 1 is
# saturated: the `cpu` column (proxy CPU seconds per second, 1.00 = one core) says whether it
# was; well below 1.00 means the generator and upstream on CPU 0 were the limit, or a
# neighbour's process took part of CPU 1. `req/s/core` (max req/s divided by cpu) is the figure
# neither distorts much.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
RATE=${RATE:-2000}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-64}
TARGETS=${TARGETS:-direct levee haproxy nginx hyper}
UPSTREAM=${UPSTREAM:-nginx}
LOGS=${LOGS:-on}
CARGO=${CARGO:-cargo}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/levee-bench-proxy.XXXXXX")
OUT=${OUT:-${TMPDIR:-/tmp}/levee-bench-proxy-$(date +%Y%m%d-%H%M%S).jsonl}
: >"$OUT"

# --- what it needs --------------------------------------------------------------------------
BENCH=proxy
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
install_debian_packages haproxy nginx

echo "bench/proxy: building levee, hyper-floor, inventory and loadgen (release)"
extra=(-p levee-bench-hyper-floor)
[ -n "${INVENTORY_BIN:-}" ] || extra+=(-p inventory)
build_release "${extra[@]}"
INVENTORY_BIN=${INVENTORY_BIN:-$TARGET_DIR/release/inventory}

# --- placement ------------------------------------------------------------------------------
if [ "$(nproc)" -ge 2 ]; then
	PIN_PROXY=(taskset -c 1)
	PIN_CLIENT=(taskset -c 0)
	PLACEMENT="proxy on CPU 1; load generator and upstream on CPU 0"
else
	PIN_PROXY=()
	PIN_CLIENT=()
	PLACEMENT="one CPU: everything shares it (figures are not comparable with 2-core runs)"
fi
# NICE=-10: every benchmark process (peers alike) at a higher priority than a neighbour's build,
# for less scheduling noise in the tails on a shared machine. Off by default.
if [ -n "${NICE:-}" ]; then
	PIN_PROXY=(nice -n "$NICE" "${PIN_PROXY[@]}")
	PIN_CLIENT=(nice -n "$NICE" "${PIN_CLIENT[@]}")
	PLACEMENT="$PLACEMENT; nice $NICE"
fi

# --- processes ------------------------------------------------------------------------------
# Peak RSS in KiB of the given processes, summed.
peak_rss() {
	local total=0 kib
	for p in "$@"; do
		kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
		total=$((total + ${kib:-0}))
	done
	echo "$total"
}

# --- the upstream ---------------------------------------------------------------------------
UP_PORT=$(free_port)
case "$UPSTREAM" in
nginx)
	mkdir -p "$WORK/upstream"
	write_upstream_nginx_config "$WORK/upstream" "$UP_PORT"
	"${PIN_CLIENT[@]}" nginx -p "$WORK/upstream" -c "$WORK/upstream/nginx.conf" -e "$WORK/upstream/error.log" &
	UP_PIDS=("$!")
	PIDS+=($!)
	;;
inventory)
	"${PIN_CLIENT[@]}" "$INVENTORY_BIN" --port "$UP_PORT" --name bench >/dev/null &
	UP_PIDS=("$!")
	PIDS+=($!)
	;;
*)
	echo "bench/proxy: UPSTREAM is nginx or inventory, not $UPSTREAM" >&2
	exit 2
	;;
esac
wait_port "$UP_PORT" "the upstream ($UPSTREAM)"
if [ "$UPSTREAM" = nginx ]; then UP_PIDS+=($(pgrep -P "${UP_PIDS[0]}")); fi
PATH_Q=/items/1

# --- the proxies ----------------------------------------------------------------------------
PROXY_PORT=$(free_port)
ADMIN_PORT=$(free_port)

start_levee() {
	mkdir -p "$WORK/levee"
	write_levee_config "$WORK/levee/levee.yaml" "$PROXY_PORT" "$ADMIN_PORT" "$UP_PORT"
	local level=info
	[ "$LOGS" = on ] || level=warn
	LEVEE_LOG=$level "${PIN_PROXY[@]}" "$LEVEE_BIN" run --config "$WORK/levee/levee.yaml" --threads 1 \
		2>"$WORK/levee/levee.log" &
	PIDS+=($!)
	PROXY_PIDS=("$!")
}

start_haproxy() {
	mkdir -p "$WORK/haproxy"
	write_haproxy_config "$WORK/haproxy/haproxy.cfg" "$PROXY_PORT" "$UP_PORT" "$LOGS"
	"${PIN_PROXY[@]}" haproxy -db -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/haproxy.log" 2>&1 &
	PIDS+=($!)
	PROXY_PIDS=("$!")
}

start_nginx() {
	mkdir -p "$WORK/nginx"
	local access="access_log off;"
	[ "$LOGS" = on ] && access="access_log $WORK/nginx/access.log;"
	cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    $access
    keepalive_requests 10000000;   # the default (1000) closes client connections
    keepalive_timeout 120s;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    upstream upstream {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
	"${PIN_PROXY[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
	local master=$!
	PIDS+=("$master")
	PROXY_PIDS=("$master")
	wait_port "$PROXY_PORT" nginx
	local worker
	for _ in $(seq 1 50); do
		worker=$(pgrep -P "$master" | head -1 || true)
		[ -n "$worker" ] && break
		sleep 0.1
	done
	PROXY_PIDS+=($worker)
}

# bench/hyper-floor: hyper's server and client connections and nothing else (no policy, no
# header rewriting, no log, an upstream connection per client connection). Not a peer to beat:
# the floor under Levee's proxy, which runs on the same two connections.
start_hyper() {
	"${PIN_PROXY[@]}" "$TARGET_DIR/release/hyper-floor" --listen "127.0.0.1:$PROXY_PORT" \
		--upstream "127.0.0.1:$UP_PORT" &
	PIDS+=($!)
	PROXY_PIDS=("$!")
}

# --- the runs -------------------------------------------------------------------------------
echo "bench/proxy: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $PLACEMENT"
echo "bench/proxy: $("$LEVEE_BIN" --version), $(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3); upstream: $UPSTREAM"
echo "bench/proxy: $ROUNDS rounds; max: $CONNECTIONS connections; rate: $RATE/s over $RATE_CONNECTIONS connections; $WARMUP warm-up + $DURATION each; access logs $LOGS"

for round in $(seq 1 "$ROUNDS"); do
	for target in $TARGETS; do
		PROXY_PIDS=()
		case "$target" in
		direct) port=$UP_PORT ;;
		levee) start_levee; port=$PROXY_PORT ;;
		haproxy) start_haproxy; port=$PROXY_PORT ;;
		nginx) start_nginx; port=$PROXY_PORT ;;
		hyper) start_hyper; port=$PROXY_PORT ;;
		*) echo "bench/proxy: unknown target $target" >&2; exit 2 ;;
		esac
		wait_port "$port" "$target"
		url="http://127.0.0.1:$port$PATH_Q"
		pid_args=()
		# direct: the CPU columns are the upstream's own, for scale.
		if [ "$target" = direct ]; then measured=("${UP_PIDS[@]}"); else measured=("${PROXY_PIDS[@]}"); fi
		for p in "${measured[@]}"; do pid_args+=(--pid "$p"); done
		labels=(--label "target=$target" --label "round=$round" --label "logs=$LOGS" --label "upstream=$UPSTREAM")
		"${PIN_CLIENT[@]}" "$LOADGEN" max --url "$url" --connections "$CONNECTIONS" \
			--warmup "$WARMUP" --duration "$DURATION" "${pid_args[@]}" "${labels[@]}" | tee -a "$OUT" >"$WORK/last.json"
		python3 - "$WORK/last.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
err = f", {r['errors']} errors, {r['non_2xx']} non-2xx" if r["errors"] or r["non_2xx"] else ""
who = "upstream" if r["target"] == "direct" else "proxy"
cpu = f", {who} cpu {r['cpu_util']:.2f}" if "cpu_util" in r else ""
print(f"  round {r['round']} {r['target']:8} max   {r['rps']:>8.0f} req/s{cpu}{err}")
EOF
		"${PIN_CLIENT[@]}" "$LOADGEN" rate --url "$url" --rate "$RATE" --connections "$RATE_CONNECTIONS" \
			--warmup "$WARMUP" --duration "$DURATION" "${pid_args[@]}" "${labels[@]}" | tee -a "$OUT" >"$WORK/last.json"
		python3 - "$WORK/last.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
err = f", {r['errors']} errors, {r['non_2xx']} non-2xx" if r["errors"] or r["non_2xx"] else ""
who = "upstream" if r["target"] == "direct" else "proxy"
cpu = f", {r['cpu_us_per_req']:.1f} µs {who} CPU/req" if "cpu_us_per_req" in r else ""
print(f"  round {r['round']} {r['target']:8} rate  p50 {r['p50_us']:.0f} µs, p99 {r['p99_us']:.0f} µs, p99.9 {r['p999_us']:.0f} µs{cpu}{err}")
EOF
		if [ ${#PROXY_PIDS[@]} -gt 0 ]; then
			rss=$(peak_rss "${PROXY_PIDS[@]}")
			echo "{\"mode\":\"rss\",\"target\":\"$target\",\"round\":\"$round\",\"rss_kib\":$rss,\"processes\":${#PROXY_PIDS[@]}}" >>"$OUT"
			stop "${PROXY_PIDS[0]}"
		fi
		rm -f "$WORK"/*/access.log "$WORK/levee/levee.log" "$WORK/haproxy/haproxy.log"
	done
done

# --- the table ------------------------------------------------------------------------------
python3 - "$OUT" "$RATE" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rate = sys.argv[2]
def values(target, mode, field):
    return [r[field] for r in rows if r["target"] == target and r["mode"] == mode and field in r]
def med(target, mode, field):
    v = values(target, mode, field)
    return statistics.median(v) if v else None
def per_core(target):
    # closed-loop throughput per core-second of the proxy: what it would do with a core to itself
    v = [r["rps"] / r["cpu_util"] for r in rows if r["target"] == target and r["mode"] == "max" and r.get("cpu_util")]
    return statistics.median(v) if v else None
def added(target, field):
    # per round: the proxy's figure minus the direct one of the same round; then the median
    v = []
    for r in rows:
        if r["target"] == target and r["mode"] == "rate" and field in r:
            d = [x for x in rows if x["target"] == "direct" and x["mode"] == "rate" and x["round"] == r["round"]]
            if d:
                v.append(r[field] - d[0][field])
    return statistics.median(v) if v else None
targets = []
for r in rows:
    if r["target"] not in targets:
        targets.append(r["target"])
rounds = len({r["round"] for r in rows})
def fmt(v, f="{:.0f}"):
    return "-" if v is None else f.format(v)
def ratio(v, ref):
    return "-" if v is None or ref is None or ref <= 0 or v < 0 else f"{v / ref:.2f}×"
cols = ["max req/s", "cpu", "req/s/core", "p50 µs", "p99 µs", "p99.9 µs", "added p50", "added p99", "CPU µs/req", "RSS MiB"]
print(f"\nmedian of {rounds} round(s); open loop at {rate} req/s; direct: cpu columns are the upstream's own\n")
print(f"{'target':9}" + "".join(f"{c:>12}" for c in cols))
vals = {}
for t in targets:
    mx, util, pc = med(t, "max", "rps"), med(t, "max", "cpu_util"), per_core(t)
    p50, p99, p999 = med(t, "rate", "p50_us"), med(t, "rate", "p99_us"), med(t, "rate", "p999_us")
    a50 = added(t, "p50_us") if t != "direct" else None
    a99 = added(t, "p99_us") if t != "direct" else None
    cpu = med(t, "rate", "cpu_us_per_req")
    rss = med(t, "rss", "rss_kib")
    rss = None if rss is None else rss / 1024
    vals[t] = dict(max=mx, per_core=pc, added=a99, cpu=cpu, rss=rss)
    print(f"{t:9}" + "".join(f"{x:>12}" for x in [fmt(mx), fmt(util, "{:.2f}"), fmt(pc), fmt(p50), fmt(p99), fmt(p999), fmt(a50), fmt(a99), fmt(cpu, "{:.1f}"), fmt(rss, "{:.1f}")]))
if "haproxy" in vals:
    h = vals["haproxy"]
    print()
    for t in [t for t in targets if t not in ("direct", "haproxy")]:
        v = vals[t]
        print(f"{t + ' / haproxy':17} max req/s {ratio(v['max'], h['max'])}, req/s/core {ratio(v['per_core'], h['per_core'])}, "
              f"CPU/req {ratio(v['cpu'], h['cpu'])}, added p99 {ratio(v['added'], h['added'])}, RSS {ratio(v['rss'], h['rss'])}")
if "levee" in vals:
    v = vals["levee"]
    checks = []
    if "haproxy" in vals:
        h = vals["haproxy"]
        if v["max"] and h["max"]:
            checks.append(("throughput ≥ 1.0× HAProxy", v["max"] >= h["max"]))
        if v["cpu"] and h["cpu"]:
            checks.append(("CPU per request ≤ HAProxy", v["cpu"] <= h["cpu"]))
        if v["added"] is not None and h["added"] is not None:
            checks.append(("added p99 ≤ HAProxy", v["added"] <= h["added"]))
    if v["rss"]:
        checks.append(("RSS ≤ 20 MiB", v["rss"] <= 20))
    print("\nlevee targets: " + "; ".join(f"{n}: {'met' if ok else 'MISSED'}" for n, ok in checks))
EOF
echo "bench/proxy: raw results in $OUT"
