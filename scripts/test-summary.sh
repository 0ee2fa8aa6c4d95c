#!/usr/bin/env bash
# Sums test counts over test logs and prints one plain line, "N passed, N failed".
#
#   scripts/test-summary.sh LOG...
#
# Exits 1 if anything failed or no counts were found at all, 0 otherwise. Recognised lines:
#   cargo test:       "test result: ok. 12 passed; 0 failed; 0 ignored; ..."
#   node --test TAP:  "# pass 12" and "# fail 0"
#   any other suite:  "TEST-COUNTS passed=12 failed=0" (write this line into the suite's log)
# Ignored tests count as neither. Unreadable or missing logs are an error.
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 LOG..." >&2; exit 2; }
for f in "$@"; do [[ -r $f ]] || { echo "test-summary: cannot read $f" >&2; exit 2; }; done

awk '
  /^test result: / {
    for (i = 1; i < NF; i++) {
      if ($(i + 1) ~ /^passed;?$/) passed += $i
      if ($(i + 1) ~ /^failed;?$/) failed += $i
    }
    found = 1; next
  }
  /^# pass [0-9]+$/ { passed += $3; found = 1; next }
  /^# fail [0-9]+$/ { failed += $3; found = 1; next }
  /^TEST-COUNTS passed=[0-9]+ failed=[0-9]+$/ {
    split($2, p, "="); split($3, q, "="); passed += p[2]; failed += q[2]; found = 1; next
  }
  END {
    if (!found) print "test-summary: no test counts found in the logs" > "/dev/stderr"
    printf "%d passed, %d failed\n", passed, failed
    exit (failed > 0 || !found) ? 1 : 0
  }
' "$@"
