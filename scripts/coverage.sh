#!/usr/bin/env bash
# Regenerates the generated parts of core/TESTS.md from the test sources:
#   - the "tests naming it" column of every coverage table row,
#   - the summary line, and
#   - the list of items the core decides that no test names yet.
#
# A test "names" an item when its function name carries reqN_, negN_ or impl_5aN_ anywhere
# (e.g. req45_req88_no_subscriber_gets..., neg7_repeated_parameter..., req124_impl_5a9_...).
# Test functions are searched in core/src and core/tests (unit, integration and proptest tests).
# The first cell of a row holds the item's key ("req 45", "neg 7", "§5a-9"); several keys
# separated by " / " (e.g. "§5a-1 / neg 5") collect the tests of all of them. The other
# columns are prose and are left alone. A row's item counts as decided by the core when its
# "where" column starts with "core".
#
# Usage: scripts/coverage.sh          rewrite core/TESTS.md in place
#        scripts/coverage.sh --check  exit 1 (and show the diff) if core/TESTS.md is stale
set -euo pipefail

cd "$(dirname "$0")/.."
doc=core/TESTS.md
map=$(mktemp)
out=$(mktemp)
trap 'rm -f "$map" "$out"' EXIT

# 1. "<key>\t<test name>" for every test function that names an item.
grep -rhoE --include='*.rs' '\bfn [a-z][a-z0-9_]*' core/src core/tests |
  sed 's/^fn //' | sort -u |
  awk '{
    name = $0; s = "_" name
    while (match(s, /_(req|neg)[0-9]+|_impl_5a[0-9]+/)) {
      k = substr(s, RSTART + 1, RLENGTH - 1); s = substr(s, RSTART + RLENGTH)
      if (k ~ /^req/) key = "req " substr(k, 4)
      else if (k ~ /^neg/) key = "neg " substr(k, 4)
      else key = "§5a-" substr(k, 8)
      print key "\t" name
    }
  }' | sort -u >"$map"

# 2. Rewrite the tables, the summary and the untested list.
awk -F'|' -v OFS='|' -v mapfile="$map" '
  function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }
  BEGIN {
    while ((getline line < mapfile) > 0) {
      split(line, kv, "\t")
      if (kv[1] in tests) tests[kv[1]] = tests[kv[1]] SUBSEP kv[2]
      else tests[kv[1]] = kv[2]
    }
  }
  /<!-- coverage:begin -->/ { intable = 1; print; next }
  /<!-- coverage:end -->/ { intable = 0; print; next }
  /<!-- summary:begin -->/ { print; skip = 1; print "SUMMARY_PLACEHOLDER"; next }
  /<!-- summary:end -->/ { skip = 0; print; next }
  /<!-- untested:begin -->/ {
    print
    if (nuntested == 0) print "- (none)"
    for (i = 1; i <= nuntested; i++) print untested[i]
    skip = 1; next
  }
  /<!-- untested:end -->/ { skip = 0; print; next }
  skip { next }
  intable && /^\|/ {
    key = trim($2)
    if (key == "item" || key ~ /^-+$/) { print; next }
    n = split(key, keys, / \/ /)
    delete seen; list = ""; count = 0
    for (i = 1; i <= n; i++) {
      k = trim(keys[i])
      if (!(k in tests)) continue
      m = split(tests[k], names, SUBSEP)
      for (j = 1; j <= m; j++) {
        if (names[j] in seen) continue
        seen[names[j]] = 1
        list = list (list == "" ? "" : ", ") "`" names[j] "`"
        count++
      }
    }
    $(NF - 1) = " " list " "
    rows++
    where = trim($(NF - 2))
    if (where ~ /^core/) {
      core++
      if (count > 0) covered++
      else untested[++nuntested] = "- " key ": " trim($(NF - 3))
    }
    print; next
  }
  { print }
  END { printf "%d %d %d\n", rows, core, covered > "/dev/stderr" }
' "$doc" 2>"$out.counts" >"$out"

read -r rows core covered <"$out.counts"
rm -f "$out.counts"
summary="$rows items listed; the core decides $core of them, and $covered of those have a test naming them."
sed -i "s|^SUMMARY_PLACEHOLDER\$|$summary|" "$out"

if [[ "${1:-}" == "--check" ]]; then
  if ! diff -u "$doc" "$out"; then
    echo "core/TESTS.md is stale: run scripts/coverage.sh" >&2
    exit 1
  fi
  echo "core/TESTS.md is up to date ($summary)"
else
  cp "$out" "$doc"
  echo "core/TESTS.md: $summary"
fi
