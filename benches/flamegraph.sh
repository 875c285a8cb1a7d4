#!/usr/bin/env bash
# A flame graph of workload C (read only) on a fresh 3-node local cluster:
# every process on the machine (the benchmark client and the three nodes)
# sampled together, so the graph shows where a get's CPU goes on both
# sides of the wire.
#
#   benches/flamegraph.sh                      # writes docs/flamegraph-c.svg
#   OUT=/tmp/c.svg SECONDS_SAMPLED=5 benches/flamegraph.sh
#
# Needs perf (Debian's linux-perf) and inferno (cargo install inferno);
# installs whichever is missing. Sampling uses DWARF call graphs, because
# release builds keep no frame pointers.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-docs/flamegraph-c.svg}
SECONDS_SAMPLED=${SECONDS_SAMPLED:-4}
RECORDS=${RECORDS:-20000}
CONCURRENCY=${CONCURRENCY:-32}

SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
if ! command -v perf >/dev/null; then
    echo "installing perf (Debian package linux-perf) ..." >&2
    $SUDO apt-get install -y -q linux-perf >/dev/null
fi
if ! command -v inferno-flamegraph >/dev/null; then
    echo "installing inferno (cargo install inferno) ..." >&2
    cargo install inferno --locked -q
fi

cargo build --release -q
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The run lasts well past the sampling window: loading first, then C.
target/release/quire bench --local-nodes 3 --workloads c --mode closed \
    --records "$RECORDS" --distribution uniform --concurrency "$CONCURRENCY" \
    --duration-s $((SECONDS_SAMPLED + 12)) >"$WORK/bench.txt" 2>&1 &
BENCH=$!
# Loading takes a few seconds; sample the steady state of C after it.
for _ in $(seq 120); do
    grep -q "workload C" "$WORK/bench.txt" 2>/dev/null && break
    sleep 0.5
done
sleep 3
perf record -F 99 -a --call-graph dwarf,16384 -o "$WORK/perf.data" -- sleep "$SECONDS_SAMPLED" 2>/dev/null
wait "$BENCH"
perf script -i "$WORK/perf.data" 2>/dev/null \
    | inferno-collapse-perf \
    | inferno-flamegraph --minwidth 0.5 --title "Quire workload C, 3 local nodes (3,2,2), all processes" >"$OUT"
grep -E "^C +closed +read" "$WORK/bench.txt" || true
echo "flame graph written to $OUT"
