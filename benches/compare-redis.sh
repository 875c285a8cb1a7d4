#!/usr/bin/env bash
# Quire next to Redis, same value size and concurrency, one run, loopback
# only. Installs redis-server (Debian) if missing.
#
#   benches/compare-redis.sh            # defaults below
#   VALUE_BYTES=1024 CONCURRENCY=32 DURATION_S=10 benches/compare-redis.sh
#
# Redis runs in memory with persistence off (its usual benchmark setup) and
# again with appendfsync always (every write fsynced, like Quire's `sync`
# stores). Quire runs 3 local nodes, (N,R,W) = (3,2,2), `sync` durability,
# workloads C (read only) and A (50/50), closed loop.
set -euo pipefail
cd "$(dirname "$0")/.."

VALUE_BYTES=${VALUE_BYTES:-1024}
CONCURRENCY=${CONCURRENCY:-32}
DURATION_S=${DURATION_S:-10}
RECORDS=${RECORDS:-100000}
REQUESTS=${REQUESTS:-200000}

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
        | sed "s/^/redis-$name,/"
    kill "$(cat "$WORK/redis-$name.pid")"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr)"
echo "value ${VALUE_BYTES} B, concurrency ${CONCURRENCY}"
echo
echo "== Redis (redis-benchmark; rps and latency in ms) =="
redis_run memory --appendonly no
redis_run fsync --appendonly yes --appendfsync always
echo
echo "== Quire (3 local nodes, (3,2,2), sync) =="
"$QUIRE" bench --local-nodes 3 --workloads c,a --mode closed --records "$RECORDS" \
    --value-bytes "$VALUE_BYTES" --concurrency "$CONCURRENCY" --duration-s "$DURATION_S"
