#!/usr/bin/env bash
# Counts per request that hold on a busy machine (unlike req/s): instructions (callgrind) and
# system calls (strace -c) of one proxy serving exactly N keep-alive requests to an nginx
# upstream, after a warm-up that is not counted; and TOOL=perf: a cpu-clock profile and the
# proxy's CPU µs per request under wrk (proxy on core 0, wrk and upstream on core 1).
# See bench/README.md ("Profiles").
#
# Usage: bench/profile.sh scalelab|nolog|lab|traced|traced-all|pingora|nginx
#   scalelab: as shipped (debug_headers off, access log on); nolog: without the access log;
#   lab: with the lab config's debug_headers = "on" (the explain header sent below is then honoured);
#   traced / traced-all: as shipped plus [tracing] at sample_ratio 0.01 / 1, exporting to a port
#   where nothing listens (every export fails fast and is counted; the work up to the send is done)
# Environment: REQUESTS=2000 WARMUP_REQUESTS=200 CONNECTIONS=4 TOOL=callgrind|strace|both|perf
#   PERF_SECONDS=10 (TOOL=perf: wrk -t1 -c50 for this long)
#   SCALELAB_PROXY_BIN= (default target/release/scalelab-proxy, built if missing)
#   MINIMAL_PINGORA_BIN= (default target/release/minimal-pingora, built if missing)
#   BENCH_PORT_BASE=18280
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
PEER=${1:?usage: bench/profile.sh scalelab|nolog|lab|traced|traced-all|pingora|nginx}
REQUESTS=${REQUESTS:-2000}
WARMUP_REQUESTS=${WARMUP_REQUESTS:-200}
CONNECTIONS=${CONNECTIONS:-4}
TOOL=${TOOL:-both}
PORT_BASE=${BENCH_PORT_BASE:-18280}
READY_TIMEOUT=${READY_TIMEOUT:-120}
EXPLAIN_HEADER='X-Scalelab-Explain: 1'

BENCH_NAME=profile
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"
require_uint REQUESTS WARMUP_REQUESTS CONNECTIONS PORT_BASE
ensure_tools nginx:nginx valgrind:valgrind strace:strace curl:curl wrk:wrk perf:linux-perf
NGINX=$(find_bin nginx)

UP1=$((PORT_BASE + 1)) UP2=$((PORT_BASE + 2)) PROXY=$((PORT_BASE + 3)) ADMIN=$((PORT_BASE + 4))
require_free_ports "$UP1" "$UP2" "$PROXY" "$ADMIN"
new_results "profile-$PEER"
install_cleanup

BODY=$(printf '%0100d' 0 | tr 0 a)
{
    nginx_common upstreams
    cat <<NGX
http {
    access_log off;
    keepalive_requests 1000000;
$(nginx_temp_paths upstreams)
    server { listen 127.0.0.1:$UP1; location / { return 200 "$BODY"; } }
    server { listen 127.0.0.1:$UP2; location / { return 200 "$BODY"; } }
}
NGX
} >"$WORK/upstreams.conf"
start_bg upstreams taskset -c 1 "$NGINX" -p "$WORK/upstreams" -e "$WORK/upstreams/error.log" -c "$WORK/upstreams.conf"
wait_ready upstreams "$LAST_PID" "http://127.0.0.1:$UP1/"

case $PEER in
scalelab | nolog | lab | traced | traced-all)
    BIN=$(scalelab_proxy_bin)
    cat >"$WORK/proxy.toml" <<TOML
[proxy]
listen = ["127.0.0.1:$PROXY"]
admin_listen = "127.0.0.1:$ADMIN"
threads = 1
$([[ $PEER == nolog ]] && echo 'access_log = { enabled = false }')
$([[ $PEER == lab ]] && echo 'debug_headers = "on"')

[upstreams.bench]
strategy = "round_robin"
servers = [ { addr = "127.0.0.1:$UP1" }, { addr = "127.0.0.1:$UP2" } ]
connect_timeout = "1s"
read_timeout = "5s"

[[routes]]
name = "all"
path = "/"
upstream = "bench"
$([[ $PEER == traced* ]] && printf '[tracing]\notlp_endpoint = "http://127.0.0.1:%s"\nsample_ratio = %s\n' \
    "$((PORT_BASE + 5))" "$([[ $PEER == traced-all ]] && echo 1.0 || echo 0.01)")
TOML
    export RUST_LOG=warn # set here, not with env(1): valgrind must start the proxy itself
    CMD=("$BIN" --config "$WORK/proxy.toml")
    ;;
pingora)
    BIN=${MINIMAL_PINGORA_BIN:-$ROOT/target/release/minimal-pingora}
    [[ -x $BIN ]] || BIN=$(release_bin minimal-pingora "$BENCH_DIR/minimal-pingora")
    CMD=("$BIN" "127.0.0.1:$PROXY" "127.0.0.1:$UP1" "127.0.0.1:$UP2")
    ;;
