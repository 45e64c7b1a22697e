#!/usr/bin/env bash
# Cluster scans against one process, on the 10 M-flow file benches/scan.sh times (docs/BENCHMARKS.md, "Cluster").
# In each of RUNS rounds, one after the other (alternating is what makes ratios trustworthy on a shared machine):
#   base -j N      the build of BASE (main before cluster scans), one process, N crossbeam workers
#   new  -j N      this build, the same: single-process scans keep the crossbeam path
#   new  -w N      this build, one process of N Timely workers (the exchange inside a process is Timely's)
#   new  N x 1     this build, `flowsketch cluster -n N -w 1`: N processes of one worker on localhost
# and prints per variant the median wall time, the median CPU time (user + system, all processes) and the
# throughput in M flows/s, then the ratios the issue sets targets for. The built-in rules, verify pass on.
#
#   benches/cluster.sh                      # N=2, RUNS=5, BASE=cc32b6f
#   N=2 RUNS=7 BASE=1e177d7 benches/cluster.sh
#
# `flowsketch cluster` gives each of its N processes 1/N of --memory (they share the machine), so both sides of
# the N x 1 / 1 x N ratio size their sketches and tables alike.
#
# The base is built once from `git archive BASE` in /tmp/flowsketch-bench/base-BASE (its own target folder).
# Never run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2}
BASE=${BASE:-cc32b6f}
. benches/input.sh
base_dir=/tmp/flowsketch-bench/base-$BASE
if [ ! -x "$base_dir/target/release/flowsketch" ]; then
  mkdir -p "$base_dir"
  git archive "$BASE" | tar -x -C "$base_dir"
  (cd "$base_dir" && cargo build --release --quiet)
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp "$BIN" "$tmp/new"
cp "$base_dir/target/release/flowsketch" "$tmp/base"
# (A scan with findings exits 1.)
flows=$({ "$tmp/new" scan -q -f json -j "$N" "$FILE" || true; } | sed -n 's/.*"flows":\([0-9]*\),"guarantee".*/\1/p')
echo "base: $BASE; new: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes'); N=$N; $RUNS rounds; $flows flows"
variants=("base -j $N" "new -j $N" "new -w $N" "new $N x 1")
run() {
  case $1 in
    0) "$tmp/base" scan -q -f json -j "$N" "$FILE" ;;
    1) "$tmp/new" scan -q -f json -j "$N" "$FILE" ;;
    2) "$tmp/new" scan -q -f json -w "$N" "$FILE" ;;
    3) "$tmp/new" cluster -n "$N" -w 1 -- scan -q -f json "$FILE" ;;
  esac
}
for r in $(seq "$RUNS"); do
  for v in 0 1 2 3; do
    /usr/bin/time -f '%e %U %S' -a -o "$tmp/t$v" bash -c "$(declare -f run); tmp=$tmp N=$N FILE=$FILE run $v" > "$tmp/out$v" 2>/dev/null || true
  done
  # This build reports the same findings in one process, on Timely and across processes. (The base may differ
  # where the build changed what findings carry: say so once, it is not a cluster fault.)
  for v in 2 3; do
    cmp -s <(grep '"type":"finding"' "$tmp/out1") <(grep '"type":"finding"' "$tmp/out$v") || echo "round $r: ${variants[$v]} findings differ from ${variants[1]}" >&2
  done
  if [ "$r" = 1 ] && ! cmp -s <(grep '"type":"finding"' "$tmp/out0") <(grep '"type":"finding"' "$tmp/out1"); then
    echo "note: the base's finding records differ from this build's (what findings carry changed since $BASE)" >&2
  fi
done
for v in 0 1 2 3; do
  grep -v '^Command' "$tmp/t$v" | awk '{ print $1, $2 + $3 }' > "$tmp/s$v"
  wall=$(sort -n "$tmp/s$v" | awk '{ w[NR] = $1 } END { print w[int((NR + 1) / 2)] }')
  cpu=$(sort -k2 -n "$tmp/s$v" | awk '{ c[NR] = $2 } END { print c[int((NR + 1) / 2)] }')
  echo "$v $wall $cpu" >> "$tmp/medians"
  awk -v name="${variants[$v]}" -v w="$wall" -v c="$cpu" -v f="$flows" \
    'BEGIN { printf "%-12s median wall %6.2f s, CPU %6.2f s, %5.2f M flows/s\n", name, w, c, f / w / 1e6 }'
done
awk '{ w[$1] = $2; c[$1] = $3 }
  END {
    printf "new -j / base -j:       wall %.3f (target <= 1.05), CPU %.3f\n", w[1] / w[0], c[1] / c[0];
    printf "%s x 1 / 1 x %s (-j): throughput %.3f (target >= 0.85), CPU %.3f\n", N, N, w[1] / w[3], c[3] / c[1];
    printf "Timely -w / crossbeam -j (one process): throughput %.3f, CPU %.3f\n", w[1] / w[2], c[2] / c[1];
  }' N="$N" "$tmp/medians"
