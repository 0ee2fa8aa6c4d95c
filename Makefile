# FHIRcast in Rust: set-up, build, test. GNU make.
#   make dev    install whatever is missing, build, run the hub and the examples locally
#   make test   install whatever is missing, build, run every test
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export PATH := $(HOME)/.cargo/bin:$(PATH)
export CARGO_TERM_COLOR ?= never

# Components scripts/setup.sh installs: the Rust targets, wasm-bindgen-cli,
# the npm tooling (wrangler, miniflare, binaryen, esbuild, ws, playwright-core), and Chromium
# for the browser SDK's tests.
SETUP_COMPONENTS ?= rust wasm-tools node chromium

NODE_BIN := $(CURDIR)/node_modules/.bin
export WRANGLER_SEND_METRICS := false
export CLOUDFLARE_CF_FETCH_ENABLED := false
DEV_HOST ?= 127.0.0.1
DEV_PORT ?= 8787

TEST_LOGS := target/test-logs

# node --test for the suites in workerd and Chromium: a test that hangs fails after 2 min, and a
# whole suite is stopped after 15 (so a hang fails CI with a message instead of eating its time).
NODE_TEST := timeout -k 10 900 $(NODE_BIN)/node --test --test-reporter=tap --test-timeout=120000
# make test's e2e run writes its screenshots here; `make screenshots` refreshes docs/screenshots.
TEST_SCREENSHOTS := target/screenshots

.PHONY: help setup build hub-build hub-test-build serve sdk-build sdk-pack sdk-test sdk-coverage site e2e screenshots dev dev-wrangler test fmt lint clean bench bench-doc soak fuzz simulate

help:
	@echo "make dev    install what is missing, build, run the hub and the examples (http://$(DEV_HOST):$(DEV_PORT)/)"
	@echo "make test   install what is missing, build, run every test (last line: N passed, N failed)"
	@echo "make bench  the hub in workerd against a floor measured in the same run (BENCHMARKS.md)"
	@echo "make simulate  the core's simulator (core/tests/simulator.rs) over a million seeds, on every core"
	@echo "make setup | build | hub-build | sdk-build | sdk-pack | sdk-test | site | e2e | screenshots | fmt | lint | clean | bench-doc | soak | fuzz"

setup:
	scripts/setup.sh $(SETUP_COMPONENTS)

build: setup
	cargo build --workspace

# The Worker bundle (edge-hub/build): release, wasm-opt -Oz from npm binaryen, our entry module
# (scripts/build-hub.sh).
hub-build: setup
	scripts/build-hub.sh

# The test build of the Worker (target/hub-test-build): Cargo feature test-panic, for
# tests/hub/recovery.test.mjs only; never deployed.
hub-test-build: setup
	HUB_FEATURES=test-panic HUB_OUT=target/hub-test-build WORKER_BUILD_NO_OPT=1 scripts/build-hub.sh

# The hub self-hosted: open-source workerd with selfhost/fhircast.capnp, state in
# target/serve-state (README "Deploying"). AUTH_MODE=open unless set: local use only.
serve: setup hub-build
	mkdir -p target/serve-state
	AUTH_MODE=$${AUTH_MODE:-open} $(NODE_BIN)/workerd serve selfhost/fhircast.capnp \
		--directory-path storage=$(CURDIR)/target/serve-state --socket-addr http=$(DEV_HOST):$(DEV_PORT)

# The browser SDK's npm package (npm/pkg): wasm32 release, wasm-bindgen, wasm-opt -Oz; prints
# the gzipped size against the budget.
sdk-build: setup
	scripts/build-sdk.sh

# The npm package as a tarball, target/fhircast-sdk-<version>.tgz (`npm install` it; npm/README.md).
sdk-pack: sdk-build
	mkdir -p target && cd npm && npm pack --pack-destination ../target

# The SDK's tests in headless Chromium against the hub in workerd (builds both if needed).
sdk-test: setup
	scripts/test-sdk.sh

