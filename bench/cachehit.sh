#!/usr/bin/env bash
# Cache-hit benchmark: a 1 KiB object served from cache by Varnish (-s malloc), nginx proxy_cache
# and scalelab-proxy, each on one pinned core, measured side by side and interleaved.
# See bench/README.md.
#
# Usage: bench/cachehit.sh
# Environment (all optional):
#   ROUNDS=3              interleaved rounds (varnish, nginx, scalelab) x ROUNDS
#   DURATION=10           seconds per wrk run
#   CONNECTIONS=32        wrk connections (wrk always runs with one thread)
#   WARMUP=2              seconds of unrecorded wrk load per peer before round 1 (0 = none)
#   SKIP_SCALELAB=1       leave scalelab-proxy out
#   SCALELAB_PROXY_BIN=   scalelab-proxy binary to use as is (default: `cargo build --release`,
#                         a no-op when up to date, then target/release/scalelab-proxy)
#   SCALELAB_RUST_LOG=warn  RUST_LOG for scalelab-proxy (warn = no access log; the peers log nothing)
#   PROXY_CORE=0 LOAD_CORE=1   proxies on PROXY_CORE; wrk and the origin on LOAD_CORE
#   VARNISH_THREAD_POOL_MIN=10   Varnish -p thread_pool_min (one pool: -p thread_pools=1)
#   BENCH_NICE=0          e.g. -10 (root) to run proxies, origin and wrk ahead of unrelated processes
#   IDLE_WAIT=0           before each run wait up to this many seconds for the machine to be
#                         quiet (< IDLE_MAX_PCT % busy over 1 s); 0 = don't wait
#   IDLE_MAX_PCT=10
#   BENCH_PORT_BASE=18180 ports used: BASE+1..BASE+5
#   READY_TIMEOUT=60      seconds to wait for a peer to answer 200
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2}
SKIP_SCALELAB=${SKIP_SCALELAB:-0}
SCALELAB_RUST_LOG=${SCALELAB_RUST_LOG:-warn}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
VARNISH_THREAD_POOL_MIN=${VARNISH_THREAD_POOL_MIN:-10}
PORT_BASE=${BENCH_PORT_BASE:-18180}
READY_TIMEOUT=${READY_TIMEOUT:-60}
BENCH_NICE=${BENCH_NICE:-0}
IDLE_WAIT=${IDLE_WAIT:-0}
IDLE_MAX_PCT=${IDLE_MAX_PCT:-10}
OBJ_BYTES=1024
# Targets from issue 5 (scalelab against Varnish).
TARGET_MIN_RPS_RATIO=0.85
TARGET_MAX_P99_RATIO=1.0
TARGET_MAX_RSS_RATIO=1.0

BENCH_NAME=cachehit
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"

require_uint ROUNDS DURATION CONNECTIONS WARMUP PROXY_CORE LOAD_CORE VARNISH_THREAD_POOL_MIN PORT_BASE \
    READY_TIMEOUT IDLE_WAIT IDLE_MAX_PCT
[[ $BENCH_NICE =~ ^-?[0-9]+$ ]] || die "BENCH_NICE must be an integer (got '$BENCH_NICE')"
((ROUNDS >= 1)) || die "ROUNDS must be >= 1"
((DURATION >= 1)) || die "DURATION must be >= 1"
((CONNECTIONS >= 1)) || die "CONNECTIONS must be >= 1"
[[ $PROXY_CORE != "$LOAD_CORE" ]] || die "PROXY_CORE and LOAD_CORE must differ"
ncpu=$(nproc --all)
((PROXY_CORE < ncpu && LOAD_CORE < ncpu)) || die "need cores $PROXY_CORE and $LOAD_CORE, machine has $ncpu"

# ---------------------------------------------------------------------------------------------
# Tools: nginx, varnish, wrk from apt if missing (idempotent; apt-get update only when needed).
# ---------------------------------------------------------------------------------------------
ensure_tools nginx:nginx varnishd:varnish wrk:wrk curl:curl taskset:util-linux
NGINX=$(find_bin nginx)
VARNISHD=$(find_bin varnishd)
WRK=$(find_bin wrk)
command -v python3 >/dev/null || die "python3 is required"

