#!/usr/bin/env bash
# Builds the browser SDK into the npm package: npm/pkg/{index.js, fhircast_sdk_bg.wasm}.
#   cargo (wasm32, release: lto, opt-level z) -> wasm-bindgen --target web --weak-refs
#   -> scripts/snip-wasm.mjs (empties core's float formatting, provably never run; see there)
#   -> wasm-opt -Oz, then twice --flatten --rereloop -Oz (npm binaryen 132; Debian's 108 breaks in
#      Chromium, toolchain.md)
#   -> esbuild --bundle --minify of the facade (npm/src/index.js, the readable source) with
#      wasm-bindgen's glue into pkg/index.js: one JS file, 1.3 KB gzipped less than the two
#      apart with the facade as written (measured 2026-12-03).
# Then prints the sizes (raw and gzipped) of everything a browser downloads and compares the
# gzipped total with the budget (SDK_BUDGET_BYTES, default 100000: the issue's "100 KB" read
# strictly, as 100,000 B rather than 102,400): over it, a warning, or a failure with
# SDK_BUDGET_STRICT=1 (which make test sets: a regression fails the build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
BUDGET=${SDK_BUDGET_BYTES:-100000}
OUT=npm/pkg
WASM_OPT=node_modules/.bin/wasm-opt
# The WebAssembly features both modules use (what wasm-bindgen's output needs), for wasm-opt.
WASM_FEATURES=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-reference-types --enable-multivalue --enable-mutable-globals)
# esbuild as every entry point is built: minified ES2022 modules.
esbuild() { node_modules/.bin/esbuild --log-level=warning --minify --format=esm --target=es2022 "$@"; }

want=$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' sdk/Cargo.toml)
have=$(wasm-bindgen --version | awk '{print $2}')
if [[ "$want" != "$have" ]]; then
  echo "wasm-bindgen CLI $have does not match the crate ($want): cargo install wasm-bindgen-cli --version $want --debug" >&2
  exit 1
fi

cargo build -p fhircast-sdk --target wasm32-unknown-unknown --release
rm -rf "$OUT"
wasm-bindgen --target web --weak-refs --no-typescript --out-dir "$OUT" target/wasm32-unknown-unknown/release/fhircast_sdk.wasm
node_modules/.bin/node scripts/snip-wasm.mjs "$OUT/fhircast_sdk_bg.wasm" "$OUT/fhircast_sdk_bg.wasm"
# -Oz, then flattened and re-relooped and -Oz again, twice: 0.7 KB gzipped less than -Oz alone
# for the first round, 77 B for the second (measured; ~20 s in all). Then GUFA (binaryen's
# whole-program type and constant flow; it treats imports and exports as unknown, so it is
# sound for wasm-bindgen's module) and -Oz once more: 609 B gzipped less (measured 2026-12-03).
# The target_features section is read by no browser (91 B gzipped).
"$WASM_OPT" -Oz --converge --flatten --rereloop -Oz --converge --flatten --rereloop -Oz --converge --gufa -Oz --converge \
  --strip-producers --strip-debug --strip-target-features "${WASM_FEATURES[@]}" \
  "$OUT/fhircast_sdk_bg.wasm" -o "$OUT/fhircast_sdk_bg.wasm"
esbuild --bundle npm/src/index.js --outfile="$OUT/index.js"
rm "$OUT/fhircast_sdk.js"
# The optional entry points, each loaded only by the apps that import it (not in the budget,
# which is what every app loads; their sizes are printed below).
for entry in status react bridge; do
  esbuild "npm/src/$entry.js" --outfile="$OUT/$entry.js"
done
# The embedded entry imports only ./shared.js (never ./index.js: it loads no WebAssembly): bundled.
esbuild --bundle npm/src/embedded.js --outfile="$OUT/embedded.js"

# fhircast-sdk/testing: the in-process hub for app tests (testkit/: the core's hub::Topic), its
# own WebAssembly module, loaded only by that entry point. Tests load it, not pages: -Oz once.
cargo build -p fhircast-testkit --target wasm32-unknown-unknown --release
wasm-bindgen --target web --no-typescript --out-dir "$OUT" target/wasm32-unknown-unknown/release/fhircast_testkit.wasm
"$WASM_OPT" -Oz --strip-producers --strip-debug "${WASM_FEATURES[@]}" \
  "$OUT/fhircast_testkit_bg.wasm" -o "$OUT/fhircast_testkit_bg.wasm"
esbuild --bundle npm/src/testing.js --outfile="$OUT/testing.js"
rm "$OUT/fhircast_testkit.js"

gz() { gzip -9 -c "$1" | wc -c; }
total_raw=0; total_gz=0
printf '%-28s %10s %10s\n' file raw gzipped
for f in "$OUT/fhircast_sdk_bg.wasm" "$OUT/index.js"; do
  raw=$(wc -c <"$f"); z=$(gz "$f")
  total_raw=$((total_raw + raw)); total_gz=$((total_gz + z))
  printf '%-28s %10d %10d\n' "${f#npm/}" "$raw" "$z"
done
printf '%-28s %10d %10d   (budget %d B gzipped)\n' total "$total_raw" "$total_gz" "$BUDGET"
echo "SDK-SIZE raw=$total_raw gzip=$total_gz"
for entry in status react bridge embedded testing; do
  printf '%-28s %10d %10d   (fhircast-sdk/%s, loaded only by apps that import it)\n' "pkg/$entry.js" "$(wc -c <"$OUT/$entry.js")" "$(gz "$OUT/$entry.js")" "$entry"
done
printf '%-28s %10d %10d   (the in-process hub of fhircast-sdk/testing, for tests only)\n' pkg/fhircast_testkit_bg.wasm "$(wc -c <"$OUT/fhircast_testkit_bg.wasm")" "$(gz "$OUT/fhircast_testkit_bg.wasm")"
if (( total_gz > BUDGET )); then
  echo "WARNING: the SDK is over its size budget: $total_gz > $BUDGET bytes gzipped" >&2
  if [[ "${SDK_BUDGET_STRICT:-}" == 1 ]]; then exit 1; fi
fi
