#!/usr/bin/env bash
# How the cost grows with the size of the work (issue 27 section 4). Curves, chosen with CURVES:
#   idle   idle keep-alive client connections (100, 1,000, 9,000 by default) held open against
#          scalelab, nginx and HAProxy, each one worker/thread on the same core behind the same
#          upstream: resident memory per connection while held, a keep-alive request's latency
#          meanwhile, memory after they all closed, and three bursts of the largest count to see
#          whether memory is given back and whether it grows burst after burst
#          (bench/hold_connections.py does the holding and the sampling).
# The route-count curve is bench/routes.sh (route lookup alone); the cache-object, config-size
# and servers-per-group curves are not written yet (see the issue's closing note).
#
# Usage: bench/scale.sh
# Environment (all optional):
#   CURVES=idle           which curves to run
#   COUNTS=100,1000,9000  idle connection counts (2 x the largest + 1,024 descriptors are needed:
#                         HAProxy reserves two per connection); BURSTS=3 repeats of the largest
#   PEERS="scalelab nginx haproxy"
#   PROXY_CORE=0 LOAD_CORE=1 the proxies on PROXY_CORE; the upstream and the client on LOAD_CORE
#   BENCH_PORT_BASE=18280 ports used: BASE+1..BASE+6
#   READY_TIMEOUT=60
#   SCALELAB_PROXY_BIN= use this binary instead of a release build
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

CURVES=${CURVES:-idle}
COUNTS=${COUNTS:-100,1000,9000}
BURSTS=${BURSTS:-3}
PEERS_WANTED=${PEERS:-scalelab nginx haproxy}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PORT_BASE=${BENCH_PORT_BASE:-18280}
READY_TIMEOUT=${READY_TIMEOUT:-60}

BENCH_NAME=scale
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"

require_uint BURSTS PROXY_CORE LOAD_CORE PORT_BASE READY_TIMEOUT
[[ $COUNTS =~ ^[0-9]+(,[0-9]+)*$ ]] || die "COUNTS must be a comma-separated list of numbers"
[[ $CURVES == idle ]] || die "CURVES=$CURVES: only 'idle' is written so far"

ensure_tools nginx:nginx haproxy:haproxy curl:curl taskset:util-linux
NGINX=$(find_bin nginx) || die "nginx not found"
HAPROXY=$(find_bin haproxy) || die "haproxy not found"
command -v python3 >/dev/null || die "python3 is required"
SCALELAB_BIN=""
[[ " $PEERS_WANTED " == *" scalelab "* ]] && SCALELAB_BIN=$(scalelab_proxy_bin)

new_results scale
PORT_UP=$((PORT_BASE + 1))
declare -A PORT=([nginx]=$((PORT_BASE + 2)) [haproxy]=$((PORT_BASE + 3)) [scalelab]=$((PORT_BASE + 4)))
PORT_ADMIN=$((PORT_BASE + 5))
require_free_ports "$PORT_UP" "${PORT[nginx]}" "${PORT[haproxy]}" "${PORT[scalelab]}" "$PORT_ADMIN"
install_cleanup

# The holder opens up to the largest count of sockets, each proxy as many, and HAProxy reserves
# two descriptors per connection (client and server side) for its maxconn.
LARGEST=$(tr ',' '\n' <<<"$COUNTS" | sort -n | tail -1)
NOFILE=$((2 * LARGEST + 1024))
if (($(ulimit -Hn) < NOFILE)) && ((EUID == 0)); then
    ulimit -Hn "$NOFILE" 2>/dev/null || true
fi
if (($(ulimit -Hn) < NOFILE)); then
    die "the hard open-file limit ($(ulimit -Hn)) is below $NOFILE: raise it (ulimit -Hn, or run as root)"
fi
ulimit -n "$NOFILE"

BODY=$(printf '%0100d' 0 | tr 0 a) # 100-byte body
{
    nginx_common upstream
    cat <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
$(nginx_temp_paths upstream)
    server {
        listen 127.0.0.1:$PORT_UP;
        location / { return 200 "$BODY"; }
    }
}
EOF
} >"$WORK/upstream.conf"

{
    nginx_common nginx | sed "s/worker_connections 4096/worker_connections $NOFILE/"
    cat <<EOF
worker_rlimit_nofile $NOFILE;
http {
    access_log $WORK/nginx-access.log combined buffer=64k;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
$(nginx_temp_paths nginx)
    upstream bench {
        server 127.0.0.1:$PORT_UP;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]};
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
} >"$WORK/nginx.conf"

cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $((LARGEST + 256))
    log stdout format raw local0

defaults
    mode http
    log global
    option httplog
    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 300s
    timeout server 30s
    timeout http-keep-alive 300s