# ---------------------------------------------------------------------------------------------
# scalelab-proxy binary
# ---------------------------------------------------------------------------------------------
PEERS=(varnish nginx)
SCALELAB_BIN=""
if [[ $SKIP_SCALELAB == 1 ]]; then
    log "SKIP_SCALELAB=1: scalelab-proxy is left out"
else
    SCALELAB_BIN=$(scalelab_proxy_bin)
    PEERS+=(scalelab)
fi

# ---------------------------------------------------------------------------------------------
# Layout, ports, cleanup
# ---------------------------------------------------------------------------------------------
new_results cachehit

PORT_ORIGIN=$((PORT_BASE + 1))
PORT_VARNISH=$((PORT_BASE + 2))
PORT_NGINX=$((PORT_BASE + 3))
PORT_SCALELAB=$((PORT_BASE + 4))
PORT_ADMIN=$((PORT_BASE + 5))

require_free_ports "$PORT_ORIGIN" "$PORT_VARNISH" "$PORT_NGINX" "$PORT_SCALELAB" "$PORT_ADMIN"

install_cleanup
# varnishd's working directory (-n): short path, outside the repository; removed on exit.
VARNISH_DIR=$(mktemp -d /tmp/scalelab-bench-varnish.XXXXXX)
CLEANUP_HOOKS+=("rm -rf '$VARNISH_DIR'")

NICE=()
if ((BENCH_NICE != 0)); then NICE=(nice -n "$BENCH_NICE"); fi

# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------
BODY=$(printf "%0${OBJ_BYTES}d" 0 | tr 0 a) # 1 KiB body
ORIGIN_LOG=$WORK/origin/obj-access.log     # one line per /obj request the origin serves (= cache miss)

{
    nginx_common origin
    cat <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
$(nginx_temp_paths origin)
    default_type text/plain;
    server {
        listen 127.0.0.1:$PORT_ORIGIN;
        location = /health { return 200 "ok\n"; }
        location / {
            access_log $ORIGIN_LOG;
            add_header Cache-Control "public, max-age=600";
            return 200 "$BODY";
        }
    }
}
EOF
} >"$WORK/origin.conf"

