#!/usr/bin/env bash
# Cache memory bound: pushes many distinct objects (far more bytes than the tiers may hold)
# through scalelab-proxy and checks that its RSS stays within the configured total of the tiers'
# max_bytes + 20% (issue 5). Prints a small report and exits non-zero when the bound is broken.
#
#   TIER_MIB=32          max_bytes of each of the three tiers (total = 3 x TIER_MIB)
#   OBJECT_KIB=64        size of each object
#   PUSH_FACTOR=4        bytes pushed = PUSH_FACTOR x the configured total
#   FETCHES=3            requests per object (3 with promotion after 1 hit: every tier fills)
#   SCALELAB_PROXY_BIN   the binary to use as is (default: cargo build --release, then target/release)
set -euo pipefail
BENCH_NAME=cachememory
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

TIER_MIB=${TIER_MIB:-32}
OBJECT_KIB=${OBJECT_KIB:-64}
PUSH_FACTOR=${PUSH_FACTOR:-4}
FETCHES=${FETCHES:-3}
READY_TIMEOUT=${READY_TIMEOUT:-20}
PORT_BASE=${BENCH_PORT_BASE:-18280}
require_uint TIER_MIB OBJECT_KIB PUSH_FACTOR FETCHES READY_TIMEOUT PORT_BASE

ensure_tools nginx:nginx curl:curl
NGINX=$(find_bin nginx) || die "nginx not found after install"
BIN=$(scalelab_proxy_bin)

new_results cachememory
ORIGIN=$((PORT_BASE + 1)) PROXY=$((PORT_BASE + 2)) ADMIN=$((PORT_BASE + 3))
require_free_ports "$ORIGIN" "$PROXY" "$ADMIN"
install_cleanup

# The origin serves one OBJECT_KIB file under every /obj/N path, cacheable for 10 minutes.
mkdir -p "$WORK/www" "$WORK/origin"
head -c $((OBJECT_KIB * 1024)) /dev/urandom >"$WORK/www/object"
cat >"$WORK/origin.conf" <<CONF
$(nginx_common origin)
http {
    access_log off;
$(nginx_temp_paths origin)
    server {
        listen 127.0.0.1:$ORIGIN;
        location = /health { return 200 "ok"; }
        location /obj/ {
            root $WORK/www;
            try_files /object =404;
            default_type application/octet-stream;
            add_header Cache-Control "public, max-age=600";
        }
    }
}
CONF
cat >"$WORK/scalelab.toml" <<CONF
[proxy]
listen = ["127.0.0.1:$PROXY"]
admin_listen = "127.0.0.1:$ADMIN"
threads = 1
[upstreams.origin]
servers = [ { addr = "127.0.0.1:$ORIGIN" } ]
[upstreams.origin.health_check]
path = "/health"
interval = "2s"
timeout = "1s"
[cache]
max_object_bytes = "1MiB"
[[cache.tiers]]
name = "L1"
max_entries = 100000
max_bytes = "${TIER_MIB}MiB"
ttl = "600s"
[[cache.tiers]]
name = "L2"
max_entries = 100000
max_bytes = "${TIER_MIB}MiB"
ttl = "600s"
[[cache.tiers]]
name = "L3"
max_entries = 100000
max_bytes = "${TIER_MIB}MiB"
ttl = "600s"
[cache.promotion]
hits = 1
[[routes]]
name = "obj"
path = "/obj"
upstream = "origin"
cache = { enabled = true, key = "{path}", default_ttl = "600s" }
CONF

start_bg origin "$NGINX" -p "$WORK/origin" -e "$WORK/origin/error.log" -c "$WORK/origin.conf"
wait_ready origin "$LAST_PID" "http://127.0.0.1:$ORIGIN/health"
start_bg scalelab env RUST_LOG=warn "$BIN" --config "$WORK/scalelab.toml"
PROXY_PID=$LAST_PID
wait_ready scalelab "$PROXY_PID" "http://127.0.0.1:$ADMIN/health"

total_mib=$((3 * TIER_MIB))
objects=$((total_mib * 1024 * PUSH_FACTOR / OBJECT_KIB))
rss_before=$(proc_status_kib "$PROXY_PID" VmRSS)
log "pushing $objects distinct ${OBJECT_KIB} KiB objects ($((objects * OBJECT_KIB / 1024)) MiB) through tiers of 3 x $TIER_MIB MiB"
# Every object is fetched FETCHES times: it enters L3, and each hit moves it up one tier, so with
# the default 3 every tier fills and objects fall back down as newer ones climb.
python3 - "$PROXY" "$objects" "$FETCHES" <<'PY'
import http.client, sys
port, count, fetches = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for i in range(count):
    for _ in range(fetches):
        conn.request("GET", f"/obj/{i}")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"GET /obj/{i}: {response.status}")
PY
rss_after=$(proc_status_kib "$PROXY_PID" VmRSS)
hwm=$(proc_status_kib "$PROXY_PID" VmHWM)
stats=$(curl -s "http://127.0.0.1:$ADMIN/cache/stats")
cached_bytes=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["total_bytes"])' <<<"$stats")
bound_kib=$((total_mib * 1024 * 120 / 100))
{
    echo "# scalelab cache memory bound"
    echo
    echo "| what | value |"
    echo "|---|---:|"
    echo "| tiers (configured total) | $total_mib MiB |"
    echo "| pushed | $objects objects, $((objects * OBJECT_KIB / 1024)) MiB |"
    echo "| bytes held by the tiers (cache/stats) | $((cached_bytes / 1048576)) MiB |"
    echo "| RSS before | $((rss_before / 1024)) MiB |"
    echo "| RSS after | $((rss_after / 1024)) MiB |"
    echo "| peak RSS (VmHWM) | $((hwm / 1024)) MiB |"
    echo "| bound (total + 20%) | $((bound_kib / 1024)) MiB |"
    echo "| RSS growth / bytes held | $(python3 -c "print(f'{($rss_after - $rss_before) * 1024 / max($cached_bytes, 1):.2f}')") |"
} | tee "$REPORT"
if ((hwm > bound_kib)); then
    log "FAIL: peak RSS $((hwm / 1024)) MiB is over $((bound_kib / 1024)) MiB"
    exit 1
fi
log "PASS: peak RSS within the configured total + 20%"
