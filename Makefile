# Levee's two commands:
#   make run   – Levee's main job on the embedded defaults (nothing else to install)
#   make test  – every check and test: Rust, Go, conformance vectors (what CI runs)
SHELL := /bin/bash
CARGO ?= cargo
GO ?= go

.PHONY: run test fmt-check clippy rust-test conformance vectors-schema go-test bench bench-core fmt

run:
	$(CARGO) run --release -q -p levee -- simulate

test: fmt-check clippy rust-test conformance vectors-schema go-test
	@echo "make test: all checks passed"

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

rust-test:
	$(CARGO) test --workspace --locked

# The Rust conformance runner again, showing its "N of M vectors passed" line.
conformance:
	$(CARGO) test -q -p levee-core --locked --test conformance -- --nocapture 2>&1 | grep -E '^conformance:|test result'

vectors-schema:
	python3 -c 'import jsonschema' 2>/dev/null || python3 -m pip install -q jsonschema
	python3 conformance/tools/make_schema.py --check
	python3 conformance/validate.py

go-test:
	@test -z "$$(cd go && gofmt -l .)" || { echo "gofmt needed:"; cd go && gofmt -l .; exit 1; }
	cd go && $(GO) vet ./...
	cd go && $(GO) test -race -count=1 ./...
	cd go && $(GO) test -count=1 -run '^TestConformance$$' -v . | grep -E '^conformance:'

bench: bench-core

bench-core:
	$(CARGO) bench -p levee-core --bench guarded_call

fmt:
	$(CARGO) fmt --all
	cd go && gofmt -w .