{
    nginx_common nginx
    cat <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
$(nginx_temp_paths nginx)
    proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=bench:10m max_size=256m inactive=60m
                     use_temp_path=off;
    upstream origin {
        server 127.0.0.1:$PORT_ORIGIN;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$PORT_NGINX;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_cache bench;
            proxy_cache_key \$uri;
            proxy_cache_valid 200 10m;
            add_header X-Cache-Status \$upstream_cache_status;
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

[upstreams.origin]
servers = [ { addr = "127.0.0.1:$PORT_ORIGIN" } ]

[upstreams.origin.health_check]
path = "/health"
interval = "2s"
timeout = "1s"
healthy_threshold = 1

[cache]
max_object_bytes = "1MiB"

[[cache.tiers]]
name = "L1"
max_entries = 1000
max_bytes = "16MiB"
ttl = "600s"

[[cache.tiers]]
name = "L2"
max_entries = 1000
max_bytes = "16MiB"
ttl = "600s"

[cache.promotion]
hits = 2

[[routes]]
name = "obj"
path = "/"
upstream = "origin"
cache = { enabled = true, default_ttl = "600s" }
EOF

"$NGINX" -t -q -p "$WORK/origin" -e "$WORK/origin/error.log" -c "$WORK/origin.conf" ||
    die "nginx origin config invalid"
"$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" ||
    die "nginx proxy_cache config invalid"

# Varnish: builtin VCL with -b (GET without cookies/auth is looked up; TTL from max-age=600).
# -j none: no privilege separation (runs as the invoking user, no vcache user needed); -F: the
# manager stays in the foreground and forks the cache child ("cache-main"), which inherits the
# CPU affinity set by taskset. One thread pool, few idle threads.
# shellcheck disable=SC2054  # the commas belong to the arguments
VARNISH_CMD=("$VARNISHD" -F -j none -a "127.0.0.1:$PORT_VARNISH" -b "127.0.0.1:$PORT_ORIGIN"
    -s malloc,256m -n "$VARNISH_DIR" -T none
    -p thread_pools=1 -p thread_pool_min="$VARNISH_THREAD_POOL_MIN")
printf '%q ' "${VARNISH_CMD[@]}" >"$WORK/varnish.cmd"
echo >>"$WORK/varnish.cmd"

# ---------------------------------------------------------------------------------------------
# Start everything
# ---------------------------------------------------------------------------------------------
declare -A PID PORT
PORT[varnish]=$PORT_VARNISH
PORT[nginx]=$PORT_NGINX
PORT[scalelab]=$PORT_SCALELAB
OBJ_PATH=/obj

log "starting the origin on core $LOAD_CORE (127.0.0.1:$PORT_ORIGIN)"
start_bg origin "${NICE[@]}" taskset -c "$LOAD_CORE" "$NGINX" -p "$WORK/origin" -e "$WORK/origin/error.log" \
    -c "$WORK/origin.conf"
ORIGIN_PID=$LAST_PID
wait_ready origin "$ORIGIN_PID" "http://127.0.0.1:$PORT_ORIGIN/health"
body_len=$(curl -s --max-time 2 "http://127.0.0.1:$PORT_ORIGIN$OBJ_PATH" | wc -c)
((body_len == OBJ_BYTES)) || die "origin body is $body_len bytes, expected $OBJ_BYTES"

log "starting the caches on core $PROXY_CORE"
start_bg varnish "${NICE[@]}" taskset -c "$PROXY_CORE" "${VARNISH_CMD[@]}"
PID[varnish]=$LAST_PID
start_bg nginx "${NICE[@]}" taskset -c "$PROXY_CORE" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" \
    -c "$WORK/nginx.conf"
PID[nginx]=$LAST_PID
if [[ -n $SCALELAB_BIN ]]; then
    start_bg scalelab "${NICE[@]}" env RUST_LOG="$SCALELAB_RUST_LOG" taskset -c "$PROXY_CORE" "$SCALELAB_BIN" \
        --config "$WORK/scalelab.toml"
    PID[scalelab]=$LAST_PID
fi
for peer in "${PEERS[@]}"; do
    wait_ready "$peer" "${PID[$peer]}" "http://127.0.0.1:${PORT[$peer]}$OBJ_PATH"
done

NOTES=()
note() { NOTES+=("$*"); log "$*"; }

# Pinning: taskset set the affinity before exec and children/threads inherit it; re-apply it to
# every thread of every process in each peer's tree (varnishd's cache child included) and check.
pin_tree() { # peer
    local p
    for p in $(tree_pids "${PID[$1]}"); do
        taskset -a -p -c "$PROXY_CORE" "$p" >/dev/null 2>&1 || true
    done
}
check_pinning() { # peer -> "N process(es), M thread(s), all on core C" or dies
    local p t procs=0 threads=0 allowed
    for p in $(tree_pids "${PID[$1]}"); do
        procs=$((procs + 1))
        for t in /proc/"$p"/task/*; do
            allowed=$(grep -m1 '^Cpus_allowed_list:' "$t/status" 2>/dev/null | cut -f2) || continue
            [[ -z $allowed ]] && continue
            threads=$((threads + 1))
            [[ $allowed == "$PROXY_CORE" ]] || die "$1: thread $t is allowed on cores '$allowed', not $PROXY_CORE"
        done
    done
    echo "$procs process(es), $threads thread(s), all on core $PROXY_CORE"
}

# ---------------------------------------------------------------------------------------------
# Warm the caches and confirm hits
# ---------------------------------------------------------------------------------------------
headers_of() { # peer -> response headers of GET /obj (CR stripped); body length check on the side
    local peer=$1 out
    out=$(curl -s -D - -o "$WORK/body-$peer.bin" --max-time 2 "http://127.0.0.1:${PORT[$peer]}$OBJ_PATH" | tr -d '\r')
    local len
    len=$(wc -c <"$WORK/body-$peer.bin")
    ((len == OBJ_BYTES)) || die "$peer answered a $len-byte body, expected $OBJ_BYTES"
    printf '%s\n' "$out"
}

header_value() { # name <<< headers
    grep -i -m1 "^$1:" | cut -d: -f2- | sed 's/^ *//' || true
}

confirm_hit() { # peer -> dies unless the response is a cache hit
    local peer=$1 h v _
    for _ in 1 2 3 4; do headers_of "$peer" >/dev/null; done # warm: miss, then hits (scalelab: L2 -> L1)
    h=$(headers_of "$peer")
    printf '%s\n' "$h" >"$WORK/$peer-hit-headers.txt"
    [[ $(head -n1 <<<"$h") =~ ^HTTP/[0-9.]+\ 200 ]] || die "$peer: GET $OBJ_PATH is not 200: $(head -n1 <<<"$h")"
    case $peer in
    varnish)
        # A hit carries two transaction ids in X-Varnish (this request, the one that fetched) and Age.
        v=$(header_value x-varnish <<<"$h")
        [[ $v =~ ^[0-9]+\ [0-9]+$ ]] || die "varnish: not a cache hit (X-Varnish: '$v'; headers in $WORK/$peer-hit-headers.txt)"
        HIT_EVIDENCE[$peer]="X-Varnish: $v, Age: $(header_value age <<<"$h")"
        ;;
    nginx)
        v=$(header_value x-cache-status <<<"$h")
        [[ $v == HIT ]] || die "nginx: not a cache hit (X-Cache-Status: '$v'; headers in $WORK/$peer-hit-headers.txt)"
        HIT_EVIDENCE[$peer]="X-Cache-Status: $v"
        ;;
    scalelab)
        v=$(header_value x-cache <<<"$h")
        [[ ${v^^} == HIT ]] || die "scalelab: not a cache hit (x-cache: '$v'; headers in $WORK/$peer-hit-headers.txt)"
        HIT_EVIDENCE[$peer]="x-cache: $v, x-cache-tier: $(header_value x-cache-tier <<<"$h")"
        ;;
    esac
}

