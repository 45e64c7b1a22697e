#!/usr/bin/env bash
# Whole-program timing of `flowsketch scan`, as a user runs it, on a generated, page-cached, uncompressed nfcapd
# file (default 10 M flows from 1 M sources): FS1+FS4 and the full defaults; compact, exact and hllpp counters;
# 1 and 2 threads. Median wall time of RUNS runs and the peak RSS of the median run (/usr/bin/time).
# Each round runs every configuration once, so a machine that speeds up or slows down during the minutes this
# takes moves all rows alike and the ratio column stays fair. Prints a markdown table. Never run in CI: it takes
# minutes and wants a quiet machine.
#
#   benches/scan.sh                          # 10 M flows, 1 M sources
#   FLOWS=100000000 SOURCES=5000000 benches/scan.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/input.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
configs=()
for rules in fs1-fs4 defaults; do
  for counter in compact exact hllpp; do
    for j in 1 2; do
      configs+=("$rules $counter $j")
    done
  done
done
for _ in $(seq "$RUNS"); do
  for c in "${configs[@]}"; do
    read -r rules counter j <<<"$c"
    if [ "$rules" = defaults ]; then rflag=(); else rflag=(-r "benches/rules/$rules.toml"); fi
    # %e wall seconds, %M peak RSS in KB; the summary line on stderr has the flow count.
    out=$( { /usr/bin/time -f 'TIME %e %M' "$BIN" scan --counter "$counter" -j "$j" "${rflag[@]}" "$FILE" >/dev/null; } 2>&1 || true)
    flows=$(sed -n 's/.* \([0-9]*\) flows, .*/\1/p' <<<"$out" | head -1)
    echo "$(awk '/^TIME/{print $2, $3}' <<<"$out") $flows" >> "$tmp/${c// /-}"
  done
done
echo
echo "| rules | counter | threads | wall s (median of $RUNS) | M flows/s | peak RSS MB | wall vs compact |"
echo "|---|---|---|---|---|---|---|"
for c in "${configs[@]}"; do
  read -r rules counter j <<<"$c"
  read -r secs kb flows < <(median_line < "$tmp/${c// /-}")
  read -r base _ < <(median_line < "$tmp/$rules-compact-$j")
  rate=$(awk -v f="$flows" -v s="$secs" 'BEGIN{printf "%.1f", f / s / 1e6}')
  ratio=$(awk -v s="$secs" -v b="$base" 'BEGIN{printf "%.2f", s / b}')
  echo "| $rules | $counter | $j | $secs | $rate | $((kb / 1024)) | $ratio |"
done
