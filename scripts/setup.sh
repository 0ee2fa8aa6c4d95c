#!/usr/bin/env bash
# Idempotent, pinned set-up of the toolchain this repository needs.
#
#   scripts/setup.sh [component...]      components: rust wasm-tools chromium node
#
# With no argument it sets up `rust` only. Every step checks what is installed first and
# prints one line per component: "ok (cached)" when nothing had to be done, "installed"
# otherwise. Safe to run again and again; the cached path takes about a second.
# Only package registries are reachable on the build machines (see /work/shared/toolchain.md
# in the development environment): nothing here downloads a binary from anywhere else.
set -euo pipefail

# ---- pinned versions (the one place to change them) -----------------------------------------
RUST_TARGET=wasm32-unknown-unknown
RUST_COMPONENTS=(rustfmt clippy)
WASM_BINDGEN_VERSION=0.2.130   # must equal the `wasm-bindgen` crate pin (=0.2.130)
CHROMIUM_PACKAGES=(chromium chromium-driver)   # Debian 12; any version (156 when last checked)
# npm packages are pinned in package.json / package-lock.json, not here.
# ---------------------------------------------------------------------------------------------

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

say() { printf '%-14s %s\n' "$1:" "$2"; }
die() { printf 'setup: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found on PATH (${2:-})"; }

setup_rust() {
  need rustup "install rustup first: https://rustup.rs"
  local did=""
  if ! rustup target list --installed | grep -qx "$RUST_TARGET"; then
    rustup target add "$RUST_TARGET" >&2
    did=1
  fi
  local installed c
  installed="$(rustup component list --installed)"
  for c in "${RUST_COMPONENTS[@]}"; do
    if ! grep -q "^$c" <<<"$installed"; then
      rustup component add "$c" >&2
      did=1
    fi
  done
  if [[ -n $did ]]; then say rust "installed ($RUST_TARGET, ${RUST_COMPONENTS[*]}; $(rustc --version))"
  else say rust "ok (cached) ($(rustc --version))"; fi
}

# Prints the installed version of a cargo-installed tool ("" if absent). `wasm-bindgen --version`
# prints "wasm-bindgen 0.2.130": take the first x.y.z.
tool_version() {
  command -v "$1" >/dev/null 2>&1 || return 0
  { "$1" --version 2>/dev/null || true; } | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true
}

setup_wasm_tools() {
  need cargo
  local v
  v="$(tool_version wasm-bindgen)"
  if [[ $v == "$WASM_BINDGEN_VERSION" ]]; then
    say wasm-bindgen "ok (cached) ($v)"
  else
    # Not --locked: a dependency in its lock file is missing from the registry mirror.
    # --debug: a third of the build time, byte-identical output.
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --debug --force >&2
    v="$(tool_version wasm-bindgen)"
    [[ $v == "$WASM_BINDGEN_VERSION" ]] || die "wasm-bindgen reports '$v' after install"
    say wasm-bindgen "installed ($v)"
  fi
  # No worker-build: scripts/build-hub.sh builds the Worker with wasm-bindgen, wasm-opt and
  # esbuild, and its own entry module (edge-hub/js/entry.js).
}

setup_chromium() {
  if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    say chromium "ok (cached) ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
    return
  fi
  need apt-get "chromium comes from Debian's apt repositories"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # Refresh the package lists only when they are missing or too old to install from.
  if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    $sudo apt-get update -qq >&2
  fi
  if ! $sudo apt-get install -y -qq --no-install-recommends "${CHROMIUM_PACKAGES[@]}" >&2; then
    $sudo apt-get update -qq >&2
    $sudo apt-get install -y -qq --no-install-recommends "${CHROMIUM_PACKAGES[@]}" >&2
  fi
  [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]] || die "chromium not found after apt-get install"
  say chromium "installed ($(/usr/bin/chromium --version 2>/dev/null | head -n1))"
}

setup_node() {
  local lock="$ROOT/package-lock.json" stamp="$ROOT/node_modules/.setup-stamp"
  if [[ ! -f $lock ]]; then
    say node "skipped (no package-lock.json yet)"
    return
  fi
  need npm "install Node.js and npm"
  if [[ -f $stamp && $stamp -nt $lock ]]; then
    say node "ok (cached) (node_modules matches package-lock.json)"
    setup_fhirclient
    return
  fi
  # npm ci and nothing else: it installs exactly the lock, or refuses. A lock it refuses is a bug
  # to fix in the repository (tests/lock checks it for every platform), never to paper over here.
  if ! (cd "$ROOT" && npm ci --no-audit --no-fund) >&2; then
    die "npm ci failed (npm's message above). If it says package.json and package-lock.json are not in sync, regenerate the lock against the full npm registry with 'npm install --package-lock-only', check it with 'node scripts/check-lock.mjs', and commit it."
  fi
  touch "$stamp"
  say node "installed (npm ci)"
  setup_fhirclient
}

# SMART's JavaScript client (fhirclient), for the examples' SMART launch: its browser bundle
# only. Not a devDependency: its npm dependencies pull in expo (~8,700 lock lines) for what the
# browser bundle already contains. `npm pack` fetches the one pinned tarball, whose integrity is
# checked before anything is taken from it.
FHIRCLIENT_VERSION=2.6.3
FHIRCLIENT_INTEGRITY=sha512-CirZixcwWelbkIXxpxlNQx5+ZdJirl6F1s4y4yvA1X7hHAkr9n99aVHaMi0wX+97nATjKQ65X6NB5as/wZoJzg==
setup_fhirclient() {
  local dir="$ROOT/node_modules/.vendor/fhirclient-$FHIRCLIENT_VERSION"
  if [[ -f $dir/fhir-client.min.js ]]; then
    say fhirclient "ok (cached) ($FHIRCLIENT_VERSION)"
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  local got
  got=$(cd "$tmp" && npm pack "fhirclient@$FHIRCLIENT_VERSION" --json --no-audit --no-fund 2>/dev/null | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s)[0].integrity))') \
    || die "could not fetch fhirclient@$FHIRCLIENT_VERSION from the npm registry"
  if [[ "$got" != "$FHIRCLIENT_INTEGRITY" ]]; then
    rm -rf "$tmp"
    die "fhirclient@$FHIRCLIENT_VERSION: integrity $got, expected $FHIRCLIENT_INTEGRITY"
  fi
  tar -xzf "$tmp/fhirclient-$FHIRCLIENT_VERSION.tgz" -C "$tmp" package/build/fhir-client.min.js package/LICENSE
  mkdir -p "$dir"
  mv "$tmp/package/build/fhir-client.min.js" "$tmp/package/LICENSE" "$dir/"
  rm -rf "$tmp"
  say fhirclient "installed ($FHIRCLIENT_VERSION, browser bundle)"
}

main() {
  local components=("$@")
  [[ ${#components[@]} -gt 0 ]] || components=(rust)
  local c
  for c in "${components[@]}"; do
    case "$c" in
      rust) setup_rust ;;
      wasm-tools) setup_wasm_tools ;;
      chromium) setup_chromium ;;
      node) setup_node ;;
      *) die "unknown component '$c' (expected: rust wasm-tools chromium node)" ;;
    esac
  done
}

main "$@"
