#!/usr/bin/env bash
# Whole-program timing of `flowsketch scan`, as a user runs it, on a generated, page-cached, uncompressed nfcapd
# file (default 10 M flows from 1 M sources): FS1+FS4 and the full defaults; compact, exact and hllpp counters;
# 1 and 2 threads. Median wall time of RUNS runs and the peak RSS of the median run (/usr/bin/time).
# Prints a markdown table. Never run in CI: it takes minutes and wants a quiet machine.
#
#   benches/scan.sh                          # 10 M flows, 1 M sources
#   FLOWS=100000000 SOURCES=5000000 benches/scan.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. benches/input.sh
echo
echo "| rules | counter | threads | wall s (median of $RUNS) | M flows/s | peak RSS MB |"
echo "|---|---|---|---|---|---|"
for rules in fs1-fs4 defaults; do
  if [ "$rules" = defaults ]; then rflag=(); else rflag=(-r "benches/rules/$rules.toml"); fi
  for counter in compact exact hllpp; do
    for j in 1 2; do
      results=()
      for _ in $(seq "$RUNS"); do
        # %e wall seconds, %M peak RSS in KB; the summary line on stderr has the flow count.
        out=$( { /usr/bin/time -f 'TIME %e %M' "$BIN" scan --counter "$counter" -j "$j" "${rflag[@]}" "$FILE" >/dev/null; } 2>&1 || true)
        flows=$(sed -n 's/.* \([0-9]*\) flows, .*/\1/p' <<<"$out" | head -1)
        results+=("$(awk '/^TIME/{print $2, $3}' <<<"$out") $flows")
      done
      median=$(printf '%s\n' "${results[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p")
      read -r secs kb flows <<<"$median"
      rate=$(awk -v f="$flows" -v s="$secs" 'BEGIN{printf "%.1f", f / s / 1e6}')
      echo "| $rules | $counter | $j | $secs | $rate | $((kb / 1024)) |"
    done
  done
done
