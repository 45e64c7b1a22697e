#!/usr/bin/env bash
# Resident memory over a run, to see which pass (or phase) holds the peak: samples VmRSS every INTERVAL seconds
# (default 0.5) and prints "seconds KiB" lines on stdout; the command's own output goes to /dev/null, its stderr
# to rss-stderr.txt in TMPDIR. Never run in CI.
#
#   benches/rss.sh target/release/flowsketch scan -j 2 -f json CAPTURE | sort -k2 -n | tail -1   # the peak
set -euo pipefail
interval=${INTERVAL:-0.5}
"$@" > /dev/null 2> "${TMPDIR:-/tmp}/rss-stderr.txt" &
pid=$!
start=$(date +%s.%N)
while kill -0 "$pid" 2> /dev/null; do
  kib=$(awk '/VmRSS/{print $2}' "/proc/$pid/status" 2> /dev/null || true)
  [ -n "$kib" ] && echo "$(echo "$(date +%s.%N) - $start" | bc) $kib"
  sleep "$interval"
done
wait "$pid" || true
