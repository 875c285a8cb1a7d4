#!/usr/bin/env bash
# Quire next to Redis, same value size and concurrency, one run, loopback
# only. Installs redis-server (Debian) if missing.
#
#   benches/compare-redis.sh            # defaults below
#   VALUE_BYTES=1024 CONCURRENCY=32 DURATION_S=10 THREADS=1 benches/compare-redis.sh
#
# Redis runs in memory with persistence off (its usual benchmark setup) and
# again with appendfsync always (every write fsynced, like Quire's `sync`
# stores). Quire runs 3 local nodes, (N,R,W) = (3,2,2), `sync` durability,
# workloads C (read only) and A (50/50), closed loop, uniform keys (as
# redis-benchmark's -r), with the quic-echo baseline (a bare QUIC server:
# the transport's ceiling) in the same run. THREADS sets `quire bench
# --threads` (default 0: one runtime thread per core, as in every earlier
# run of this script); that runtime runs the Quire client and both ends
# of quic-echo, while redis-benchmark and redis-server are one thread
# each. Prints one side-by-side table and the ratios the performance
# targets are stated in.
set -euo pipefail
cd "$(dirname "$0")/.."

VALUE_BYTES=${VALUE_BYTES:-1024}
CONCURRENCY=${CONCURRENCY:-32}
DURATION_S=${DURATION_S:-10}
RECORDS=${RECORDS:-20000}
REQUESTS=${REQUESTS:-200000}
THREADS=${THREADS:-0}

if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null; then
    echo "installing redis-server (Debian package) ..." >&2
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y -q redis-server >/dev/null
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

cargo build --release -q
QUIRE=target/release/quire
WORK=$(mktemp -d)
trap 'kill $(cat "$WORK"/redis*.pid 2>/dev/null) 2>/dev/null || true; rm -rf "$WORK"' EXIT

redis_run() { # name, extra redis-server args...
    local name=$1; shift
    local port
    port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --dir "$WORK" --save "" \
        --daemonize yes --pidfile "$WORK/redis-$name.pid" --logfile "$WORK/redis-$name.log" "$@"
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -d "$VALUE_BYTES" -c "$CONCURRENCY" \
        -n "$REQUESTS" -r "$RECORDS" --csv 2>/dev/null \
        | sed "s/^/redis-$name,/" >>"$WORK/redis.csv"
    kill "$(cat "$WORK/redis-$name.pid")"
}

echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "value ${VALUE_BYTES} B, concurrency ${CONCURRENCY}, ${RECORDS} records, uniform keys"
echo "Redis: redis-benchmark; Quire and quic-echo: quire bench --threads $THREADS (0: one per core; 3 local nodes, (3,2,2), sync), closed loop"
redis_run memory --appendonly no
redis_run fsync --appendonly yes --appendfsync always
"$QUIRE" bench --local-nodes 3 --workloads c,a --mode closed --records "$RECORDS" \
    --distribution uniform --value-bytes "$VALUE_BYTES" --concurrency "$CONCURRENCY" \
    --duration-s "$DURATION_S" --baseline quic-echo --threads "$THREADS" --json >"$WORK/quire.json"
python3 - "$WORK/redis.csv" "$WORK/quire.json" <<'PY'
import csv, json, sys
redis = {}
for row in csv.reader(open(sys.argv[1])):
    if len(row) < 8 or row[1] == "test":
        continue
    # target, test, rps, avg, min, p50, p95, p99, max (ms)
    redis[(row[0], row[1])] = (float(row[2]), float(row[5]), float(row[7]))
reports = {r["target"]: r for r in json.load(open(sys.argv[2]))}
quire = next(r for t, r in reports.items() if t.startswith("quire"))
echo = reports["quic-echo"]

def run(report, workload):
    return next(x for x in report["runs"] if x["workload"] == workload)

def kind(run, k):
    return next(x for x in run["kinds"] if x["kind"] == k)

print()
print("| target | operation | ops/s | p50 ms | p99 ms | p99.9 ms |")
print("| --- | --- | ---: | ---: | ---: | ---: |")
for (target, test), (rps, p50, p99) in sorted(redis.items()):
    print(f"| {target} | {test} | {rps:,.0f} | {p50:.2f} | {p99:.2f} | |")
for name, report in (("quic-echo", echo), (quire["target"], quire)):
    for w in ("C", "A"):
        r = run(report, w)
        for k in r["kinds"]:
            print(f"| {name} | {w} {k['kind']} | {k['ops_per_sec']:,.0f} | {k['p50_us']/1000:.2f} "
                  f"| {k['p99_us']/1000:.2f} | {k['p999_us']/1000:.2f} |")
        if len(r["kinds"]) > 1:
            print(f"| {name} | {w} all | {r['ops_per_sec']:,.0f} | | | |")
load = quire["records"] / quire["load_secs"]
print(f"| {quire['target']} | load (synced puts, W = 2) | {load:,.0f} | | | |")

c, a = run(quire, "C")["ops_per_sec"], run(quire, "A")["ops_per_sec"]
ec, ea = run(echo, "C")["ops_per_sec"], run(echo, "A")["ops_per_sec"]
print()
print("| ratio | value |")
print("| --- | ---: |")
print(f"| Quire C / Redis GET (in memory) | {c / redis[('redis-memory', 'GET')][0]:.2f} |")
print(f"| Quire C / quic-echo C | {c / ec:.2f} |")
print(f"| Quire A / quic-echo A | {a / ea:.2f} |")
print(f"| Quire synced load / Redis SET (appendfsync always) | {load / redis[('redis-fsync', 'SET')][0]:.2f} |")
peak = quire.get("node_peak_memory_bytes") or []
if peak:
    print(f"| node peak memory (MiB) | {', '.join(f'{b / 2**20:.0f}' for b in peak)} |")
# Every node holds every record at N = 3 on 3 nodes.
held = quire["records"] * quire["value_bytes"]
heap = quire.get("node_heap_memory_bytes") or []
if heap:
    print(f"| node own memory (RssAnon) / values held | {', '.join(f'{b / held:.2f}' for b in heap)} |")
disk = quire.get("node_data_file_bytes") or []
if disk:
    print(f"| node data file / values held | {', '.join(f'{b / held:.2f}' for b in disk)} |")
PY
