#!/usr/bin/env bash
# Wait for a quiet moment on a shared machine, then run a command. Every few minutes it times FS1+FS4 at 2 threads
# on the file benches/scan.sh uses (`RUNS=3 benches/ab.sh`) and logs the median to stderr; when the median is at
# or under LIMIT seconds it runs the command. Gives up after HOURS (default 2). The log is the record of how busy
# the machine was, and belongs beside any figure measured this way. Never run in CI.
#
#   benches/when-quiet.sh 0.50 env RUNS=5 benches/scan.sh > scan.md
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$1
shift
[ $# -gt 0 ] || { echo "usage: benches/when-quiet.sh LIMIT COMMAND..." >&2; exit 2; }
# The same binary and input as benches/scan.sh (built and generated if need be); its machine lines go to the log.
. benches/input.sh >&2
deadline=$(( $(date +%s) + ${HOURS:-2} * 3600 ))
while [ "$(date +%s)" -lt "$deadline" ]; do
  median=$(RUNS=3 benches/ab.sh "$FILE" "$BIN" | sed -n 's/.*median wall \([0-9.]*\) s.*/\1/p')
  echo "$(date -u +%H:%M) UTC: FS1+FS4 at 2 threads, median of 3: $median s" >&2
  if awk -v m="$median" -v l="$limit" 'BEGIN { exit !(m <= l) }'; then
    exec "$@"
  fi
  sleep 150
done
echo "no median at or under $limit s in ${HOURS:-2} h" >&2
exit 1
