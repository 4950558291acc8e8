#!/usr/bin/env bash
# Soak: the whole lab (`scalelab up --restart`) under mixed traffic for DURATION seconds, with the
# config rewritten every 10 s (a gateway weight toggled, written to a temp file and renamed) and
# one gateway SIGKILLed every 30 s (the lab restarts it). Every 10 s it prints the proxy's RSS and
# open fds; at the end, their slope over the second half and the failed requests (non-2xx and
# socket errors, from wrk).
#
# Usage: bench/soak.sh          (report in bench/results/soak-STAMP.md)
# Environment (all optional):
#   DURATION=600      seconds of traffic
#   CONNECTIONS=8     wrk connections
#   BIN_DIR=          directory with the scalelab binaries (default: target/release after a
#                     `cargo build --release --workspace --bins`; BIN_DIR=target/debug skips it)
#   READY_TIMEOUT=60
# Ports: the lab's defaults (8000, 9901, 5000-5006) must be free.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${DURATION:-600}
CONNECTIONS=${CONNECTIONS:-8}
READY_TIMEOUT=${READY_TIMEOUT:-60}

BENCH_NAME=soak
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"
require_uint DURATION CONNECTIONS READY_TIMEOUT
((DURATION >= 30)) || die "DURATION must be >= 30"
ensure_tools wrk:wrk curl:curl
WRK=$(find_bin wrk) || die "wrk not found after install"
require_free_ports 8000 9901 5000 5001 5002 5003 5005 5006

if [[ -n ${BIN_DIR:-} ]]; then
    BIN_DIR=$(cd "$BIN_DIR" && pwd)
else
    log "building release binaries"
    (cd "$ROOT" && cargo build --quiet --release --workspace --bins)
    BIN_DIR=$ROOT/target/release
fi

new_results soak
install_cleanup
cp "$ROOT/config.toml" "$WORK/config.toml"
sed -i 's|^data_dir = .*|data_dir = "data"|' "$WORK/config.toml"
CONFIG=$WORK/config.toml

start_bg lab "$BIN_DIR/scalelab" up --restart --no-color --config "$CONFIG" --bin-dir "$BIN_DIR"
LAB_PID=$LAST_PID
wait_ready lab "$LAB_PID" http://127.0.0.1:9901/health
deadline=$((SECONDS + READY_TIMEOUT))
until [[ $(http_code http://127.0.0.1:8000/health) == 200 ]]; do
    ((SECONDS < deadline)) || die "the proxy did not answer /health"
    sleep 0.2
done
TOKEN=$("$BIN_DIR/scalelab" token --config "$CONFIG" 2>/dev/null | tail -n1)

child_pid() { # pattern -> pid of the lab's child whose command line matches
    local pid
    for pid in $(tree_pids "$LAB_PID"); do
        [[ $pid == "$LAB_PID" ]] && continue
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$1"; then
            echo "$pid"
            return 0
        fi
    done
    return 1
}

cat >"$WORK/mixed.lua" <<'EOF'
-- Mixed traffic: cached reads, reads past the cache, the worker's stats and health.
local paths = { "/data", "/data?bypass_cache=true", "/data", "/worker/stats", "/health" }
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1])
end
EOF

log "traffic for ${DURATION}s: config rewrite every 10 s, a gateway killed every 30 s"
"$WRK" -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$WORK/mixed.lua" \
    -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8000 >"$WORK/wrk.txt" 2>&1 &
WRK_PID=$!
STARTED_PIDS+=("$WRK_PID")

SAMPLES=$WORK/samples.tsv
printf 't_s\trss_kib\tfds\tevent\n' >"$SAMPLES"
gateways=(5000 5003 5006)
kills=0
rewrites=0
start=$SECONDS
while kill -0 "$WRK_PID" 2>/dev/null; do
    sleep 10
    t=$((SECONDS - start))
    ((t <= DURATION)) || break
    event=""
    # Rewrite: toggle the first gateway's weight between 3 and 4 (temp file + rename).
    if grep -q 'addr = "127.0.0.1:5000", weight = 3' "$CONFIG"; then
        sed 's/addr = "127.0.0.1:5000", weight = 3/addr = "127.0.0.1:5000", weight = 4/' "$CONFIG" >"$CONFIG.tmp"
    else
        sed 's/addr = "127.0.0.1:5000", weight = 4/addr = "127.0.0.1:5000", weight = 3/' "$CONFIG" >"$CONFIG.tmp"
    fi
    mv "$CONFIG.tmp" "$CONFIG"
    rewrites=$((rewrites + 1))
    event="rewrite"
    if ((t % 30 < 10)); then
        port=${gateways[$((kills % 3))]}
        if pid=$(child_pid "scalelab-gateway.*--port $port"); then
            kill -KILL "$pid" 2>/dev/null || true
            kills=$((kills + 1))
            event+=", kill gateway $port"
        fi
    fi
    proxy=$(child_pid scalelab-proxy) || die "the proxy is gone"
    rss=$(proc_status_kib "$proxy" VmRSS)
    fds=$(find "/proc/$proxy/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    printf '%s\t%s\t%s\t%s\n' "$t" "$rss" "$fds" "$event" | tee -a "$SAMPLES" >&2
done
wait "$WRK_PID" || true

# Slope (least squares) of RSS and fds over the second half of the samples.
slope() { # column -> per-minute slope over the second half
    awk -v col="$1" -F'\t' 'NR > 1 { t[n] = $1; v[n] = $col; n++ }
        END { h = int(n / 2); m = n - h; if (m < 2) { print "n/a"; exit }
              for (i = h; i < n; i++) { st += t[i]; sv += v[i] }
              mt = st / m; mv = sv / m
              for (i = h; i < n; i++) { num += (t[i] - mt) * (v[i] - mv); den += (t[i] - mt) ^ 2 }
              printf "%.2f", (den > 0 ? num / den * 60 : 0) }' "$SAMPLES"
}
requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.txt")
non2xx=$(awk '/Non-2xx or 3xx responses/ { print $NF }' "$WORK/wrk.txt")
socket=$(awk -F'[ ,]+' '/Socket errors/ { print $4 + $6 + $8 + $10 }' "$WORK/wrk.txt")
rss_slope=$(slope 2)
fd_slope=$(slope 3)
first_fds=$(awk -F'\t' 'NR == 2 { print $3 }' "$SAMPLES")
last_fds=$(awk -F'\t' 'END { print $3 }' "$SAMPLES")
first_rss=$(awk -F'\t' 'NR == 2 { print $2 }' "$SAMPLES")
last_rss=$(awk -F'\t' 'END { print $2 }' "$SAMPLES")
{
    echo "# Soak ($STAMP): ${DURATION}s, $CONNECTIONS connections, binaries from $BIN_DIR"
    echo
    echo "- requests: ${requests:-?}; failed: $((${non2xx:-0} + ${socket:-0})) (non-2xx ${non2xx:-0}, socket errors ${socket:-0})"
    echo "- chaos: $rewrites config rewrites, $kills gateway kills (restarted by the lab)"
    echo "- proxy RSS: $first_rss KiB at 10 s, $last_rss KiB at the end; slope over the second half: $rss_slope KiB/min"
    echo "- proxy fds: $first_fds at 10 s, $last_fds at the end; slope over the second half: $fd_slope per min"
    echo
    echo '| t (s) | RSS (KiB) | fds | event |'
    echo '|---:|---:|---:|---|'
    awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$SAMPLES"
    echo
    echo '```'
    cat "$WORK/wrk.txt"
    echo '```'
} | tee "$REPORT"
log "report: $REPORT"
