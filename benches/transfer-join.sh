#!/usr/bin/env bash
# Joining a fourth node to a 3-node local cluster: how fast the data moves
# (bytes moved / wall time from commit to flip) and what the foreground's
# reads see meanwhile, against the same cluster in steady state.
#
#   benches/transfer-join.sh                     # defaults below
#   RECORDS=1000000 MOVE_S=0 benches/transfer-join.sh   # move time alone
#   PARALLEL=1 benches/transfer-join.sh          # one transfer at a time
#   MAX_RATE=unlimited benches/transfer-join.sh  # `--max-rate` (MB/s)
#   SNAPSHOT=/big/disk/loaded benches/transfer-join.sh  # load once, reuse
#   WORKLOAD=a benches/transfer-join.sh          # writes during the move
#
# Steps: `quire up` (3 nodes, its maintenance loop running), `quire bench`
# loads RECORDS uniform records of 1 KiB and runs WORKLOAD (c: reads
# only, the default; a: half updates) closed loop for STEADY_S seconds
# (the steady state, after `quire bench`'s 1 s warm-up); then `quire
# node new`, node 4 started, `cluster join`, `plan`; a second WORKLOAD
# run of MOVE_S seconds starts (none when MOVE_S=0), and once it has
# warmed up, `commit` and at once `cluster transfers --wait [--parallel
# PARALLEL] [--max-rate MAX_RATE]`. Uses the release binaries; builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

RECORDS=${RECORDS:-200000}
WORKLOAD=${WORKLOAD:-c}
PARALLEL=${PARALLEL:-}
MAX_RATE=${MAX_RATE:-}
CONCURRENCY=${CONCURRENCY:-16}
STEADY_S=${STEADY_S:-10}
MOVE_S=${MOVE_S:-10}
BASE_PORT=${BASE_PORT:-7600}
QUIRE=${QUIRE:-target/release/quire}
NODE=${NODE:-target/release/quire-node}
for bin in "$QUIRE" "$NODE"; do
    if [ ! -x "$bin" ]; then
        echo "$bin is missing: build the release binaries first (cargo build --release --workspace)" >&2
        exit 1
    fi
done
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"
DIR=$WORK/cluster
CONFIG=$DIR/client.toml

cleanup() {
    [ -n "${BENCH:-}" ] && kill "$BENCH" 2>/dev/null || true
    [ -n "${MOVER:-}" ] && { pkill -P "$MOVER" 2>/dev/null; kill "$MOVER" 2>/dev/null; } || true
    [ -n "${NODE4:-}" ] && kill "$NODE4" 2>/dev/null || true
    [ -n "${UP:-}" ] && kill -TERM "$UP" 2>/dev/null && wait "$UP" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

q() { "$QUIRE" --config "$CONFIG" "$@"; }

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), commit $(git rev-parse --short HEAD)"
up() {
    "$QUIRE" up --dir "$DIR" --base-port "$BASE_PORT" >>"$WORK/up.log" 2>&1 &
    UP=$!
    for _ in $(seq 150); do q status >/dev/null 2>&1 && break; sleep 0.2; done
    q status >/dev/null
}

# SNAPSHOT: a directory holding the loaded cluster (stopped) from an
# earlier run with the same RECORDS and BASE_PORT; made when missing.
if [ -n "${SNAPSHOT:-}" ] && [ -d "$SNAPSHOT" ]; then
    cp -a "$SNAPSHOT" "$DIR"
    up
    LOAD=(--no-load)
else
    up
    LOAD=()
fi
echo "== ${LOAD[*]:-load} $RECORDS records; steady state: workload $WORKLOAD, closed, $CONCURRENCY concurrent, $STEADY_S s =="
q bench --workloads "$WORKLOAD" --records "$RECORDS" --distribution uniform --mode closed \
    --concurrency "$CONCURRENCY" --duration-s "$STEADY_S" "${LOAD[@]}"
if [ -n "${SNAPSHOT:-}" ] && [ ! -d "$SNAPSHOT" ]; then
    kill -TERM "$UP" && wait "$UP" || true
    cp -a "$DIR" "$SNAPSHOT"
    up
