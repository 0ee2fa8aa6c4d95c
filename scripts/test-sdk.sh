#!/usr/bin/env bash
# The browser SDK's tests: builds the SDK (scripts/build-sdk.sh) and, if missing, the hub
# Worker, then runs tests/sdk/*.test.mjs in headless Chromium against the hub in workerd.
# The node --test summary ends with "# pass N" / "# fail N" lines (TAP).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/build-sdk.sh
if [[ ! -f edge-hub/build/worker/shim.mjs || -n "${SDK_TEST_REBUILD_HUB:-}" ]]; then
  make --no-print-directory hub-build
fi
exec node_modules/.bin/node --test --test-reporter=tap --test-concurrency="${SDK_TEST_CONCURRENCY:-2}" tests/sdk/*.test.mjs
