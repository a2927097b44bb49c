# Levee's two commands:
#   make demo  – the demo fleet behind levee, the dashboard and a drill (nothing else to install)
#   make test  – every check and test: Rust, Go, conformance, drills, Prometheus, browser (CI)
SHELL := /bin/bash
CARGO ?= cargo
GO ?= go
# Incremental caches only help the next edit; a test run from a clean clone would write gigabytes
# of them. Developers who iterate can set CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL ?= 0

.PHONY: demo demo-build release drills prometheus e2e fleet-go-test run simulate test fmt-check clippy rust-test registry-deps openapi conformance vectors-schema go-test bench bench-core bench-go bench-proxy bench-callgrind bench-registry fmt

# The demo fleet (Go storefront and recommendations, Rust inventory and pricing) behind a levee
# sidecar with its registry and dashboard; runs examples/fleet/drill.yaml, then keeps running.
demo: demo-build
	$(BIN_DIR)/levee demo

# The fleet's programs beside levee: Rust with cargo, Go with go build (PROFILE=debug for tests).
PROFILE ?= release
BIN_DIR = $(abspath $(or $(CARGO_TARGET_DIR),target))/$(PROFILE)
demo-build:
	$(CARGO) build -q --locked $(if $(filter release,$(PROFILE)),--release) -p levee -p inventory -p pricing
	cd examples/fleet && $(GO) build -o $(BIN_DIR)/ ./storefront ./recommendations

# The production binary: levee in release, guided by a profile of its own request path
# (scripts/release.sh; about twice a plain release build). Prints the binary's path.
release:
	CARGO=$(CARGO) bash scripts/release.sh

# levee in front of the inventory example alone (examples/levee.yaml).
run:
	bash scripts/run.sh

# The policy engine alone: a scripted outage on a virtual clock.
simulate:
	$(CARGO) run --release -q -p levee -- simulate

test: fmt-check clippy rust-test conformance vectors-schema openapi go-test fleet-go-test dashboards drills prometheus e2e
	@echo "make test: all checks passed"

# dashboards/levee.json reads only SPEC §11 metric names and labels (python3 stdlib only).
.PHONY: dashboards
dashboards:
	python3 dashboards/check.py

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# The registry's Redis tests start their own redis-server processes: make sure one is installed.
registry-deps:
	bash scripts/ensure-redis.sh

rust-test: registry-deps
	$(CARGO) test --workspace --locked

# The live registry against api/registry.openapi.yaml (schemathesis from PyPI).
openapi:
	bash scripts/check-openapi.sh 20

# The Rust conformance runner again, showing its "N of M vectors passed" line.
conformance:
	$(CARGO) test -q -p levee-core --locked --test conformance -- --nocapture 2>&1 | grep -E '^conformance:|test result'

vectors-schema:
	python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install -q jsonschema
	python3 conformance/tools/make_schema.py --check
	python3 conformance/validate.py

# go/registry's integration tests run the real registry (`levee registry`): the levee binary is
# built first and handed to them as LEVEE_BIN (without it they build it themselves).
LEVEE_BIN ?= $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/levee

go-test:
	@test -z "$$(cd go && gofmt -l .)" || { echo "gofmt needed:"; cd go && gofmt -l .; exit 1; }
	cd go && $(GO) vet ./...
	$(CARGO) build -q -p levee --locked
	cd go && LEVEE_BIN="$(LEVEE_BIN)" $(GO) test -race -count=1 ./...
	cd go && $(GO) test -count=1 -run '^TestConformance$$' -v . | grep -E '^conformance:'

# The demo fleet's Go services (examples/fleet, a module of its own).
fleet-go-test:
	@test -z "$$(cd examples/fleet && gofmt -l .)" || { echo "gofmt needed:"; cd examples/fleet && gofmt -l .; exit 1; }
	cd examples/fleet && $(GO) vet ./... && $(GO) test -race -count=1 ./...

# A real `levee demo`: its drill must pass, a drill built to fail an SLO must exit 1.
drills:
	$(MAKE) --no-print-directory demo-build PROFILE=debug
	BIN=$(abspath $(or $(CARGO_TARGET_DIR),target))/debug bash scripts/drills.sh

# The dashboard in headless Chromium (Debian's chromium, installed if missing) against a real
# `levee demo`: an outage shows the breaker open; screenshot in artifacts/dashboard.png.
e2e:
	$(MAKE) --no-print-directory demo-build PROFILE=debug
	bash scripts/e2e-dashboard.sh

# A real Prometheus (Debian package) scrapes levee's /metrics; PromQL finds the breaker states.
prometheus:
	$(CARGO) build -q --locked -p levee
	LEVEE=$(abspath $(or $(CARGO_TARGET_DIR),target))/debug/levee bash scripts/check-prometheus.sh

bench: bench-core bench-go bench-proxy bench-registry

bench-core:
	$(CARGO) bench -p levee-core --bench guarded_call

# The Go SDK's guarded-call overhead beside sony/gobreaker and failsafe-go (bench/go, a module
# of its own), with medians and ratios.
bench-go:
	GO=$(GO) bash bench/go.sh

# levee run beside HAProxy and nginx (Debian's packages, installed if missing) and bare hyper
# (bench/hyper-floor, the floor of levee's stack) on loopback: max throughput, fixed-rate
# latency, CPU per request, peak RSS, as ratios to HAProxy.
bench-proxy:
	CARGO=$(CARGO) bash bench/proxy.sh

# Instructions per proxied request under valgrind's callgrind (valgrind and nginx from Debian's
# packages, installed if missing); not part of `bench`: it measures the proxy alone.
bench-callgrind:
	CARGO=$(CARGO) bash bench/callgrind.sh

# levee registry, memory and Redis backends: outcomes ingested per second, propagation of a
# transition to 100 SSE watchers.
bench-registry:
	CARGO=$(CARGO) bash bench/registry.sh

fmt:
	$(CARGO) fmt --all
	cd go && gofmt -w .
