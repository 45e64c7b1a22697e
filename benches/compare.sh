#!/usr/bin/env bash
# Whole-program timing: flowsketch (compact, exact, hllpp) against the real nfdump's best equivalent pipelines, on a
# capture written by `flowsketch gen`. Every command is timed as a user runs it, with GNU `/usr/bin/time -v`
# (wall clock and peak RSS). Prints markdown tables on stdout; progress on stderr. Never run in CI.
#
#   benches/compare.sh                                   # 10 M flows, 1 M sources (a few minutes)
#   benches/compare.sh --flows 100000000 --sources 5000000 --work /tmp/fs-bench-100m   # the issue's large case
#
# Options: --flows N, --sources N, --seed N, --runs N (median wall time of N runs; default 1), --threads N
# (flowsketch -j; default all CPUs), --work DIR (capture and scratch files; default /tmp/flowsketch-bench-FLOWS),
# --skip-nfdump. Env FLOWSKETCH=path uses that binary instead of building target/release/flowsketch.
#
# Peak RSS of a shell pipeline is GNU time's ru_maxrss over the pipeline's processes: the largest single process
# (nfdump or sort), not their sum.
set -euo pipefail

flows=10000000
sources=1000000
seed=1
runs=1
threads=""
work=""
skip_nfdump=0
while [ $# -gt 0 ]; do
    case "$1" in
        --flows) flows=$2; shift 2 ;;
        --sources) sources=$2; shift 2 ;;
        --seed) seed=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --threads) threads=$2; shift 2 ;;
        --work) work=$2; shift 2 ;;
        --skip-nfdump) skip_nfdump=1; shift ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
work=${work:-/tmp/flowsketch-bench-$flows}
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${FLOWSKETCH:-}" ]; then
    (cd "$here" && cargo build --release --quiet)
    FLOWSKETCH=$here/target/release/flowsketch
fi
[ -x /usr/bin/time ] || { echo "needs GNU time at /usr/bin/time (apt-get install time)" >&2; exit 2; }
if [ $skip_nfdump = 0 ] && ! command -v nfdump >/dev/null; then
    echo "nfdump not found: install it or pass --skip-nfdump" >&2; exit 2
fi
jflag=()
[ -n "$threads" ] && jflag=(-j "$threads")