# The examples' site (target/site): examples/ plus the SDK's npm package at /fhircast-sdk/.
site: sdk-build
	scripts/build-site.sh

# The examples end to end in headless Chromium against the hub in workerd (tests/e2e); they
# save screenshots to target/screenshots.
e2e: site hub-build
	SCREENSHOT_DIR=$(CURDIR)/$(TEST_SCREENSHOTS) $(NODE_TEST) --test-concurrency=1 'tests/e2e/*.test.mjs'

# The same tests, saving their screenshots into docs/screenshots (the README shows them).
screenshots: site hub-build
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(NODE_TEST) --test-concurrency=1 'tests/e2e/*.test.mjs'

# tests/sdk/README.md lists every [SUB] item with the Chromium tests naming it, or why none does;
# fails on a missing row, a row with neither, or a stale table.
sdk-coverage:
	$(NODE_BIN)/node scripts/sdk-coverage.mjs --check

# The hub in workerd (Miniflare, as the tests and the bench run it) on
# http://$(DEV_HOST):$(DEV_PORT)/api/hub and the examples at http://$(DEV_HOST):$(DEV_PORT)/,
# state kept in target/dev-state across restarts. Authorization is off (AUTH_MODE=open): local
# use only. Not `wrangler dev`: the same build costs 2-4x the CPU per event there
# (scripts/dev.mjs, BENCHMARKS.md "make dev").
dev: setup site hub-build
	DEV_HOST=$(DEV_HOST) DEV_PORT=$(DEV_PORT) $(NODE_BIN)/node scripts/dev.mjs

# The same under `wrangler dev` (rebuilds the Worker when its sources change; slower per event).
dev-wrangler: setup site
	cd edge-hub && PATH="$(NODE_BIN):$$PATH" wrangler dev --ip $(DEV_HOST) --port $(DEV_PORT) \
		--show-interactive-dev-session=false --persist-to ../target/dev-state/wrangler --var AUTH_MODE:open