origin_reqs() { # -> /obj requests the origin has served so far
    if [[ -f $ORIGIN_LOG ]]; then wc -l <"$ORIGIN_LOG"; else echo 0; fi
}

declare -A HIT_EVIDENCE PINNING
for peer in "${PEERS[@]}"; do
    confirm_hit "$peer"
    pin_tree "$peer"
    PINNING[$peer]=$(check_pinning "$peer")
    log "$peer: hit confirmed (${HIT_EVIDENCE[$peer]}); ${PINNING[$peer]}"
done
if [[ -n $SCALELAB_BIN ]]; then
    [[ $(http_code "http://127.0.0.1:$PORT_ADMIN/health") == 200 ]] ||
        note "warning: scalelab admin GET /health on :$PORT_ADMIN did not answer 200"
fi
log "origin served $(origin_reqs) /obj request(s) before measuring (expected: 1 length check + 1 miss per cache)"

# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------
run_wrk() { # peer seconds outfile
    "${NICE[@]}" taskset -c "$LOAD_CORE" timeout $(($2 + 30)) "$WRK" -t1 -c"$CONNECTIONS" -d"$2s" --latency \
        "http://127.0.0.1:${PORT[$1]}$OBJ_PATH" >"$3" 2>&1 ||
        die "wrk against $1 failed (see $3)"
}

TSV=$WORK/results.tsv
printf 'round\tpeer\trps\tp99_ms\trequests\terrors\trss_kib\thwm_kib\tcpu_us\tcore_busy_us\tother_cpu_pct\torigin_reqs\tanon_kib\n' >"$TSV"

