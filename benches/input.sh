# Sourced by benches/scan.sh and benches/rules.sh: build the binary, generate (once) the uncompressed nfcapd file
# they time, page-cache it, and print the machine and input lines. Sets BIN, FILE, RUNS.
FLOWS=${FLOWS:-10000000}
SOURCES=${SOURCES:-1000000}
RUNS=${RUNS:-3}
DIR=${DIR:-/tmp/flowsketch-bench/scan-$FLOWS-$SOURCES}
BIN=target/release/flowsketch

cargo build --release --quiet
if [ ! -f "$DIR/truth.json" ]; then
  "$BIN" gen -o "$DIR" --flows "$FLOWS" --sources "$SOURCES" --compression none --rotate 0 --seed 1
fi
FILE=$(ls "$DIR"/nfcapd.* | head -1)
cat "$DIR"/nfcapd.* > /dev/null  # page-cache the input: the figures are about the engine, not the disk

# The median of RUNS lines on stdin, by their first number (a wall time).
median_line() { sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"; }

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/Mem:/{print $2}') GiB; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "input: $FILE ($(du -m "$FILE" | cut -f1) MB)"
