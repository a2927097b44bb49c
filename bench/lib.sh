# Shared by the benchmark scripts (bench/proxy.sh, bench/registry.sh, bench/callgrind.sh):
# Debian packages, the release build, and the processes a run starts. Sourced, not run; the
# sourcing script sets BENCH (its name in messages) and WORK (its scratch directory) first.

# Installs the Debian packages whose command of the same name is missing, and stops the
# services the packages start (the benchmarks run their own instances).
install_debian_packages() { # package...
	local need=() p
	for p in "$@"; do command -v "$p" >/dev/null 2>&1 || need+=("$p"); done
	[ ${#need[@]} -gt 0 ] || return 0
	local sudo=""
	if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo="sudo"; fi
	echo "bench/$BENCH: installing ${need[*]} (Debian packages)"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -q >/dev/null
	$sudo apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
	for p in "${need[@]}"; do $sudo service "$p" stop >/dev/null 2>&1 || true; done
}

# Builds the load generator and the extra packages given (`-p name`...) in release, and
# levee's production binary (scripts/release.sh, profile-guided) unless LEVEE_BIN names one
# (LEVEE_BIN=target/release/levee, after `cargo build --release -p levee`, measures the plain
# release build); sets TARGET_DIR, LEVEE_BIN and LOADGEN.
build_release() { # [-p package]...
	"${CARGO:-cargo}" build --release -q -p levee-bench-loadgen "$@"
	TARGET_DIR=$("${CARGO:-cargo}" metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
	if [ -z "${LEVEE_BIN:-}" ]; then
		LEVEE_BIN=$(CARGO=${CARGO:-cargo} bash "$ROOT/scripts/release.sh" | tail -n 1)
	fi
	LOADGEN=$TARGET_DIR/release/loadgen
}

# Every process a run starts goes into PIDS; they are stopped, and WORK removed (unless
# KEEP_WORK is set), when the script exits.
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[ -n "${KEEP_WORK:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port what [seconds, default 10]
	local seconds=${3:-10}
	for _ in $(seq 1 $((seconds * 20))); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	echo "bench/$BENCH: $2 did not listen on 127.0.0.1:$1 within $seconds s" >&2
	return 1
}

stop() { # pid
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

# The static upstream both proxy benchmarks measure against: one nginx worker answering every
# request with a 47-byte JSON body, no log, keep-alive without limit.
#   write_upstream_nginx_config DIR PORT   (DIR/nginx.conf; DIR also holds its pid and temp files)
write_upstream_nginx_config() {
	cat >"$1/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    client_body_temp_path $1;
    proxy_temp_path $1;
    fastcgi_temp_path $1;
    uwsgi_temp_path $1;
    scgi_temp_path $1;
    server {
        listen 127.0.0.1:$2;
        location / { default_type application/json; return 200 '{"id":"1","name":"item 1","served_by":"bench"}'; }
    }
}
EOF
}

# The levee config both proxy benchmarks measure: one route to the upstream with an enforcing
# breaker (SPEC defaults spelled out), a bulkhead above any benchmark's connections (so it
# admits every call) and retries on connect failures, resets and 502-504.
#   write_levee_config FILE PROXY_PORT ADMIN_PORT UPSTREAM_PORT
write_levee_config() {
	cat >"$1" <<EOF
service: bench
listeners:
  - address: 127.0.0.1:$2
admin:
  address: 127.0.0.1:$3
drain: {delay: 0s, timeout: 1s}
upstreams:
  upstream:
    endpoints: [127.0.0.1:$4]
    connect_timeout: 1s
    breaker:
      failure_rate_threshold: 50
      minimum_calls: 20
      open: {wait: 5s}
    bulkhead: {max_concurrent: 1024}
routes:
  - name: items
    upstream: upstream
    timeout: 2s
    criticality: critical
    retry:
      max_attempts: 2
      retry_on: [connect_failure, reset, 502, 503, 504]
EOF
}

# HAProxy as the proxy benchmarks' peer: one thread, keep-alive on both sides (`http-reuse
# always`), and with LOGS=on a log line per request (`option httplog`) on its stdout.
#   write_haproxy_config FILE PROXY_PORT UPSTREAM_PORT LOGS(on|off)
write_haproxy_config() {
	local log_global="" log_defaults=""
	if [ "$4" = on ]; then
		log_global="log stdout format raw local0 info"
		log_defaults=$'log global\n    option httplog'
	fi
	cat >"$1" <<EOF
global
    nbthread 1
    maxconn 4096
    $log_global
defaults
    mode http
    $log_defaults
    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 60s
    timeout server 60s
frontend ingress
    bind 127.0.0.1:$2
    default_backend upstream
backend upstream
    server up1 127.0.0.1:$3
EOF
}