measure() { # round peer
    local round=$1 peer=$2 pid="${PID[$2]}" out="$WORK/wrk-r$1-$2.txt"
    local cpu0 busy0 cpu busy rss hwm anon parsed all0 own0 t0 t1 other orig0 orig
    kill -0 "$pid" 2>/dev/null || die "$peer (pid $pid) is no longer running"
    wait_for_quiet
    cpu0=$(tree_cpu_ticks "$pid")
    busy0=$(core_busy_ticks "$PROXY_CORE")
    orig0=$(origin_reqs)
    all0=$(all_busy_ticks)
    own0=$(own_ticks "$ORIGIN_PID" "${PID[@]}")
    t0=${EPOCHREALTIME//[.,]/}
    run_wrk "$peer" "$DURATION" "$out"
    t1=${EPOCHREALTIME//[.,]/}
    # CPU used by processes this script did not start, in % of all cores over the run.
    other=$(((($(all_busy_ticks) - all0) - ($(own_ticks "$ORIGIN_PID" "${PID[@]}") - own0)) * 1000000 / CLK_TCK))
    other=$(python3 -c "print(f'{max(0.0, $other * 100 / (($t1 - $t0) * $ncpu)):.1f}')")
    kill -0 "$pid" 2>/dev/null || die "$peer (pid $pid) died during the run"
    cpu=$(ticks_to_us $(($(tree_cpu_ticks "$pid") - cpu0)))
    busy=$(ticks_to_us $(($(core_busy_ticks "$PROXY_CORE") - busy0)))
    rss=$(tree_status_kib "$pid" VmRSS)
    hwm=$(tree_status_kib "$pid" VmHWM)
    anon=$(tree_status_kib "$pid" RssAnon)
    orig=$(($(origin_reqs) - orig0))
    parsed=$(python3 "$BENCH_DIR/wrk_report.py" parse "$out") || die "could not parse $out"
    local rps p99 reqs errs
    IFS=$'\t' read -r rps p99 reqs errs <<<"$parsed"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$round" "$peer" "$rps" "$p99" "$reqs" "$errs" "$rss" "$hwm" "$cpu" "$busy" "$other" "$orig" "$anon" >>"$TSV"
    log "$(printf 'round %s %-8s %10s req/s  p99 %7s ms  errors %s  rss %s KiB  cpu %s us  origin %s  other %s%%' \
        "$round" "$peer" "$rps" "$p99" "$errs" "$rss" "$cpu" "$orig" "$other")"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if ((WARMUP > 0)); then
    log "warm-up: ${WARMUP}s per peer"
    for peer in "${PEERS[@]}"; do run_wrk "$peer" "$WARMUP" "$WORK/wrk-warmup-$peer.txt"; done
fi
log "measuring: $ROUNDS round(s) x ${PEERS[*]}, ${DURATION}s each, -c$CONNECTIONS"
for ((round = 1; round <= ROUNDS; round++)); do
    for peer in "${PEERS[@]}"; do measure "$round" "$peer"; done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# Misses during the measured runs mean the figures are not (only) cache hits.
while IFS=$'\t' read -r round peer _ _ _ _ _ _ _ _ _ orig _; do
    [[ $round == round ]] && continue
    if ((orig > 0)); then note "warning: round $round $peer: the origin served $orig request(s) (cache misses)"; fi
done <"$TSV"
# Varnish's RSS is the sum over its processes; show the split of the last sample.
varnish_split=""
for p in $(tree_pids "${PID[varnish]}"); do
    varnish_split+="$(tr -d '\0' <"/proc/$p/comm" 2>/dev/null || echo "?") $(proc_status_kib "$p" VmRSS 2>/dev/null || echo "?") KiB"
    varnish_split+=" (anon $(proc_status_kib "$p" RssAnon 2>/dev/null || echo "?"), file $(proc_status_kib "$p" RssFile 2>/dev/null || echo "?"), shmem $(proc_status_kib "$p" RssShmem 2>/dev/null || echo "?")), "
done

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
cpu_model=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
git_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git_dirty=$(git -C "$ROOT" status --porcelain -- proxy 2>/dev/null | head -n1 || true)
[[ -n $git_dirty ]] && git_rev+=" (proxy/ has uncommitted changes)"
scalelab_version="-"
if [[ -n $SCALELAB_BIN ]]; then
    scalelab_version=$("$SCALELAB_BIN" --version 2>/dev/null | head -n1 || true)
    [[ -n $scalelab_version ]] || scalelab_version="(no --version output)"
    scalelab_version+=" ($SCALELAB_BIN, built $(date -r "$SCALELAB_BIN" -Is))"
fi
varnish_version=$("$VARNISHD" -V 2>&1 | head -n1 | sed 's/^varnishd (\(.*\))$/\1/' || true)
{
    echo "- date: $(date -Is), commit $git_rev"
    echo "- machine: $ncpu cores ($cpu_model); loadavg before $LOAD_BEFORE, after $LOAD_AFTER"
    echo "- caches pinned to core $PROXY_CORE (one worker each); wrk and the origin on core $LOAD_CORE$( ((BENCH_NICE != 0)) && echo "; all at nice $BENCH_NICE")"
    for peer in "${PEERS[@]}"; do echo "  - $peer: ${PINNING[$peer]}; hit confirmed before measuring (${HIT_EVIDENCE[$peer]})"; done
    echo "- wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency http://127.0.0.1:PORT$OBJ_PATH; $ROUNDS interleaved round(s), ${WARMUP}s warm-up per peer"
    echo "- origin: nginx \`return 200\` with a $OBJ_BYTES-byte body and \`Cache-Control: public, max-age=600\`"
    echo "- varnish: \`varnishd -F -j none -s malloc,256m -p thread_pools=1 -p thread_pool_min=$VARNISH_THREAD_POOL_MIN\`, builtin VCL (-b); RSS and CPU summed over its processes (last sample: ${varnish_split%, })"
    echo "- nginx: 1 worker (master_process off), \`proxy_cache\` keyed on \$uri, \`proxy_cache_valid 200 10m\`"
    echo "- scalelab: \`threads = 1\`, L1+L2 tiers (600 s TTL, promotion after 2 hits), RUST_LOG=$SCALELAB_RUST_LOG"
    echo "- versions: $varnish_version, $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $("$WRK" -v 2>&1 | head -n1 | cut -d' ' -f1-2), scalelab-proxy: $scalelab_version"
    echo "- access logs: off in Varnish (no varnishncsa) and nginx; scalelab RUST_LOG=$SCALELAB_RUST_LOG"
    [[ -z $SCALELAB_BIN ]] && echo "- scalelab-proxy skipped (SKIP_SCALELAB=1)"
    ((IDLE_WAIT > 0)) && echo "- waited up to ${IDLE_WAIT}s before each run for < ${IDLE_MAX_PCT}% machine load; gave up $QUIET_TIMEOUTS time(s)"
    for n in "${NOTES[@]}"; do echo "- $n"; done
    echo "- raw output: bench/results/cachehit-$STAMP/"
} >"$WORK/meta.txt"

# shellcheck disable=SC2054
report_args=(--title "# scalelab cache-hit benchmark (1 KiB object)" --baseline varnish --order varnish,nginx,scalelab)
if [[ -n $SCALELAB_BIN ]]; then
    report_args+=(--target-peer scalelab --min-rps-ratio "$TARGET_MIN_RPS_RATIO"
        --max-p99-ratio "$TARGET_MAX_P99_RATIO" --max-rss-ratio "$TARGET_MAX_RSS_RATIO")
fi
python3 "$BENCH_DIR/wrk_report.py" report "$TSV" "$WORK/meta.txt" "${report_args[@]}" >"$REPORT"
cat "$REPORT"
log "report written to $REPORT"
