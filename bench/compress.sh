#!/usr/bin/env bash
# Compression benchmark (issue 24 section 5): gzip level 6 on the same 64 KiB JSON through
# scalelab-proxy and through nginx (`gzip on; gzip_comp_level 6`), both one worker on the same
# core, the same nginx upstream (gzip off) behind them. Reports throughput in MB/s of input
# (identity bytes compressed per second), the proxy's CPU time per MB of input (process CPU
# time, so other load on a shared machine matters less than for wall-clock numbers), the
# compressed size, and scalelab's RSS while it compresses one large response (flat memory).
#
# Usage: bench/compress.sh
# Environment (all optional):
#   ROUNDS=3            interleaved rounds (nginx, scalelab) x ROUNDS
#   DURATION=10         seconds per wrk run
#   CONNECTIONS=16      wrk connections (one wrk thread)
#   BIG_MIB=100         size of the large response for the memory check (0 = skip)
#   PROXY_CORE=0 LOAD_CORE=1   proxies on PROXY_CORE; wrk and the upstream on LOAD_CORE
#   BENCH_PORT_BASE=18180 ports used: BASE+1..BASE+4
#   READY_TIMEOUT=60
#   SCALELAB_PROXY_BIN= use this binary instead of a release build
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-16}
BIG_MIB=${BIG_MIB:-100}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PORT_BASE=${BENCH_PORT_BASE:-18180}
READY_TIMEOUT=${READY_TIMEOUT:-60}

BENCH_NAME=compress
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"

require_uint ROUNDS DURATION CONNECTIONS BIG_MIB PROXY_CORE LOAD_CORE PORT_BASE READY_TIMEOUT
((ROUNDS >= 1 && DURATION >= 1 && CONNECTIONS >= 1)) || die "ROUNDS, DURATION and CONNECTIONS must be >= 1"
[[ $PROXY_CORE != "$LOAD_CORE" ]] || die "PROXY_CORE and LOAD_CORE must differ"

ensure_tools nginx:nginx wrk:wrk curl:curl taskset:util-linux gzip:gzip
NGINX=$(find_bin nginx) || die "nginx not found"
WRK=$(find_bin wrk) || die "wrk not found"
command -v python3 >/dev/null || die "python3 is required"
SCALELAB_BIN=$(scalelab_proxy_bin)

new_results compress
PORT_UP=$((PORT_BASE + 1))
PORT_NGINX=$((PORT_BASE + 2))
PORT_SCALELAB=$((PORT_BASE + 3))
PORT_ADMIN=$((PORT_BASE + 4))
require_free_ports "$PORT_UP" "$PORT_NGINX" "$PORT_SCALELAB" "$PORT_ADMIN"
install_cleanup
# The payloads are large; the report and logs stay, the bodies go.
CLEANUP_HOOKS+=("rm -rf '$WORK/www'")

# ---------------------------------------------------------------------------------------------
# Payloads: a 64 KiB JSON array of records (the benchmark's body) and a large one for memory
# ---------------------------------------------------------------------------------------------
mkdir -p "$WORK/www"
python3 - "$WORK/www" "$BIG_MIB" <<'EOF'
import json, random, sys
www, big_mib = sys.argv[1], int(sys.argv[2])
rng = random.Random(24)
words = ["alpha", "beta", "gamma", "delta", "epsilon", "queue", "worker", "gateway", "cache", "route"]
def record(i):
    return {"id": i, "name": f"{rng.choice(words)}-{rng.randrange(10**6)}", "tags": rng.sample(words, 3),
            "score": round(rng.random() * 100, 3), "active": rng.random() < 0.5, "owner": {"id": rng.randrange(5000), "team": rng.choice(words)}}
items, text = [], "[]"
while True:
    candidate = json.dumps(items + [record(len(items))])
    if len(candidate) > 65536:
        break
    items.append(record(len(items))); text = candidate
text = text[:-1] + " " * (65536 - len(text)) + "]"
assert len(text) == 65536
open(f"{www}/data.json", "w").write(text)
if big_mib:
    with open(f"{www}/big.json", "w") as out:
        chunk = []
        size = 0
        i = 0
        while size < big_mib * 1024 * 1024:
            line = json.dumps(record(i)) + "\n"; i += 1
            out.write(line); size += len(line)
