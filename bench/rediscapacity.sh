#!/usr/bin/env bash
# Capacity of the shared (Redis) cache tier: what one Redis primary costs per proxied request, and
# so how many proxies one primary can serve. See bench/README.md ("Redis capacity").
#
# Measures, on this machine, in one run:
#   1. redis-benchmark against a local redis-server: GET and SET of 1 KiB values and the proxy's
#      lookup script (EVAL: GET + INCR + PTTL + PEXPIRE), requests per second and p99;
#   2. Redis commands per proxied request on each path: a hit in L1 (memory), a hit in the Redis
#      tier, and a miss (lookup, fill lock, store), counted exactly from INFO (client round trips
#      = total_commands_processed; commands including those run inside scripts = commandstats);
#   3. wrk through scalelab-proxy for a hit in memory and a hit in Redis (1 KiB object): req/s, p99.
# and prints the capacity estimate from those figures.
#
# Usage: bench/rediscapacity.sh
# Environment (all optional):
#   DURATION=5          seconds per wrk run
#   CONNECTIONS=32      wrk connections (one thread)
#   BENCH_REQUESTS=200000  requests per redis-benchmark test
#   COUNT=2000          requests per path for the command counts
#   PROXY_CORE=0 LOAD_CORE=1   scalelab-proxy on PROXY_CORE; redis-server, the origin and the
#                       load generators on LOAD_CORE
#   SCALELAB_PROXY_BIN= scalelab-proxy binary to use as is (default: a fresh release build)
#   BENCH_PORT_BASE=18280  ports used: BASE+1..BASE+4
#   READY_TIMEOUT=60
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
BENCH_REQUESTS=${BENCH_REQUESTS:-200000}
COUNT=${COUNT:-2000}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PORT_BASE=${BENCH_PORT_BASE:-18280}
READY_TIMEOUT=${READY_TIMEOUT:-60}

BENCH_NAME=rediscapacity
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"
require_uint DURATION CONNECTIONS BENCH_REQUESTS COUNT PROXY_CORE LOAD_CORE PORT_BASE READY_TIMEOUT

ensure_tools nginx:nginx wrk:wrk curl:curl taskset:util-linux redis-server:redis-server \
    redis-benchmark:redis-tools redis-cli:redis-tools
NGINX=$(find_bin nginx)
WRK=$(find_bin wrk)
SCALELAB_BIN=$(scalelab_proxy_bin)

new_results rediscapacity
PORT_ORIGIN=$((PORT_BASE + 1))
PORT_REDIS=$((PORT_BASE + 2))
PORT_PROXY=$((PORT_BASE + 3))
PORT_ADMIN=$((PORT_BASE + 4))
require_free_ports "$PORT_ORIGIN" "$PORT_REDIS" "$PORT_PROXY" "$PORT_ADMIN"
install_cleanup

BODY=$(printf '%01024d' 0 | tr 0 a)
{
    nginx_common origin
    cat <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
$(nginx_temp_paths origin)
    default_type text/plain;
    server {
        listen 127.0.0.1:$PORT_ORIGIN;
        location = /health { return 200 "ok\n"; }
        location / {
            add_header Cache-Control "public, max-age=600";
            return 200 "$BODY";
        }
    }
}
EOF
} >"$WORK/origin.conf"
mkdir -p "$WORK/origin" "$WORK/redis"

start_bg origin taskset -c "$LOAD_CORE" "$NGINX" -p "$WORK/origin" -e "$WORK/origin/error.log" \
    -c "$WORK/origin.conf"
wait_ready origin "$LAST_PID" "http://127.0.0.1:$PORT_ORIGIN/health"
start_bg redis taskset -c "$LOAD_CORE" redis-server --port "$PORT_REDIS" --bind 127.0.0.1 \
    --dir "$WORK/redis" --save "" --appendonly no
for _ in $(seq 1 100); do
    redis-cli -p "$PORT_REDIS" ping >/dev/null 2>&1 && break
    sleep 0.1
done
rcli() { redis-cli -p "$PORT_REDIS" "$@"; }

# 1. What this Redis does alone.
LOOKUP=$(cat "$ROOT/proxy/src/cache/remote/lookup.lua")
rcli set bench:obj "$BODY" >/dev/null
bench_csv() { # label args... -> "label rps p99_ms"
    local label=$1
    shift
    local line
    line=$(taskset -c "$LOAD_CORE" redis-benchmark -p "$PORT_REDIS" -n "$BENCH_REQUESTS" -c 50 \
        --csv "$@" | tail -n 1)
    # "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    awk -F'"' -v label="$label" '{print label, $4, $14}' <<<"$line"
}
{
    bench_csv GET_1KiB -t get -d 1024
    bench_csv SET_1KiB -t set -d 1024
    # The script by its SHA, as the proxy sends it (EVALSHA), so the test name has no quotes.
    sha=$(rcli script load "$LOOKUP")
    bench_csv lookup_script evalsha "$sha" 2 bench:obj bench:hits
} >"$WORK/redis-benchmark.txt"
rcli flushall >/dev/null

