#!/usr/bin/env bash
# The fleet registry (`levee registry`) under load, with the memory backend and with Redis:
# batched outcome reports ingested per second, and how fast a fleet transition reaches 100 SSE
# watchers. docs/benchmarks.md ("Registry: ingest and propagation") holds the figures and says
# how to read them.
#
#   bench/registry.sh                        # 3 rounds per backend, 10 s of ingest, 50 transitions
#   ROUNDS=1 DURATION=5s bench/registry.sh   # a quick look
#   BACKENDS=memory bench/registry.sh        # only one backend
#   KEYS=20 OUTCOMES=100 bench/registry.sh   # the shape of one report (below)
#   LEVEE_BIN=/path/to/levee bench/registry.sh
#   OUT=/tmp/registry.jsonl bench/registry.sh
#   NICE=-10 bench/registry.sh               # all benchmark processes above a neighbour's build (root)
#
# Ingest: CONNECTIONS keep-alive connections post `POST /v1/reports` back to back for DURATION
# after a warm-up. Each report is one instance's batch for the current second (INSTANCES
# instance names in rotation): KEYS endpoint keys, shared by every instance as a fleet's
# dependencies are, with one bucket each of OUTCOMES counted calls (98% success, 1.5% failure,
# 0.5% timeout: the breakers stay closed, so every bucket counts). Outcomes/s is the counts of
# the buckets the registry accepted per second; the registry's work is per (key, bucket), so
# key-buckets/s is the figure that does not depend on OUTCOMES.
#
# Propagation: WATCHERS streams on `GET /v1/watch`; ROUNDS_WATCH operator overrides on one key,
# alternately `PUT forced_open` and `DELETE` (each a breaker transition), PAUSE apart; the
# latency is from sending the override until a watcher has read the breaker event, over every
# (transition, watcher) pair ("each"), and until the last of the watchers has ("all").
#
# A fresh registry (and a fresh redis-server on a free port) per backend and round; rounds
# interleave the backends. Placement on 2 cores (taskset): the registry alone on CPU 1; the load
# generator and redis-server on CPU 0.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

ROUNDS=${ROUNDS:-3}
BACKENDS=${BACKENDS:-memory redis}
WARMUP=${WARMUP:-2s}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
KEYS=${KEYS:-20}
OUTCOMES=${OUTCOMES:-100}
INSTANCES=${INSTANCES:-50}
WATCHERS=${WATCHERS:-100}
ROUNDS_WATCH=${ROUNDS_WATCH:-50}
PAUSE=${PAUSE:-50ms}
CARGO=${CARGO:-cargo}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/levee-bench-registry.XXXXXX")
OUT=${OUT:-${TMPDIR:-/tmp}/levee-bench-registry-$(date +%Y%m%d-%H%M%S).jsonl}
: >"$OUT"

case " $BACKENDS " in *" redis "*) bash scripts/ensure-redis.sh ;; esac

echo "bench/registry: building levee and loadgen (release)"
BENCH=registry
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
build_release

if [ "$(nproc)" -ge 2 ]; then
	PIN_SERVER=(taskset -c 1)
	PIN_CLIENT=(taskset -c 0)
	PLACEMENT="registry on CPU 1; load generator and redis-server on CPU 0"
else
	PIN_SERVER=()
	PIN_CLIENT=()
	PLACEMENT="one CPU: everything shares it"
fi
# NICE=-10: every benchmark process (peers alike) at a higher priority than a neighbour's build,
# for less scheduling noise in the tails on a shared machine. Off by default.
if [ -n "${NICE:-}" ]; then
	PIN_SERVER=(nice -n "$NICE" "${PIN_SERVER[@]}")
	PIN_CLIENT=(nice -n "$NICE" "${PIN_CLIENT[@]}")
	PLACEMENT="$PLACEMENT; nice $NICE"
fi

# Tokens for this run only (the registry reads them from the environment).
export LEVEE_REGISTRY_REPORTER_TOKEN="bench-reporter-$RANDOM$RANDOM"
export LEVEE_REGISTRY_OPERATOR_TOKEN="bench-operator-$RANDOM$RANDOM"

echo "bench/registry: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $PLACEMENT"
echo "bench/registry: $("$LEVEE_BIN" --version)$(command -v redis-server >/dev/null && echo ", $(redis-server --version | cut -d' ' -f1-3)")"
echo "bench/registry: $ROUNDS rounds; ingest: $CONNECTIONS connections, $KEYS keys × 1 bucket × $OUTCOMES outcomes per report, $WARMUP + $DURATION; watch: $WATCHERS watchers × $ROUNDS_WATCH transitions"

