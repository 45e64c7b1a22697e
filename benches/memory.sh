#!/usr/bin/env bash
# Peak memory of admission against exact counting on a large capture, and whether the verified findings equal
# exact counting's: the built-in rules and FS1 alone, each with the default scan (admission + verify pass), one
# pass (--no-verify) and --exact; then the same capture plus a flood of one-flow spoofed sources, to show what
# the flood costs. Prints a markdown table (peak RSS of each run, from GNU time) and the findings check. Takes
# tens of minutes and some GB of disk; never run in CI.
#
#   benches/memory.sh                                        # 100 M flows, 5 M sources, + 20 M spoofed sources
#   FLOWS=10000000 SOURCES=1000000 SPOOFED=2000000 benches/memory.sh
#
# WORK (default /tmp/flowsketch-memory) holds the captures; BIN the binary (default: built from this tree).
set -euo pipefail
cd "$(dirname "$0")/.."
FLOWS=${FLOWS:-100000000}
SOURCES=${SOURCES:-5000000}
SPOOFED=${SPOOFED:-20000000}
THREADS=${THREADS:-2}
WORK=${WORK:-/tmp/flowsketch-memory}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=target/release/flowsketch
fi

capture() { # DIR EXTRA...: generate once; truth.json beside the files, not among them
  local dir=$1; shift
  if [ ! -f "$dir.truth.json" ]; then
    "$BIN" gen -o "$dir" --flows "$FLOWS" --sources "$SOURCES" --seed 1 --compression lz4 "$@" >&2
    mv "$dir/truth.json" "$dir.truth.json"
  fi
}
plain=$WORK/cap-$FLOWS-$SOURCES
spoofed=$WORK/cap-$FLOWS-$SOURCES-spoofed-$SPOOFED
mkdir -p "$WORK"
capture "$plain"
capture "$spoofed" --spoofed "$SPOOFED"

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC'); $("$BIN" --version)"
echo "captures: $plain ($(du -smL "$plain" | cut -f1) MB), $spoofed ($(du -smL "$spoofed" | cut -f1) MB)"
echo
echo "| capture | rules | run | wall s | user s | peak RSS MB | findings |"
echo "|---|---|---|---|---|---|---|"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # CAPTURE RULES NAME FLAGS...
  local cap=$1 rules=$2 name=$3; shift 3
  local rflag=()
  [ "$rules" = fs1 ] && rflag=(-r benches/rules/fs1.toml)
  local tag
  tag=$(basename "$cap")-$rules-$name
  /usr/bin/time -f '%e %U %M' -o "$out/$tag.time" "$BIN" scan -q -j "$THREADS" -f json "${rflag[@]}" "$@" "$cap" \
    > "$out/$tag.json" 2> "$out/$tag.err" || true
  read -r wall user kb < <(tail -1 "$out/$tag.time")
  # Findings without the field that names the counter: what must equal between a verified scan and --exact.
  grep -v '"type":"summary"' "$out/$tag.json" | sed 's/"counter":"[a-z]*"//' > "$out/$tag.findings"
  echo "| $(basename "$cap") | $rules | $name | $wall | $user | $((kb / 1024)) | $(wc -l < "$out/$tag.findings") |"
}
for cap in "$plain" "$spoofed"; do
  for rules in defaults fs1; do
    run "$cap" "$rules" default
    run "$cap" "$rules" one-pass --no-verify
    run "$cap" "$rules" exact --exact
  done
done
echo
for cap in "$plain" "$spoofed"; do
  for rules in defaults fs1; do
    tag=$(basename "$cap")-$rules
    if cmp -s "$out/$tag-default.findings" "$out/$tag-exact.findings"; then
      echo "- $(basename "$cap") $rules: verified findings equal --exact's in every field but the counter"
    else
      echo "- $(basename "$cap") $rules: verified findings DIFFER from --exact's"
    fi
  done
done
echo
echo "Planted events (gen's truth.json) against the built-in rules' findings:"
echo
echo "| run | planted events >= 10 % above threshold reported | planted events >= 10 % below reported | within 10 %: reported / total |"
echo "|---|---|---|---|"
for cap in "$plain" "$spoofed"; do
  for name in default one-pass exact; do
    python3 benches/planted.py "$cap.truth.json" "$out/$(basename "$cap")-defaults-$name.json" "$(basename "$cap") $name" || true
  done
done