EOF
BODY_BYTES=$(stat -c %s "$WORK/www/data.json")

# ---------------------------------------------------------------------------------------------
# The upstream (nginx, gzip off) and the two proxies
# ---------------------------------------------------------------------------------------------
{
    nginx_common upstream
    cat <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
$(nginx_temp_paths upstream)
    types { application/json json; }
    server {
        listen 127.0.0.1:$PORT_UP;
        root $WORK/www;
        location = /health { return 200 "ok"; }
    }
}
EOF
} >"$WORK/upstream.conf"

{
    nginx_common nginx
    cat <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
$(nginx_temp_paths nginx)
    gzip on;
    gzip_comp_level 6;
    gzip_types application/json;
    gzip_min_length 1024;
    gzip_proxied any;
    gzip_vary on;
    upstream origin { server 127.0.0.1:$PORT_UP; keepalive 64; }
    server {
        listen 127.0.0.1:$PORT_NGINX;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Accept-Encoding "";
        }
    }
}
EOF
} >"$WORK/nginx.conf"

cat >"$WORK/scalelab.toml" <<EOF
[proxy]
listen = ["127.0.0.1:$PORT_SCALELAB"]
admin_listen = "127.0.0.1:$PORT_ADMIN"
threads = 1
access_log = { enabled = false }

[upstreams.origin]
servers = [{ addr = "127.0.0.1:$PORT_UP" }]

[[routes]]
name = "data"
path = "/"
upstream = "origin"
compress = { encodings = ["gzip"], level = 6, types = ["application/json"], min_bytes = 1024 }
EOF

start_bg upstream taskset -c "$LOAD_CORE" "$NGINX" -c "$WORK/upstream.conf"
wait_ready upstream "$LAST_PID" "http://127.0.0.1:$PORT_UP/data.json"
start_bg nginx taskset -c "$PROXY_CORE" "$NGINX" -c "$WORK/nginx.conf"
NGINX_PID=$LAST_PID
wait_ready nginx "$NGINX_PID" "http://127.0.0.1:$PORT_NGINX/data.json"
start_bg scalelab env RUST_LOG=warn taskset -c "$PROXY_CORE" "$SCALELAB_BIN" --config "$WORK/scalelab.toml"
SCALELAB_PID=$LAST_PID
wait_ready scalelab "$SCALELAB_PID" "http://127.0.0.1:$PORT_SCALELAB/data.json"

# Both answer gzip, and the body decodes to the file, byte for byte.
declare -A GZ_BYTES
for peer in nginx scalelab; do
    port_var=PORT_${peer^^}
    url="http://127.0.0.1:${!port_var}/data.json"
    encoding=$(curl -s -o "$WORK/$peer.gz" -D - -H 'Accept-Encoding: gzip' "$url" |
        tr -d '\r' | awk -F': ' 'tolower($1) == "content-encoding" { print $2 }')
    [[ $encoding == gzip ]] || die "$peer did not answer gzip (Content-Encoding: '$encoding')"
    gzip -dc "$WORK/$peer.gz" | cmp -s - "$WORK/www/data.json" || die "$peer's gzip body does not decode to data.json"
    GZ_BYTES[$peer]=$(stat -c %s "$WORK/$peer.gz")
done
log "both proxies answer gzip that decodes to the 64 KiB file (nginx ${GZ_BYTES[nginx]} B, scalelab ${GZ_BYTES[scalelab]} B)"

# ---------------------------------------------------------------------------------------------
# Memory: scalelab's RSS while it compresses one BIG_MIB response (before any load)
# ---------------------------------------------------------------------------------------------
MEMORY_LINE=""
if ((BIG_MIB > 0)); then
    rss_before=$(proc_status_kib "$SCALELAB_PID" VmRSS)
    curl -s -H 'Accept-Encoding: gzip' -o "$WORK/big.gz" "http://127.0.0.1:$PORT_SCALELAB/big.json" &
    curl_pid=$!
    peak=$rss_before
    while kill -0 "$curl_pid" 2>/dev/null; do
        rss=$(proc_status_kib "$SCALELAB_PID" VmRSS)
        ((rss > peak)) && peak=$rss
        sleep 0.05
    done
    wait "$curl_pid" || die "the large download failed"
    gzip -dc "$WORK/big.gz" | cmp -s - "$WORK/www/big.json" || die "the large gzip body does not decode to big.json"
    big_in=$(stat -c %s "$WORK/www/big.json")
    big_out=$(stat -c %s "$WORK/big.gz")
    rm -f "$WORK/big.gz"
    MEMORY_LINE="scalelab RSS compressing one $((big_in / 1048576)) MiB response to $((big_out / 1048576)) MiB (gzip 6): ${rss_before} kB before, peak ${peak} kB during (sampled every 50 ms)"
    log "$MEMORY_LINE"
