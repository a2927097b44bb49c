# Levee's two commands:
#   make run   – Levee's main job on the embedded defaults (nothing else to install)
#   make test  – every check and test: Rust, Go, conformance vectors (what CI runs)
SHELL := /bin/bash
CARGO ?= cargo
GO ?= go

.PHONY: run simulate test fmt-check clippy rust-test registry-deps openapi conformance vectors-schema go-test bench bench-core bench-go bench-proxy bench-registry fmt

run:
	bash scripts/run.sh

# The policy engine alone: a scripted outage on a virtual clock.
simulate:
	$(CARGO) run --release -q -p levee -- simulate

test: fmt-check clippy rust-test conformance vectors-schema openapi go-test dashboards
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

bench: bench-core bench-go bench-proxy bench-registry

bench-core:
	$(CARGO) bench -p levee-core --bench guarded_call

# The Go SDK's guarded-call overhead beside sony/gobreaker and failsafe-go (bench/go, a module
# of its own), with medians and ratios.
bench-go:
	GO=$(GO) bash bench/go.sh

# levee run beside HAProxy and nginx (Debian's packages, installed if missing) on loopback:
# max throughput, fixed-rate latency, CPU per request, peak RSS, as ratios to HAProxy.
bench-proxy:
	CARGO=$(CARGO) bash bench/proxy.sh

# levee registry, memory and Redis backends: outcomes ingested per second, propagation of a
# transition to 100 SSE watchers.
bench-registry:
	CARGO=$(CARGO) bash bench/registry.sh

fmt:
	$(CARGO) fmt --all
	cd go && gofmt -w .
