# FHIRcast in Rust: set-up, build, test. GNU make.
#   make dev    install whatever is missing, build, run the hub locally
#   make test   install whatever is missing, build, run every test
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export PATH := $(HOME)/.cargo/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

# Components scripts/setup.sh installs. Only the Rust toolchain is needed so far; later
# issues add `wasm-tools` (wasm-bindgen-cli, worker-build), `node` (wrangler, miniflare,
# binaryen, ...) and `chromium` (browser tests) as the hub and the SDK come to need them.
SETUP_COMPONENTS ?= rust

TEST_LOGS := target/test-logs

.PHONY: help setup build dev test fmt lint clean

help:
	@echo "make dev    install what is missing, build, run the hub locally"
	@echo "make test   install what is missing, build, run every test (last line: N passed, N failed)"
	@echo "make setup | build | fmt | lint | clean"

setup:
	scripts/setup.sh $(SETUP_COMPONENTS)

build: setup
	cargo build --workspace

# The hub (edge-hub/, Cloudflare Worker + wrangler dev) arrives with issue 3; until then
# `make dev` builds the workspace and says so rather than start a stand-in server.
dev: build
	@echo "make dev: the workspace builds; there is no hub to run yet."
	@echo "make dev: the FHIRcast Hub on Cloudflare Workers (edge-hub/) comes with issue 3."

# fmt, clippy, the native tests (--no-fail-fast: every suite runs and is counted), then the
# core for wasm32 (proves it has no I/O deps).
# The last line printed is the summed "N passed, N failed" over every suite's log.
test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@mkdir -p $(TEST_LOGS) && rm -f $(TEST_LOGS)/*.log
	@status=0; echo "+ cargo test --workspace --no-fail-fast"; \
	cargo test --workspace --no-fail-fast 2>&1 | tee $(TEST_LOGS)/cargo.log || status=$$?; \
	if [[ $$status -eq 0 ]]; then \
	  echo "+ cargo build -p fhircast-core --target wasm32-unknown-unknown --release"; \
	  cargo build -p fhircast-core --target wasm32-unknown-unknown --release || status=$$?; \
	fi; \
	scripts/test-summary.sh $(TEST_LOGS)/*.log || status=$$(( status ? status : 1 )); \
	exit $$status

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf npm/pkg edge-hub/build .wrangler