nginx)
    {
        nginx_common proxy
        cat <<NGX
http {
    access_log off;
    keepalive_requests 1000000;
$(nginx_temp_paths proxy)
    upstream bench { server 127.0.0.1:$UP1; server 127.0.0.1:$UP2; keepalive 64; }
    server { listen 127.0.0.1:$PROXY;
        location / { proxy_pass http://bench; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGX
    } >"$WORK/proxy.conf"
    CMD=("$NGINX" -p "$WORK/proxy" -e "$WORK/proxy/error.log" -c "$WORK/proxy.conf")
    ;;
*) die "unknown peer $PEER" ;;
esac

load() { python3 "$BENCH_DIR/requests.py" "$PROXY" "$1" "$CONNECTIONS" "$EXPLAIN_HEADER"; }

if [[ $TOOL == callgrind || $TOOL == both ]]; then
    log "callgrind: $PEER, $WARMUP_REQUESTS warm-up then $REQUESTS counted requests"
    start_bg callgrind valgrind --tool=callgrind --instr-atstart=no --trace-children=no \
        --callgrind-out-file="$WORK/callgrind.out" "${CMD[@]}"
    CG_PID=$LAST_PID
    wait_ready callgrind "$CG_PID" "http://127.0.0.1:$PROXY/"
    load "$WARMUP_REQUESTS"
    callgrind_control -i on "$CG_PID" >/dev/null
    load "$REQUESTS"
    callgrind_control -d "$CG_PID" >/dev/null
    callgrind_control -i off "$CG_PID" >/dev/null
    sleep 1
    kill -TERM "$CG_PID" 2>/dev/null || true
    wait "$CG_PID" 2>/dev/null || true
    # The dump asked for above is part 1; the file without a suffix is the exit's remainder.
    out=$WORK/callgrind.out.1
    [[ -s $out ]] || die "no callgrind dump at $out"
    callgrind_annotate --inclusive=no "$out" >"$WORK/callgrind-self.txt" 2>/dev/null || true
    callgrind_annotate --inclusive=yes "$out" >"$WORK/callgrind-inclusive.txt" 2>/dev/null || true
    total=$(grep -m1 -E '^[0-9,]+ +\(100.0%\) +PROGRAM TOTALS' "$WORK/callgrind-self.txt" | awk '{print $1}' | tr -d ,)
    echo "callgrind $PEER: $total instructions over $REQUESTS requests = $((total / REQUESTS)) per request"
    echo "  top functions (self): $WORK/callgrind-self.txt"
fi

if [[ $TOOL == strace || $TOOL == both ]]; then
    log "strace -c: $PEER"
    start_bg proxy "${CMD[@]}"
    P=$LAST_PID
    wait_ready proxy "$P" "http://127.0.0.1:$PROXY/"
    load "$WARMUP_REQUESTS"
    start_bg strace strace -c -f -p "$P" -o "$WORK/strace.txt"
    sleep 1
    load "$REQUESTS"
    kill -INT "$LAST_PID"
    wait "$LAST_PID" 2>/dev/null || true
    echo "strace $PEER: system calls per request over $REQUESTS requests"
    # Columns: % time, seconds, usecs/call, calls, [errors], syscall; the last line is the total.
    awk -v n="$REQUESTS" '$1 ~ /^[0-9.]+$/ && NF >= 5 { printf "  %-20s %6.2f\n", $NF, $4 / n }' "$WORK/strace.txt"
fi

if [[ $TOOL == perf ]]; then
    PERF_SECONDS=${PERF_SECONDS:-10}
    log "perf: $PEER under wrk -c50 for ${PERF_SECONDS}s (proxy on core 0)"
    start_bg proxy taskset -c 0 "${CMD[@]}"
    P=$LAST_PID
    wait_ready proxy "$P" "http://127.0.0.1:$PROXY/"
    taskset -c 1 wrk -t1 -c50 -d2s -H "$EXPLAIN_HEADER" "http://127.0.0.1:$PROXY/" >/dev/null
    t0=$(proc_cpu_ticks "$P")
    perf record -e cpu-clock -g -o "$WORK/perf.data" -p "$P" -- sleep "$PERF_SECONDS" 2>"$WORK/perf-record.log" &
    PERF_PID=$!
    taskset -c 1 wrk -t1 -c50 -d"${PERF_SECONDS}s" --latency -H "$EXPLAIN_HEADER" "http://127.0.0.1:$PROXY/" >"$WORK/wrk.txt"
    t1=$(proc_cpu_ticks "$P")
    wait "$PERF_PID" || true
    parsed=$(python3 "$BENCH_DIR/wrk_report.py" parse "$WORK/wrk.txt")
    IFS=$'\t' read -r rps p99 reqs errs <<<"$parsed"
    echo "perf $PEER: $rps req/s, p99 $p99 ms, $errs errors, CPU $(python3 -c "print(f'{$(ticks_to_us $((t1 - t0))) / $reqs:.1f}')") µs/req (process, while perf sampled)"
    perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n 40 >"$WORK/perf-self.txt" || true
    perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n 10 >"$WORK/perf-dso.txt" || true
    echo "  by binary:"; sed 's/^/    /' "$WORK/perf-dso.txt"
    echo "  top symbols (self): $WORK/perf-self.txt"
fi