# The capture: nfcapd files alone in $work/cap (truth.json beside the folder, so neither tool trips on it).
mkdir -p "$work"
cap=$work/cap
stamp="flows=$flows sources=$sources seed=$seed"
if [ "$(cat "$work/params" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$cap"
    echo "generating $stamp into $cap" >&2
    "$FLOWSKETCH" gen -o "$cap" --flows "$flows" --sources "$sources" --seed "$seed" --compression lz4 >&2
    mv "$cap/truth.json" "$work/truth.json"
    echo "$stamp" > "$work/params"
fi

# One-rule definitions, so each flowsketch run does what the matching nfdump pipeline does.
pick='
/^\[\[rule\]\]/ { inrule = 1; block = $0 "\n"; next }
inrule && /^id = / { id = $3; gsub(/"/, "", id) }
inrule { block = block $0 "\n"; if ($0 == "") { if (id == keep) printf "%s", block; inrule = 0; block = ""; id = "" } next }
{ print }
END { if (inrule && id == keep) printf "%s", block }'
"$FLOWSKETCH" rules --print | awk -v keep=FS1 "$pick" > "$work/fs1.toml"
"$FLOWSKETCH" rules --print | awk -v keep=FS4 "$pick" > "$work/fs4.toml"
for r in fs1 fs4; do "$FLOWSKETCH" rules --check "$work/$r.toml" >&2; done

# Warm the page cache so every command reads from memory.
cat "$cap"/* > /dev/null

declare -A WALL RSS OUT
# measure NAME COMMAND: median wall time over $runs runs, peak RSS of the last, output lines (findings).
measure() {
    local name=$1 cmd=$2 walls=() i
    for ((i = 0; i < runs; i++)); do
        echo "  $name (run $((i + 1))/$runs)" >&2
        /usr/bin/time -v -o "$work/time.txt" bash -c "$cmd" > "$work/out.txt" 2> "$work/err.txt" || true
        walls+=("$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, t, ":"); s = 0; for (k = 1; k <= n; k++) s = s * 60 + t[k]; print s }' "$work/time.txt")")
    done
    WALL[$name]=$(printf '%s\n' "${walls[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    RSS[$name]=$(awk -F': ' '/Maximum resident set size/ { print $2 * 1024 }' "$work/time.txt")
    OUT[$name]=$(grep -vc '"type":"summary"' "$work/out.txt" || true)
    cp "$work/out.txt" "$work/out-${name// /-}.txt"
}

fs="$FLOWSKETCH scan -q -f json ${jflag[*]}"
nf="nfdump -R $cap -q -N -6"
echo "timing on $(nproc) CPUs, $stamp" >&2
for rule in fs1 fs4 all; do
    defs=""
    [ $rule != all ] && defs="-r $work/$rule.toml"
    measure "$rule compact" "$fs $defs $cap"
    measure "$rule exact" "$fs --exact $defs $cap"
    measure "$rule hllpp" "$fs --counter hllpp $defs $cap"
done
if [ $skip_nfdump = 0 ]; then
    # (a) FS1: distinct destinations per source: one line per distinct (src, dst) pair, counted per source.
    measure "fs1 nfdump" "$nf -A srcip,dstip -o 'fmt:%sa' | sort | uniq -c | awk '\$1 > 100'"
    # (b) FS4: flows that are SYN only or SYN+RST only, per source (nfdump's flags test means 'these are set').
    measure "fs4 nfdump" "$nf -A srcip -o 'fmt:%sa %fl' 'proto tcp and ((flags S and not flags AFRPU) or (flags SR and not flags AFPU))' | awk '\$2 > 100'"
fi

mb() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
# The top-level "flows" of truth.json (two-space indent; events have their own "flows" deeper in).
mflows=$(awk -F': ' '/^  "flows"/ { gsub(/,/, "", $2); print $2; exit }' "$work/truth.json")

echo "Machine: $(nproc) CPUs, $(lscpu | awk -F': +' '/Model name/ { print $2; exit }'), $(free -g | awk '/Mem:/ { print $2 }') GB RAM; $(date -u '+%Y-%m-%d %H:%M UTC'); $("$FLOWSKETCH" --version); $(nfdump -V 2>/dev/null | head -1)."
echo
echo "Capture: \`flowsketch gen --flows $flows --sources $sources --seed $seed --compression lz4\` ($mflows flows, $(du -sh "$cap" | cut -f1) in $(ls "$cap" | wc -l) files), page-cached. Median of $runs run(s)."
echo
echo "| rule(s) | program | wall s | M flows/s | peak RSS MB | output lines | wall vs compact | RSS vs compact |"
echo "|---|---|---|---|---|---|---|---|"
for rule in fs1 fs4 all; do
    for prog in compact exact hllpp nfdump; do
        name="$rule $prog"
        [ -n "${WALL[$name]:-}" ] || continue
        label="flowsketch --counter $prog"
        [ $prog = nfdump ] && label="nfdump 1.7.1 pipeline"
        rate=$(awk -v f="$mflows" -v s="${WALL[$name]}" 'BEGIN { if (s > 0) printf "%.2f", f / s / 1e6; else print "-" }')
        echo "| ${rule^^} | $label | ${WALL[$name]} | $rate | $(mb "${RSS[$name]}") | ${OUT[$name]} | $(ratio "${WALL[$name]}" "${WALL[$rule compact]}") | $(ratio "${RSS[$name]}" "${RSS[$rule compact]}") |"
    done
done
echo
echo "Output lines are findings (one JSON line each for flowsketch; one line per host for nfdump)."
echo
# The planted truth against the full-definitions findings of each counter.
echo "| counter | planted events >= 10 % above threshold reported | planted events >= 10 % below reported | within 10 %: reported / total |"
echo "|---|---|---|---|"
for prog in compact exact hllpp; do
    python3 "$here/benches/planted.py" "$work/truth.json" "$work/out-all-$prog.txt" "$prog" || true
done