fi

# ---------------------------------------------------------------------------------------------
# Throughput and CPU, interleaved rounds
# ---------------------------------------------------------------------------------------------
declare -A SUM_MBPS SUM_MSPERMB
run_one() { # peer pid port
    local peer=$1 pid=$2 port=$3 out t0 t1 requests rps mbps ms_per_mb
    t0=$(proc_cpu_ticks "$pid")
    out=$(taskset -c "$LOAD_CORE" "$WRK" -t1 -c "$CONNECTIONS" -d "${DURATION}s" \
        -H 'Accept-Encoding: gzip' "http://127.0.0.1:$port/data.json")
    t1=$(proc_cpu_ticks "$pid")
    echo "$out" >>"$WORK/$peer.wrk"
    grep -q "Non-2xx" <<<"$out" && die "$peer answered errors: $out"
    requests=$(awk '/requests in/ { print $1 }' <<<"$out")
    rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
    read -r mbps ms_per_mb < <(python3 -c "
b, r, n, t, hz = $BODY_BYTES, $rps, $requests, $((t1 - t0)), $CLK_TCK
mb = n * b / 1e6
print(f'{r * b / 1e6:.1f} {t / hz * 1000 / mb:.2f}')")
    log "$peer: $rps req/s, $mbps MB/s of input, $ms_per_mb ms CPU per MB"
    SUM_MBPS[$peer]=$(python3 -c "print(${SUM_MBPS[$peer]:-0} + $mbps)")
    SUM_MSPERMB[$peer]=$(python3 -c "print(${SUM_MSPERMB[$peer]:-0} + $ms_per_mb)")
}
# Warm-up, unrecorded.
taskset -c "$LOAD_CORE" "$WRK" -t1 -c "$CONNECTIONS" -d 2s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PORT_NGINX/data.json" >/dev/null
taskset -c "$LOAD_CORE" "$WRK" -t1 -c "$CONNECTIONS" -d 2s -H 'Accept-Encoding: gzip' "http://127.0.0.1:$PORT_SCALELAB/data.json" >/dev/null
for ((round = 1; round <= ROUNDS; round++)); do
    run_one nginx "$NGINX_PID" "$PORT_NGINX"
    run_one scalelab "$SCALELAB_PID" "$PORT_SCALELAB"
done

{
    echo "## Compression, gzip level 6 on a 64 KiB JSON ($(git -C "$ROOT" rev-parse --short HEAD), $(date -u +%Y-%m-%d))"
    echo
    echo "wrk -t1 -c $CONNECTIONS, ${DURATION}s x $ROUNDS interleaved rounds, Accept-Encoding: gzip; each proxy one worker on core $PROXY_CORE, wrk and the nginx upstream on core $LOAD_CORE; CPU is the proxy process's own time."
    echo
    echo "| proxy | MB/s of input | CPU ms per MB of input | gzip body |"
    echo "|---|---:|---:|---:|"
    for peer in nginx scalelab; do
        python3 -c "print(f'| $peer | {${SUM_MBPS[$peer]} / $ROUNDS:.1f} | {${SUM_MSPERMB[$peer]} / $ROUNDS:.2f} | ${GZ_BYTES[$peer]} B |')"
    done
    python3 -c "print(f'\nscalelab / nginx: throughput {${SUM_MBPS[scalelab]} / ${SUM_MBPS[nginx]}:.2f}x, CPU per MB {${SUM_MSPERMB[scalelab]} / ${SUM_MSPERMB[nginx]}:.2f}x')"
    [[ -n $MEMORY_LINE ]] && printf '\n%s\n' "$MEMORY_LINE"
} | tee "$REPORT"
