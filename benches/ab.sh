#!/usr/bin/env bash
# A/B timing of flowsketch builds on one input: runs each binary in turn, RUNS rounds, and prints per binary the
# median wall time, its user time and the smallest peak RSS. Alternating the builds in one run is what makes a
# ratio trustworthy on a shared, noisy machine. Build each commit to compare and copy its binary aside first:
#
#   git checkout A && cargo build --release && cp target/release/flowsketch /tmp/fs-a
#   git checkout B && cargo build --release && cp target/release/flowsketch /tmp/fs-b
#   RULES=benches/rules/fs1-fs4.toml THREADS=2 RUNS=5 benches/ab.sh FILE /tmp/fs-a /tmp/fs-b
#
# A build may carry scan flags of its own, quoted with it: '/tmp/fs-b --no-verify' runs
# `/tmp/fs-b scan ... FILE --no-verify`, so one run can set one pass, the verify pass and --exact side by side.
#
# FILE defaults to the one benches/scan.sh generates. Never run in CI.
set -euo pipefail
RULES=${RULES:-benches/rules/fs1-fs4.toml}
THREADS=${THREADS:-2}
RUNS=${RUNS:-5}
file=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for _ in $(seq "$RUNS"); do
  n=0
  for b in "$@"; do
    n=$((n + 1))
    read -ra cmd <<< "$b"
    /usr/bin/time -f '%e %U %M' -a -o "$tmp/$n" "${cmd[0]}" scan -q -j "$THREADS" -r "$RULES" "$file" "${cmd[@]:1}" \
      > /dev/null 2>&1 || true
  done
done
n=0
for b in "$@"; do
  n=$((n + 1))
  grep -v '^Command' "$tmp/$n" | sort -n | awk -v b="$b" -v j="$THREADS" '
    { w[NR] = $1; u[NR] = $2; m[NR] = $3 }
    END { mid = int((NR + 1) / 2); min = m[1]; for (i = 1; i <= NR; i++) if (m[i] < min) min = m[i];
          printf "%s -j %s: median wall %s s, user %s s, peak RSS %d MB (%d runs)\n", b, j, w[mid], u[mid], min / 1024, NR }'
done
