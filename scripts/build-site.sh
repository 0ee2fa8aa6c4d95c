#!/usr/bin/env bash
# Assembles the examples' site in target/site, served by the Worker as static assets
# (edge-hub/wrangler.toml [assets]) on the same origin as the hub:
#   examples/*                  the pages, as they are
#   /fhircast-sdk/              the SDK's npm package (pkg/index.js, pkg/fhircast_sdk_bg.wasm,
#                               index.d.ts, package.json, README.md): what `npm install
#                               fhircast-sdk` would give; the
#                               pages import it by its name through an import map.
# Needs the built SDK (npm/pkg: make sdk-build). Build output only: never committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=target/site
for f in npm/pkg/index.js npm/pkg/fhircast_sdk_bg.wasm; do
  [[ -f $f ]] || { echo "build-site: $f is missing: build the SDK first (make sdk-build)" >&2; exit 1; }
done
rm -rf "$OUT.tmp"
mkdir -p "$OUT.tmp/fhircast-sdk/pkg"
cp -R examples/. "$OUT.tmp/"
# examples/vitest is a test project (fhircast-sdk/testing with vitest), not a page.
rm -rf "$OUT.tmp/vitest"
cp npm/index.d.ts npm/wasm.d.ts npm/status.d.ts npm/react.d.ts npm/bridge.d.ts npm/embedded.d.ts npm/package.json npm/README.md npm/CHANGELOG.md "$OUT.tmp/fhircast-sdk/"
cp npm/pkg/index.js npm/pkg/status.js npm/pkg/react.js npm/pkg/bridge.js npm/pkg/embedded.js npm/pkg/fhircast_sdk_bg.wasm "$OUT.tmp/fhircast-sdk/pkg/"
# SMART's JavaScript client for the viewer's SMART launch (scripts/setup.sh node fetches it).
FHIRCLIENT=node_modules/.vendor/fhirclient-$(sed -n 's/^FHIRCLIENT_VERSION=//p' scripts/setup.sh)
[[ -f $FHIRCLIENT/fhir-client.min.js ]] || { echo "build-site: $FHIRCLIENT is missing: run scripts/setup.sh node" >&2; exit 1; }
mkdir -p "$OUT.tmp/vendor"
cp "$FHIRCLIENT/fhir-client.min.js" "$OUT.tmp/vendor/"
cp "$FHIRCLIENT/LICENSE" "$OUT.tmp/vendor/fhir-client.LICENSE"
rm -rf "$OUT"
mv "$OUT.tmp" "$OUT"
echo "site: $OUT ($(find "$OUT" -type f | wc -l) files)"