fi

joined=$(date +%s.%N)
# The address `node new` gave node 4 (a free port when BASE_PORT is 0).
addr=$(q node new --dir "$DIR" --json | sed -E 's/.*"addr":"([^"]+)".*/\1/')
"$NODE" --config "$DIR/node-4/node.toml" >"$WORK/node-4.log" 2>&1 &
NODE4=$!
# Node 4 needs a moment to listen; a node that never answers (a
# quire-node older than quire, say: the protocol differs) stops the run.
joined_ok=
for _ in $(seq 6); do
    if q cluster join "$addr" >"$WORK/join.log" 2>&1; then joined_ok=1; break; fi
    sleep 0.5
done
if [ -z "$joined_ok" ]; then
    echo "node 4 could not join:" >&2
    cat "$WORK/join.log" >&2
    if ! kill -0 "$NODE4" 2>/dev/null; then
        echo "node 4 exited; its log ends with:" >&2
        tail -n 5 "$WORK/node-4.log" >&2
    fi
    exit 1
fi
q cluster plan >"$WORK/plan.txt"
tail -n 1 "$WORK/plan.txt"

# The workload beside the move warms up (its connections open, 1 s, not
# recorded) before the commit, so that its measured window starts with
# the commit and the move, not with its own cold start.
if [ "$MOVE_S" != 0 ]; then
    echo "== during the move: workload $WORKLOAD, closed, $CONCURRENCY concurrent, $MOVE_S s =="
    q bench --workloads "$WORKLOAD" --records "$RECORDS" --distribution uniform --mode closed \
        --concurrency "$CONCURRENCY" --duration-s "$MOVE_S" --warmup-s 1 --no-load \
        >"$WORK/during.txt" 2>"$WORK/during.err" &
    BENCH=$!
    # Its progress line says the warm-up is over and the window begins.
    until grep -q "closed loop" "$WORK/during.err"; do
        if ! kill -0 "$BENCH" 2>/dev/null; then
            cat "$WORK/during.err" >&2
            exit 1
        fi
        sleep 0.05
    done
fi
q cluster commit

WAIT=(cluster transfers --wait)
[ -n "$PARALLEL" ] && WAIT+=(--parallel "$PARALLEL")
[ -n "$MAX_RATE" ] && WAIT+=(--max-rate "$MAX_RATE")
start=$(date +%s.%N)
# The mover notes when it is done: the workload beside it may run longer.
(
    RUST_LOG=${RUST_LOG:-warn,quire_client::change=info} \
        "$QUIRE" --config "$CONFIG" --json "${WAIT[@]}" >"$WORK/moved.json"
    date +%s.%N >"$WORK/moved.end"
) &
MOVER=$!
if [ "$MOVE_S" != 0 ]; then
    wait "$BENCH" || { cat "$WORK/during.err" >&2; exit 1; }
    cat "$WORK/during.txt"
fi
wait "$MOVER"
end=$(cat "$WORK/moved.end")
# The bytes the transfers reported; when another client (the maintenance
# loop of `quire up`) flipped the change first, an older `--wait` reports
# none, and the plan's estimate stands in.
python3 - "$WORK/moved.json" "$start" "$end" "$WORK/plan.txt" "$joined" <<'EOF'
import json, re, sys
report = json.load(open(sys.argv[1]))
secs = float(sys.argv[3]) - float(sys.argv[2])
moved = report["bytes"]
if moved == 0:
    moved = int(re.search(r"about (\d+) bytes", open(sys.argv[4]).read()).group(1))
    print("(bytes: the plan's estimate)")
print(f"moved {len(report['transfers'])} transfers, {moved / 1e6:.1f} MB in {secs:.1f} s "
      f"(commit to flip): {moved / 1e6 / secs:.1f} MB/s; flipped {report['flipped']}, "
      f"{report['keys_repaired_at_close']} keys repaired at close")
print(f"the whole join (node new, start, join, plan, commit, transfers --wait): "
      f"{float(sys.argv[3]) - float(sys.argv[5]):.1f} s")
EOF