frontend fe
    bind 127.0.0.1:${PORT[haproxy]}
    default_backend be

backend be
    server up 127.0.0.1:$PORT_UP
EOF

# As shipped: the daemon's defaults (access log on, request metrics on, debug headers off);
# one worker thread like the others, and an idle timeout long enough to hold the connections.
cat >"$WORK/scalelab.toml" <<EOF
[proxy]
listen = ["127.0.0.1:${PORT[scalelab]}"]
admin_listen = "127.0.0.1:$PORT_ADMIN"
threads = 1
access_log = { path = "$WORK/scalelab-access.log" }

[upstreams.bench]
servers = [ { addr = "127.0.0.1:$PORT_UP" } ]

[[routes]]
name = "all"
path = "/"
upstream = "bench"
EOF

log "starting the upstream on core $LOAD_CORE"
start_bg upstream taskset -c "$LOAD_CORE" "$NGINX" -p "$WORK/upstream" -e "$WORK/upstream/error.log" \
    -c "$WORK/upstream.conf"
wait_ready upstream "$LAST_PID" "http://127.0.0.1:$PORT_UP/"

declare -A PID=()
for peer in $PEERS_WANTED; do
    case $peer in
    nginx) start_bg nginx taskset -c "$PROXY_CORE" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" \
        -c "$WORK/nginx.conf" ;;
    haproxy) start_bg haproxy taskset -c "$PROXY_CORE" "$HAPROXY" -db -f "$WORK/haproxy.cfg" ;;
    scalelab) start_bg scalelab taskset -c "$PROXY_CORE" "$SCALELAB_BIN" --config "$WORK/scalelab.toml" ;;
    *) die "unknown peer $peer" ;;
    esac
    PID[$peer]=$LAST_PID
    wait_ready "$peer" "$LAST_PID" "http://127.0.0.1:${PORT[$peer]}/"
done

{
    echo "### $(date -u +%Y-%m-%d), commit $(git -C "$ROOT" rev-parse --short HEAD): \`bench/scale.sh\` idle connections"
    echo
    echo "One worker/thread per proxy on core $PROXY_CORE, the client and the upstream on core $LOAD_CORE;"
    echo "each connection made one request, then was held idle. RSS is the process tree's VmRSS."
    echo
    echo "| proxy | connections | KiB per idle connection | RSS before / held / after (MiB) | keep-alive p50 / p99 while held (µs) | failed |"
    echo "|---|---:|---:|---|---|---:|"
} >"$REPORT"
BURSTS_TABLE=""
for peer in $PEERS_WANTED; do
    log "holding $COUNTS idle connections against $peer"
    taskset -c "$LOAD_CORE" python3 "$BENCH_DIR/hold_connections.py" --port "${PORT[$peer]}" \
        --pid "${PID[$peer]}" --counts "$COUNTS" --bursts "$BURSTS" >"$WORK/$peer.jsonl" ||
        die "holding connections against $peer failed"
    python3 - "$peer" "$WORK/$peer.jsonl" >>"$REPORT" <<'EOF'
import json, sys
peer, path = sys.argv[1], sys.argv[2]
mib = lambda kib: f"{kib / 1024:.1f}"
for line in open(path):
    row = json.loads(line)
    if row["kind"] == "count":
        print(f"| {peer} | {row['count']:,} | {row['kib_per_connection']:.2f} | "
              f"{mib(row['rss_before_kib'])} / {mib(row['rss_held_kib'])} / {mib(row['rss_after_kib'])} | "
              f"{row['p50_us']:.0f} / {row['p99_us']:.0f} | {row['failed']} |")
EOF
    BURSTS_TABLE+=$(python3 - "$peer" "$WORK/$peer.jsonl" <<'EOF'
import json, sys
peer, path = sys.argv[1], sys.argv[2]
mib = lambda kib: f"{kib / 1024:.1f}"
rows = [json.loads(line) for line in open(path)]
bursts = [r for r in rows if r["kind"] == "burst"]
if bursts:
    held = " / ".join(mib(b["rss_held_kib"]) for b in bursts)
    after = " / ".join(mib(b["rss_after_kib"]) for b in bursts)
    print(f"| {peer} | {bursts[0]['count']:,} | {mib(bursts[0]['rss_start_kib'])} | {held} | {after} |")
EOF
    )$'\n'
done
{
    echo
    echo "Bursts of the largest count, one after another (memory given back, and no growth):"
    echo
    echo "| proxy | connections per burst | RSS at start (MiB) | RSS held, burst 1 / 2 / 3 (MiB) | RSS after each burst closed (MiB) |"
    echo "|---|---:|---:|---|---|"
    printf '%s' "$BURSTS_TABLE"
} >>"$REPORT"
log "report: $REPORT"
cat "$REPORT"
