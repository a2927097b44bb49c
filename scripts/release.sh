#!/usr/bin/env bash
# The production build of `levee`: release profile (fat LTO), guided by a profile of its own
# request path (PGO). docs/decisions.md, "The production binary is profile-guided", says why.
#
#   scripts/release.sh        # or `make release`; prints the binary's path on its last line
#
# 1. An instrumented levee (`-Cprofile-generate`) is built into target/pgo-generate, and
#    examples/inventory and bench/loadgen in the plain release profile.
# 2. Training: the instrumented levee, in front of inventory on loopback ports, serves HTTP/1.1
#    GETs (closed loop over 64 connections, then 2000/s open loop), HTTP/1.1 POSTs with 1 KiB
#    bodies, and HTTP/2 (h2c) GETs and POSTs, with the breaker, bulkhead and retry on its routes
#    and one access line a request. It writes its counts when SIGTERM has drained it. Training
#    is skipped when neither the instrumented binary nor this script is newer than the profile.
# 3. llvm-profdata (rustup's llvm-tools, installed when missing) merges the counts, and levee is
#    built again with `-Cprofile-use` into target/pgo-use.
#
# Both builds name the host target explicitly, so RUSTFLAGS reach Levee and its dependencies
# but not build scripts or proc macros (which would otherwise write counts at compile time).
# The plain `cargo build --release -p levee` stays as it was: the demo and tests use it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
CARGO=${CARGO:-cargo}

say() { echo "release: $*" >&2; }
fail() {
	echo "release: $*" >&2
	exit 1
}

HOST=$(rustc -vV | sed -n 's/^host: //p')
TARGET_DIR=$("$CARGO" metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
GENERATE_DIR=$TARGET_DIR/pgo-generate
USE_DIR=$TARGET_DIR/pgo-use
PROFILES=$TARGET_DIR/pgo-profiles
PROFDATA=$TARGET_DIR/pgo/levee.profdata

# --- llvm-profdata, from the toolchain's own llvm-tools (its format matches rustc's LLVM) ----
profdata_tool() {
	echo "$(rustc --print sysroot)/lib/rustlib/$HOST/bin/llvm-profdata"
}
if [ ! -x "$(profdata_tool)" ]; then
	say "installing rustup's llvm-tools component (for llvm-profdata)"
	rustup component add llvm-tools >&2 ||
		fail "llvm-profdata is missing and 'rustup component add llvm-tools' failed; install it, or build levee without profile guidance: cargo build --release -p levee"
fi
LLVM_PROFDATA=$(profdata_tool)
[ -x "$LLVM_PROFDATA" ] || fail "no llvm-profdata at $LLVM_PROFDATA after installing llvm-tools"

# --- 1. the instrumented build and the training's peers --------------------------------------
say "building the instrumented levee ($GENERATE_DIR)"
RUSTFLAGS="-Cprofile-generate=$PROFILES" CARGO_TARGET_DIR=$GENERATE_DIR \
	"$CARGO" build --release -q --locked --target "$HOST" -p levee
INSTRUMENTED=$GENERATE_DIR/$HOST/release/levee
"$CARGO" build --release -q --locked -p inventory -p levee-bench-loadgen
INVENTORY=$TARGET_DIR/release/inventory
LOADGEN=$TARGET_DIR/release/loadgen

# --- 2. training --------------------------------------------------------------------------------
if [ -s "$PROFDATA" ] && [ "$PROFDATA" -nt "$INSTRUMENTED" ] && [ "$PROFDATA" -nt "$0" ]; then
	say "the profile is newer than the instrumented levee and this script: training skipped"
else
	WORK=$(mktemp -d "${TMPDIR:-/tmp}/levee-release.XXXXXX")
	BENCH=release
	# shellcheck source=bench/lib.sh
	source "$ROOT/bench/lib.sh" # free_port, wait_port, write_levee_config, PIDS and cleanup
	rm -rf "$PROFILES"
	UP_PORT=$(free_port)
	PROXY_PORT=$(free_port)
	ADMIN_PORT=$(free_port)
	"$INVENTORY" --port "$UP_PORT" --name training >/dev/null &
	PIDS+=($!)
	wait_port "$UP_PORT" "inventory"
	write_levee_config "$WORK/levee.yaml" "$PROXY_PORT" "$ADMIN_PORT" "$UP_PORT"
	"$INSTRUMENTED" run --config "$WORK/levee.yaml" --threads 1 2>"$WORK/levee.log" &
	LEVEE_PID=$!
	PIDS+=("$LEVEE_PID")
	wait_port "$PROXY_PORT" "the instrumented levee"
	say "training: HTTP/1.1 and HTTP/2 GETs and POSTs through the instrumented levee"
	URL=http://127.0.0.1:$PROXY_PORT
	train() { # loadgen arguments...
		local out
		out=$("$LOADGEN" "$@" --warmup 0s) || fail "training load failed: loadgen $*"
		python3 -c '
import json, sys
r = json.loads(sys.argv[1])
if not r["ok"] or r["errors"] or r["non_2xx"]:
    sys.exit(f"release: training load answered badly ({sys.argv[2]}): {r}")
' "$out" "$*"
	}
	train max --url "$URL/items/1" --connections 64 --duration 4s
	train rate --url "$URL/items/1" --rate 2000 --connections 64 --duration 2s
	train max --url "$URL/echo" --body-bytes 1024 --connections 16 --duration 2s
	train max --url "$URL/items/1" --http2 --connections 16 --duration 2s
	train max --url "$URL/echo" --http2 --body-bytes 1024 --connections 16 --duration 2s
	# SIGTERM drains levee; the counts are written as it exits.
	kill -TERM "$LEVEE_PID"
	wait "$LEVEE_PID" || fail "the instrumented levee did not exit cleanly; the end of its log:
$(tail -n 20 "$WORK/levee.log")"
	mkdir -p "$(dirname "$PROFDATA")"
	"$LLVM_PROFDATA" merge -o "$PROFDATA" "$PROFILES"
	say "profile: $PROFDATA"
fi

# --- 3. the guided build ------------------------------------------------------------------------
say "building levee with the profile ($USE_DIR)"
RUSTFLAGS="-Cprofile-use=$PROFDATA" CARGO_TARGET_DIR=$USE_DIR \
	"$CARGO" build --release -q --locked --target "$HOST" -p levee
echo "$USE_DIR/$HOST/release/levee"