for round in $(seq 1 "$ROUNDS"); do
	for backend in $BACKENDS; do
		redis_pid=""
		case "$backend" in
		memory) backend_arg=memory ;;
		redis)
			redis_port=$(free_port)
			mkdir -p "$WORK/redis-$round"
			"${PIN_CLIENT[@]}" redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no \
				--dir "$WORK/redis-$round" --daemonize no --loglevel warning >"$WORK/redis.log" 2>&1 &
			redis_pid=$!
			PIDS+=("$redis_pid")
			wait_port "$redis_port" redis-server
			backend_arg="redis://127.0.0.1:$redis_port"
			;;
		*) echo "bench/registry: unknown backend $backend" >&2; exit 2 ;;
		esac
		port=$(free_port)
		RUST_LOG=warn "${PIN_SERVER[@]}" "$LEVEE_BIN" registry --listen "127.0.0.1:$port" --backend "$backend_arg" \
			>"$WORK/registry.out" 2>"$WORK/registry.log" &
		registry_pid=$!
		PIDS+=("$registry_pid")
		wait_port "$port" "levee registry ($backend)"
		labels=(--label "backend=$backend" --label "round=$round")

		"${PIN_CLIENT[@]}" "$LOADGEN" ingest --url "http://127.0.0.1:$port" --connections "$CONNECTIONS" \
			--keys "$KEYS" --outcomes "$OUTCOMES" --instances "$INSTANCES" --warmup "$WARMUP" --duration "$DURATION" \
			--pid "$registry_pid" "${labels[@]}" | tee -a "$OUT" >"$WORK/last.json"
		python3 - "$WORK/last.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
extra = "".join(f", {r[k]} {k}" for k in ("failed", "late", "not_counted") if r.get(k))
print(f"  round {r['round']} {r['backend']:6} ingest {r['outcomes_per_s']:>10.0f} outcomes/s ({r['key_buckets_per_s']:.0f} key-buckets/s, {r['reports_per_s']:.0f} reports/s, report p99 {r['report_p99_us']/1000:.1f} ms, registry cpu {r.get('cpu_util', 0):.2f}){extra}")
EOF
		"${PIN_CLIENT[@]}" "$LOADGEN" watch --url "http://127.0.0.1:$port" --watchers "$WATCHERS" \
			--rounds "$ROUNDS_WATCH" --pause "$PAUSE" --pid "$registry_pid" "${labels[@]}" | tee -a "$OUT" >"$WORK/last.json"
		python3 - "$WORK/last.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
miss = f", {r['missing']} MISSING" if r["missing"] else ""
print(f"  round {r['round']} {r['backend']:6} watch  each p50 {r['each_p50_us']/1000:.2f} ms p99 {r['each_p99_us']/1000:.2f} ms; all {r['watchers']} p99 {r['all_p99_us']/1000:.2f} ms; override write p50 {r['write_p50_us']/1000:.2f} ms{miss}")
EOF
		stop "$registry_pid"
		[ -z "$redis_pid" ] || stop "$redis_pid"
	done
done

python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def med(backend, mode, field):
    v = [r[field] for r in rows if r["backend"] == backend and r["mode"] == mode and field in r]
    return statistics.median(v) if v else None
backends = []
for r in rows:
    if r["backend"] not in backends:
        backends.append(r["backend"])
rounds = len({r["round"] for r in rows})
print(f"\nmedian of {rounds} round(s)\n")
cols = ["outcomes/s", "key-buckets/s", "kb/s/core", "reports/s", "report p99 ms", "cpu", "prop p50 ms", "prop p99 ms", "all p99 ms"]
print(f"{'backend':8}" + "".join(f"{c:>14}" for c in cols))
target = {"memory": 200_000, "redis": 50_000}
checks = []
for b in backends:
    o, k, rp = med(b, "ingest", "outcomes_per_s"), med(b, "ingest", "key_buckets_per_s"), med(b, "ingest", "reports_per_s")
    lat, cpu = med(b, "ingest", "report_p99_us"), med(b, "ingest", "cpu_util")
    # key-buckets per second of the registry's own CPU: what a neighbour's build does not distort
    pc = [r["key_buckets_per_s"] / r["cpu_util"] for r in rows if r["backend"] == b and r["mode"] == "ingest" and r.get("cpu_util")]
    pc = statistics.median(pc) if pc else None
    p50, p99, a99 = med(b, "watch", "each_p50_us"), med(b, "watch", "each_p99_us"), med(b, "watch", "all_p99_us")
    f = lambda v, s="{:.0f}": "-" if v is None else s.format(v)
    print(f"{b:8}" + "".join(f"{x:>14}" for x in [f(o), f(k), f(pc), f(rp), f(lat and lat / 1000, "{:.1f}"), f(cpu, "{:.2f}"), f(p50 and p50 / 1000, "{:.2f}"), f(p99 and p99 / 1000, "{:.2f}"), f(a99 and a99 / 1000, "{:.2f}")]))
    if o is not None and b in target:
        checks.append((f"{b} ≥ {target[b] // 1000}k outcomes/s", o >= target[b]))
    if p99 is not None:
        checks.append((f"{b} propagation p99 ≤ 50 ms", p99 <= 50_000))
print("\nregistry targets: " + "; ".join(f"{n}: {'met' if ok else 'MISSED'}" for n, ok in checks))
EOF
echo "bench/registry: raw results in $OUT"
