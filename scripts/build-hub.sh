#!/usr/bin/env bash
# Builds the Worker into edge-hub/build/{index.js, index_bg.wasm} (+ worker/shim.mjs, the path
# wrangler.toml, the tests and the bench load):
#   cargo (wasm32, release) -> wasm-bindgen --target module with the reset-state function and
#   the abort handler (panic recovery) -> wasm-opt -Oz (npm binaryen 132; skipped with
#   WORKER_BUILD_NO_OPT=1, for a fast dev loop) -> esbuild --bundle of our entry module
#   (edge-hub/js/entry.js) with wasm-bindgen's glue and snippets.
# What worker-build 0.8.7 did, except the entry module, which is ours (see there for why).
# Offline: every tool is the pinned one scripts/setup.sh installs. Runs from any directory
# (wrangler's [build] runs it from edge-hub/). The output replaces edge-hub/build whole, only
# once everything is built.
# HUB_FEATURES (Cargo features) and HUB_OUT (another output directory) make the test build
# `make hub-test-build` (Cargo feature test-panic, into target/hub-test-build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
OUT=${HUB_OUT:-edge-hub/build}
if [[ "$OUT" == edge-hub/build && -n "${HUB_FEATURES:-}" ]]; then
  echo "build-hub: HUB_FEATURES ($HUB_FEATURES) is for test builds; they go elsewhere (HUB_OUT), never to edge-hub/build" >&2
  exit 1
fi
# One build at a time (make test's two builds share cargo's output; wrangler dev rebuilds on
# its own): the others wait.
mkdir -p target
exec 9>target/hub-build.lock
flock 9
STAGE="target/hub-stage/$(tr / _ <<< "$OUT")"
# The features rustc's wasm32 output and wasm-bindgen's glue use, named for wasm-opt (explicit,
# so that it never emits an encoding workerd does not read).
WASM_FEATURES=(--enable-mutable-globals --enable-sign-ext --enable-nontrapping-float-to-int
  --enable-bulk-memory --enable-multivalue --enable-reference-types --enable-exception-handling)

want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' edge-hub/Cargo.toml)
have=$(wasm-bindgen --version | awk '{print $2}')
if [[ "$want" != "$have" ]]; then
  echo "wasm-bindgen CLI $have does not match the crate ($want): scripts/setup.sh rust installs it" >&2
  exit 1
fi

cargo build --lib --release --target wasm32-unknown-unknown -p fhircast-edge-hub ${HUB_FEATURES:+--features "$HUB_FEATURES"}
rm -rf "$STAGE"
mkdir -p "$STAGE"
wasm-bindgen --target module --no-typescript --out-dir "$STAGE" --out-name index \
  --experimental-reset-state-function --force-enable-abort-handler \
  target/wasm32-unknown-unknown/release/fhircast_edge_hub.wasm
if [[ -z "${WORKER_BUILD_NO_OPT:-}" ]]; then
  # The names section is kept: a panic's stack then names Rust functions in the log.
  node_modules/.bin/wasm-opt -Oz --debuginfo "${WASM_FEATURES[@]}" "$STAGE/index_bg.wasm" -o "$STAGE/index_bg.wasm"
fi
cp edge-hub/js/entry.js "$STAGE/entry.js"
node_modules/.bin/esbuild --log-level=warning --bundle --minify --format=esm \
  --external:./index_bg.wasm '--external:cloudflare:*' "$STAGE/entry.js" --outfile="$STAGE/bundle.js"
# wasm-bindgen imports the module as a source-phase import; workerd's module rules take the
# plain import of a .wasm file as the compiled module.
mkdir -p "$STAGE/out/worker"
sed 's/import source /import /' "$STAGE/bundle.js" > "$STAGE/out/index.js"
grep -q 'import source ' "$STAGE/out/index.js" && { echo "build-hub: a source-phase import is left in index.js" >&2; exit 1; }
cp "$STAGE/index_bg.wasm" "$STAGE/out/index_bg.wasm"
printf "%s\n" "// The entry wrangler.toml names: edge-hub/build/index.js (scripts/build-hub.sh)." \
  "export * from '../index.js';" "export { default } from '../index.js';" > "$STAGE/out/worker/shim.mjs"
rm -rf "$OUT.old"
[[ -d "$OUT" ]] && mv "$OUT" "$OUT.old"
mv "$STAGE/out" "$OUT"
rm -rf "$OUT.old"
printf 'build-hub: %s (%s B), %s (%s B)\n' "$OUT/index.js" "$(wc -c < "$OUT/index.js")" "$OUT/index_bg.wasm" "$(wc -c < "$OUT/index_bg.wasm")"