# fmt, clippy, the lock check (tests/lock: npm ci accepts package-lock.json on linux, darwin and
# win32), the native tests (--no-fail-fast: every suite runs and is counted), then the
# core for wasm32 (proves it has no I/O deps).
# The last line printed is the summed "N passed, N failed" over every suite's log.
# Then the Worker is built and the conformance suite runs it in workerd (tests/hub), and
# `wrangler deploy --dry-run` bundles it and reports its size.
test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy -p fhircast-edge-hub --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -p fhircast-sdk --target wasm32-unknown-unknown -- -D warnings
	@mkdir -p $(TEST_LOGS) && rm -f $(TEST_LOGS)/*.log
	@status=0; echo "+ node --test tests/lock (package-lock.json installs on every platform)"; \
	$(NODE_TEST) 'tests/lock/*.test.mjs' 2>&1 | tee $(TEST_LOGS)/lock.log || status=$$?; \
	echo "+ make sdk-coverage"; \
	if $(MAKE) --no-print-directory sdk-coverage; then c="passed=1 failed=0"; else c="passed=0 failed=1"; status=1; fi; \
	echo "TEST-COUNTS $$c" > $(TEST_LOGS)/sdk-coverage.log; \
	echo "+ cargo test --workspace --no-fail-fast"; \
	cargo test --workspace --no-fail-fast 2>&1 | tee $(TEST_LOGS)/cargo.log || status=$$?; \
	echo "+ cargo build -p fhircast-core --target wasm32-unknown-unknown --release"; \
	cargo build -p fhircast-core --target wasm32-unknown-unknown --release || status=$$?; \
	echo "+ make hub-test-build hub-build"; \
	if $(MAKE) --no-print-directory hub-test-build SETUP_COMPONENTS= && $(MAKE) --no-print-directory hub-build SETUP_COMPONENTS=; then \
	  echo "+ node --test tests/hub"; \
	  $(NODE_TEST) --test-concurrency=2 'tests/hub/*.test.mjs' 'tests/selfhost/*.test.mjs' 2>&1 | tee $(TEST_LOGS)/hub.log || status=$$?; \
	  echo "+ scripts/build-sdk.sh && node --test tests/sdk"; \
	  if SDK_BUDGET_STRICT=1 scripts/build-sdk.sh; then \
	    $(NODE_TEST) --test-concurrency=2 'tests/sdk/*.test.mjs' 2>&1 | tee $(TEST_LOGS)/sdk.log || status=$$?; \
	    echo "+ tests/e2e (examples)"; { scripts/build-site.sh && SCREENSHOT_DIR=$(CURDIR)/$(TEST_SCREENSHOTS) $(NODE_TEST) --test-concurrency=1 'tests/e2e/*.test.mjs'; } 2>&1 | tee $(TEST_LOGS)/e2e.log || status=$$?; \
	  else status=1; printf "the SDK did not build\nTEST-COUNTS passed=0 failed=1\n" > $(TEST_LOGS)/sdk-build.log; fi; \
	  echo "+ wrangler deploy --dry-run"; \
	  (cd edge-hub && PATH="$(NODE_BIN):$$PATH" WORKER_BUILD_NO_OPT= wrangler deploy --dry-run --outdir ../target/deploy 2>&1 | grep -E "Total Upload|error|Error") || status=$$?; \
	else status=1; printf "the Worker did not build\nTEST-COUNTS passed=0 failed=1\n" > $(TEST_LOGS)/hub-build.log; fi; \
	scripts/test-summary.sh $(TEST_LOGS)/*.log || status=$$(( status ? status : 1 )); \
	exit $$status

# Benchmarks (BENCHMARKS.md): fan-out, throughput, SyncError, SDK, against the floor, then the
# soak (`make soak`); loopback only, bounded in time. Prints a table; figures in target/bench/latest.json. `make bench-doc`
# writes the latest figures into BENCHMARKS.md.
bench: hub-build sdk-build
	$(NODE_BIN)/node bench/bench.mjs
	@echo "+ soak (RELIABILITY.md), SOAK_SECONDS=$${SOAK_SECONDS:-180}"
	$(NODE_BIN)/node bench/soak.mjs 2>&1 | tee target/bench/soak.txt

bench-doc:
	$(NODE_BIN)/node bench/render.mjs

# Soak (a bench, not in make test): 100 topics of steady traffic with subscribers joining and
# leaving for SOAK_SECONDS (default 180); prints memory and latency per interval and a verdict.
soak: hub-build
	$(NODE_BIN)/node bench/soak.mjs

# libFuzzer over the core's fuzz targets (core/fuzz), FUZZ_SECONDS each (default 60). Needs a
# nightly toolchain and cargo-fuzz; make test runs the same targets on stable with a seeded
# generator (cargo test -p fhircast-core-fuzz).
FUZZ_SECONDS ?= 60
fuzz:
	cd core && for t in subscription_form event_json ack update_bundle wire_misc topic_machine; do \
	  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=3 cargo +nightly fuzz run --features libfuzzer $$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -print_final_stats=1 || exit 1; done

# The deterministic simulator of the core (core/tests/simulator.rs) at scale: SIM_SEEDS scenarios
# (default 1,000,000) in release on SIM_THREADS threads (default: every core), with the world
# SIM_FEATURES picks (default: the features that pass; `all` for every one, see the simulator's
# documentation). Prints progress every 5 s and, per violation, a one-line replay command; fails
# if any scenario violated an invariant. Optimised for speed (not size) in its own target dir.
SIM_SEEDS ?= 1000000
SIM_THREADS ?=
SIM_FEATURES ?=
simulate:
	SIM_SEEDS=$(SIM_SEEDS) SIM_THREADS=$(SIM_THREADS) SIM_FEATURES=$(SIM_FEATURES) \
	CARGO_TARGET_DIR=$(CURDIR)/target/simulate CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
	CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_PANIC=unwind \
	  cargo test --release -p fhircast-core --test simulator -- --ignored --exact simulate --nocapture

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

clean:
	cargo clean
	rm -rf npm/pkg edge-hub/build .wrangler