# 2 and 3: the proxy, with L1 in memory and L3 in Redis; promotion.hits decides whether hits end
# up in memory (2) or stay in Redis (a million).
proxy_config() { # promotion_hits
    cat <<EOF
[proxy]
listen = ["127.0.0.1:$PORT_PROXY"]
admin_listen = "127.0.0.1:$PORT_ADMIN"
threads = 1

[upstreams.origin]
servers = [ { addr = "127.0.0.1:$PORT_ORIGIN" } ]

[redis]
url = "redis://127.0.0.1:$PORT_REDIS/0"

[cache]
max_object_bytes = "1MiB"

[[cache.tiers]]
name = "L1"
max_entries = 100000
max_bytes = "256MiB"
ttl = "600s"

[[cache.tiers]]
name = "L3"
kind = "redis"
ttl = "600s"

[cache.promotion]
hits = $1

[[routes]]
name = "obj"
path = "/"
upstream = "origin"
cache = { default_ttl = "600s" }
EOF
}
start_proxy() { # name promotion_hits
    proxy_config "$2" >"$WORK/$1.toml"
    start_bg "$1" env RUST_LOG=warn taskset -c "$PROXY_CORE" "$SCALELAB_BIN" --config "$WORK/$1.toml"
    PROXY_PID=$LAST_PID
    wait_ready "$1" "$PROXY_PID" "http://127.0.0.1:$PORT_PROXY/warm"
}
stop_proxy() {
    kill "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do port_in_use "$PORT_PROXY" || break; sleep 0.1; done
}
counters() { # -> "round_trips commands": the proxy's own count of commands it sent (each one
    # round trip), and Redis's count of commands it ran, those inside scripts included
    local trips cmds
    trips=$(curl -s "http://127.0.0.1:$PORT_ADMIN/metrics" |
        awk '/^scalelab_cache_redis_commands_total\{result="(ok|error)"\}/ {sum += $2} END {print sum+0}')
    cmds=$(rcli info commandstats | awk -F'[:=,]' '/^cmdstat_/ && !/^cmdstat_info:/ {sum += $3} END {print sum+0}')
    echo "$trips $cmds"
}
per_request() { # label url_prefix unique(0/1)
    local label=$1 prefix=$2 unique=$3 before after i url
    read -r -a before < <(counters)
    for ((i = 0; i < COUNT; i++)); do
        if ((unique)); then url="$prefix$i"; else url=$prefix; fi
        curl -s -o /dev/null "http://127.0.0.1:$PORT_PROXY$url"
    done
    sleep 0.5 # stores run beside the responses
    read -r -a after < <(counters)
    awk -v l="$label" -v n="$COUNT" -v t0="${before[0]}" -v t1="${after[0]}" -v c0="${before[1]}" \
        -v c1="${after[1]}" 'BEGIN {printf "%s %.2f %.2f\n", l, (t1 - t0) / n, (c1 - c0) / n}'
}
wrk_row() { # label path
    local out=$WORK/wrk-$1.txt
    taskset -c "$LOAD_CORE" "$WRK" -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency \
        "http://127.0.0.1:$PORT_PROXY$2" >"$out"
    read -r rps p99 _ < <(python3 "$BENCH_DIR/wrk_report.py" parse "$out")
    echo "$1 $rps $p99"
}

start_proxy memory 2
curl -s -o /dev/null "http://127.0.0.1:$PORT_PROXY/hot"
curl -s -o /dev/null "http://127.0.0.1:$PORT_PROXY/hot"
curl -s -o /dev/null "http://127.0.0.1:$PORT_PROXY/hot"
{
    per_request hit_in_L1 /hot 0
    per_request miss /miss- 1
} >"$WORK/ops.txt"
wrk_row hit_in_L1 /hot >"$WORK/wrk.txt"
stop_proxy

start_proxy shared 1000000
curl -s -o /dev/null "http://127.0.0.1:$PORT_PROXY/hot"
sleep 0.5
per_request hit_in_redis /hot 0 >>"$WORK/ops.txt"
wrk_row hit_in_redis /hot >>"$WORK/wrk.txt"
stop_proxy

{
    echo "# Redis tier capacity ($(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$ROOT" rev-parse --short HEAD))"
    echo
    echo "Machine: $(nproc) cores; scalelab-proxy (1 thread) on core $PROXY_CORE; redis-server, the"
    echo "nginx origin, wrk and redis-benchmark on core $LOAD_CORE. 1 KiB objects."
    echo
    echo "| redis-benchmark (50 clients) | req/s | p99 ms |"
    echo "|---|---:|---:|"
    awk '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$WORK/redis-benchmark.txt"
    echo
    echo "| path | Redis round trips / request | Redis commands / request (incl. inside scripts) |"
    echo "|---|---:|---:|"
    awk '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$WORK/ops.txt"
    echo
    echo "| through the proxy (wrk, $CONNECTIONS connections) | req/s | p99 ms |"
    echo "|---|---:|---:|"
    awk '{printf "| %s | %s | %s |\n", $1, $2, $3}' "$WORK/wrk.txt"
    echo
    python3 - "$WORK/redis-benchmark.txt" "$WORK/ops.txt" "$WORK/wrk.txt" <<'PY'
import sys
bench = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[1]) if l.strip()}
ops = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[2]) if l.strip()}
wrk = {l.split()[0]: float(l.split()[1]) for l in open(sys.argv[3]) if l.strip()}
lookup = bench["lookup_script"]
redis_hit = wrk["hit_in_redis"]
print(f"One Redis core runs the lookup script {lookup:,.0f} times/s. A proxy thread serving only "
      f"Redis-tier hits asks {redis_hit:,.0f} lookups/s of it, so one Redis core keeps up with "
      f"about {lookup / redis_hit:.1f} such proxy threads. With a hot set that lives in L1 "
      f"(0 round trips per hit) and a 10% Redis-hit / 1% miss mix, one proxy thread at "
      f"{wrk['hit_in_L1']:,.0f} req/s sends about "
      f"{wrk['hit_in_L1'] * (0.10 * ops['hit_in_redis'] + 0.01 * ops['miss']):,.0f} round trips/s, "
      f"so one Redis core serves about "
      f"{lookup / (wrk['hit_in_L1'] * (0.10 * ops['hit_in_redis'] + 0.01 * ops['miss'])):.0f} proxy threads.")
PY
} >"$REPORT"
cat "$REPORT"
