#!/usr/bin/env bash
# Whole-program cost of twenty rules against one: `flowsketch scan` with benches/rules/fs1.toml (FS1 alone) and
# benches/rules/twenty.toml (FS1 among twenty) on the file benches/scan.sh generates (10 M flows, 1 M sources,
# uncompressed, page-cached). Median wall time of RUNS runs; prints a markdown table. Never run in CI.
#
#   benches/rules.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/input.sh
echo
echo "| threads | rules | wall s (median of $RUNS) | peak RSS MB | findings | time vs one rule |"
echo "|---|---|---|---|---|---|"
for j in 1 2; do
  one=""
  for rules in fs1 twenty; do
    results=()
    for _ in $(seq "$RUNS"); do
      out=$( { /usr/bin/time -f 'TIME %e %M' "$BIN" scan -q -j "$j" -f json -r "benches/rules/$rules.toml" "$FILE" > /tmp/rules-bench.out; } 2>&1 || true)
      results+=("$(awk '/^TIME/{print $2, $3}' <<<"$out") $(wc -l < /tmp/rules-bench.out)")
    done
    median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
    read -r secs kb found <<<"$median"
    [ -z "$one" ] && one=$secs
    echo "| $j | $rules | $secs | $((kb / 1024)) | $found | $(awk -v a="$secs" -v b="$one" 'BEGIN{printf "%.2f", a / b}') |"
  done
done
