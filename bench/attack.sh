#!/usr/bin/env bash
# The HTTP/1.1 vector table of the fault suite (proxy/tests/vectors/http1.toml) run against
# scalelab-proxy, HAProxy and nginx side by side, all forwarding to one recording upstream
# (`cargo run --example attack`). Shows where scalelab differs from the oracles; not a CI test:
# proxy/tests/it/smuggling.rs asserts scalelab's own verdicts.
#
# Usage: bench/attack.sh            (report in bench/results/attack-STAMP.md)
# Environment (all optional):
#   BENCH_PORT_BASE=18180   ports used: BASE+1 (recorder), +2 scalelab, +3 its admin, +4 haproxy, +5 nginx
#   SCALELAB_PROXY_BIN=     use this binary instead of a debug build of scalelab-proxy
#   READY_TIMEOUT=60
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
PORT_BASE=${BENCH_PORT_BASE:-18180}
READY_TIMEOUT=${READY_TIMEOUT:-60}

BENCH_NAME=attack
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"
require_uint PORT_BASE READY_TIMEOUT

# Tools from apt if missing (idempotent; lib.sh runs apt-get update only when needed).
ensure_tools nginx:nginx haproxy:haproxy curl:curl
NGINX=$(find_bin nginx) || die "nginx not found after install"
HAPROXY=$(find_bin haproxy) || die "haproxy not found after install"

PORT_UP=$((PORT_BASE + 1))
PORT_SCALELAB=$((PORT_BASE + 2))
PORT_ADMIN=$((PORT_BASE + 3))
PORT_HAPROXY=$((PORT_BASE + 4))
PORT_NGINX=$((PORT_BASE + 5))
require_free_ports "$PORT_UP" "$PORT_SCALELAB" "$PORT_ADMIN" "$PORT_HAPROXY" "$PORT_NGINX"

new_results attack
install_cleanup

log "building scalelab-proxy and the attack example"
(cd "$ROOT" && cargo build --quiet -p scalelab-proxy --example attack)
SCALELAB=${SCALELAB_PROXY_BIN:-$ROOT/target/debug/scalelab-proxy}
ATTACK=$ROOT/target/debug/examples/attack

cat >"$WORK/scalelab.toml" <<EOF
[proxy]
listen = ["127.0.0.1:$PORT_SCALELAB"]
admin_listen = "127.0.0.1:$PORT_ADMIN"
threads = 1
[upstreams.rec]
strategy = "round_robin"
servers = [{ addr = "127.0.0.1:$PORT_UP", weight = 1 }]
connect_timeout = "500ms"
read_timeout = "5s"
retries = 0
[[routes]]
name = "all"
path = "/"
upstream = "rec"
EOF

cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 1000
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
    timeout http-request 5s
frontend edge
    bind 127.0.0.1:$PORT_HAPROXY
    default_backend rec
backend rec
    http-reuse always
    server rec 127.0.0.1:$PORT_UP
EOF

{
    nginx_common nginx
    cat <<EOF
http {
$(nginx_temp_paths nginx)
    access_log off;
    upstream rec { server 127.0.0.1:$PORT_UP; keepalive 8; }
    server {
        listen 127.0.0.1:$PORT_NGINX;
        location / {
            proxy_pass http://rec;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
        }
    }
}
EOF
} >"$WORK/nginx.conf"

"$HAPROXY" -c -q -f "$WORK/haproxy.cfg" || die "haproxy config invalid"
"$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" || die "nginx config invalid"

# The recorder (inside the example) must listen before the proxies' first health or request;
# none of them checks health here, so they can start first.
start_bg scalelab env RUST_LOG=warn "$SCALELAB" --config "$WORK/scalelab.toml"
start_bg haproxy "$HAPROXY" -db -f "$WORK/haproxy.cfg"
start_bg nginx "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf"
for port in "$PORT_SCALELAB" "$PORT_HAPROXY" "$PORT_NGINX"; do
    deadline=$((SECONDS + READY_TIMEOUT))
    until port_in_use "$port"; do
        ((SECONDS < deadline)) || die "nothing listens on $port after ${READY_TIMEOUT}s"
        sleep 0.1
    done
done

log "running $(grep -c '^\[\[vector\]\]' "$ROOT/proxy/tests/vectors/http1.toml") vectors"
{
    echo "# HTTP/1.1 attack vectors: scalelab-proxy vs HAProxy vs nginx ($STAMP)"
    echo
    echo "Each cell: the statuses the client read, then how many complete requests the recording"
    echo "upstream parsed (\`up N\`). \`suite expects\` is what proxy/tests/it/smuggling.rs asserts for scalelab."
    echo "Versions: $("$HAPROXY" -v 2>/dev/null | head -n1 | cut -d' ' -f1-3), $("$NGINX" -v 2>&1 | sed 's/^nginx version: //')."
    echo
    "$ATTACK" --upstream "127.0.0.1:$PORT_UP" \
        "scalelab=127.0.0.1:$PORT_SCALELAB" "haproxy=127.0.0.1:$PORT_HAPROXY" "nginx=127.0.0.1:$PORT_NGINX"
} | tee "$REPORT"
log "report: $REPORT"
