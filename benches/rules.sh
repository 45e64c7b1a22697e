#!/usr/bin/env bash
# Whole-program cost of twenty rules against one: `flowsketch scan` with benches/rules/fs1.toml (FS1 alone),
# benches/rules/twenty-selective.toml (FS1 among nineteen selective rules) and benches/rules/twenty.toml (FS1 among
# twenty, five of them dense) on the file benches/scan.sh generates (10 M flows, 1 M sources, uncompressed,
# page-cached). Median wall time of RUNS runs; prints a markdown table. Then each of the twenty
# alone against decoding only, to show where the twenty's time goes. Never run in CI.
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
  for rules in fs1 twenty-selective twenty; do
    results=()
    for _ in $(seq "$RUNS"); do
      out=$( { /usr/bin/time -f 'TIME %e %M' "$BIN" scan -q -j "$j" -f json -r "benches/rules/$rules.toml" "$FILE" > /tmp/rules-bench.out; } 2>&1 || true)
      results+=("$(awk '/^TIME/{print $2, $3}' <<<"$out") $(wc -l < /tmp/rules-bench.out)")
    done
    median=$(printf '%s\n' "${results[@]}" | median_line)
    read -r secs kb found <<<"$median"
    [ -z "$one" ] && one=$secs
    echo "| $j | $rules | $secs | $((kb / 1024)) | $found | $(awk -v a="$secs" -v b="$one" 'BEGIN{printf "%.2f", a / b}') |"
  done
done

# What each of the twenty costs on its own (1 thread, so times add up): the rule alone against a rule that matches
# no flow (`proto 250`: decoding and filtering only). Shows which rules the twenty's time goes to.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
header=$(awk '/^\[\[rule\]\]/{exit} {print}' benches/rules/twenty.toml)
median_of() {
  local results=()
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f '%e' -o "$tmp/time" "$BIN" scan -q -j 1 -r "$1" "$FILE" > /dev/null 2>&1 || true
    results+=("$(tail -1 "$tmp/time")")
  done
  printf '%s\n' "${results[@]}" | median_line
}
{ echo "$header"; echo '[[rule]]'; echo 'id = "NONE"'; echo 'where = "proto 250"'; echo 'key = "src"';
  echo 'count = "flows"'; echo 'above = 0'; } > "$tmp/none.toml"
base=$(median_of "$tmp/none.toml")
echo
echo "Each rule alone, 1 thread; decoding with a rule that matches nothing: $base s (median of $RUNS)."
echo
echo "| rule | where | key | count | wall s | above decoding s |"
echo "|---|---|---|---|---|---|"
awk -v dir="$tmp" '/^\[\[rule\]\]/{n++} n{print > (dir "/rule-" n ".part")}' benches/rules/twenty.toml
for part in $(ls "$tmp"/rule-*.part | sort -V); do
  { echo "$header"; cat "$part"; } > "$tmp/one.toml"
  field() { sed -n "s/^$1 = \"\(.*\)\"/\1/p" "$part" | head -1; }
  check=$("$BIN" rules --check "$tmp/one.toml" 2>&1 || true)
  if grep -q inactive <<<"$check"; then
    echo "| $(field id) | \`$(field where)\` | $(field key) | $(field count) | inactive | |"
    continue
  fi
  secs=$(median_of "$tmp/one.toml")
  echo "| $(field id) | \`$(field where)\` | $(field key) | $(field count) | $secs | $(awk -v a="$secs" -v b="$base" 'BEGIN{printf "%.2f", a - b}') |"
done
