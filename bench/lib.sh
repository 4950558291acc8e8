# shellcheck shell=bash
# Shared helpers for the bench/*.sh benchmarks. Source it after setting BENCH_NAME (the log prefix);
# the benchmark sets WORK (its output directory) and READY_TIMEOUT before using start_bg/wait_ready.
#
# Provides: log die require_uint; SUDO find_bin apt_install ensure_tools; port_in_use
# require_free_ports; release_bin scalelab_proxy_bin; new_results (STAMP WORK REPORT);
# STARTED_PIDS start_bg http_code wait_ready install_cleanup (stops every started process tree on
# exit); nginx_common nginx_temp_paths; CLK_TCK proc_cpu_ticks proc_status_kib tree_pids
# tree_cpu_ticks tree_status_kib core_busy_ticks all_busy_ticks own_ticks ticks_to_us wait_for_quiet.

BENCH_NAME=${BENCH_NAME:-bench}

log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }
die() { log "error: $*"; exit 1; }

require_uint() { # VAR... : each must hold a non-negative integer
    local v
    for v in "$@"; do
        [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
    done
}

# ---------------------------------------------------------------------------------------------
# Tools from apt (idempotent; apt-get update only when needed)
# ---------------------------------------------------------------------------------------------
SUDO=()
if ((EUID != 0)) && command -v sudo >/dev/null; then SUDO=(sudo); fi

find_bin() { # name -> path (also looks in sbin dirs, which are not on a normal user's PATH)
    local p
    for p in "$(command -v "$1" 2>/dev/null || true)" "/usr/sbin/$1" "/usr/local/sbin/$1"; do
        if [[ -n $p && -x $p ]]; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

apt_install() { # pkg...
    local need_update=0 pkg policy rc=0 made_policy=0
    if ((EUID != 0)) && ((${#SUDO[@]} == 0)); then
        die "not root and no sudo: install $* yourself"
    fi
    for pkg in "$@"; do
        policy=$(apt-cache policy "$pkg" 2>/dev/null || true)
        [[ $policy =~ Candidate:\ [0-9] ]] || need_update=1
    done
    if ((need_update)); then
        log "apt-get update (no install candidate for some of: $*)"
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q >&2
    fi
    # Keep the Debian packages from starting their system services (nginx on :80, haproxy, varnish).
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee /usr/sbin/policy-rc.d >/dev/null
        "${SUDO[@]}" chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    log "apt-get install -y $*"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
        install -y -q --no-install-recommends "$@" >&2 || rc=$?
    if ((rc != 0 && need_update == 0)); then
        log "install failed; retrying after apt-get update"
        rc=0
        "${SUDO[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q >&2 &&
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 \
                install -y -q --no-install-recommends "$@" >&2 || rc=$?
    fi
    if ((made_policy)); then "${SUDO[@]}" rm -f /usr/sbin/policy-rc.d; fi
    ((rc == 0)) || die "apt-get install $* failed"
}

ensure_tools() { # binary:package... ; installs the packages of the binaries not found
    local spec missing=()
    for spec in "$@"; do
        find_bin "${spec%%:*}" >/dev/null || missing+=("${spec#*:}")
    done
    if ((${#missing[@]})); then apt_install "${missing[@]}"; fi
    for spec in "$@"; do
        find_bin "${spec%%:*}" >/dev/null || die "${spec%%:*} not found after installing ${spec#*:}"
    done
}

port_in_use() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

require_free_ports() { # port... ; dies on the first one something already listens on
    local p
    for p in "$@"; do
        if port_in_use "$p"; then die "port $p is in use; set BENCH_PORT_BASE to a free range"; fi
    done
}

release_bin() { # binary crate-dir -> path; `cargo build --release` first (a no-op when fresh), so a
    # benchmark never measures a binary older than the source
    local name=$1 dir=$2 target_dir=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
    log "cargo build --release ($name)"
    (cd "$dir" && CARGO_TARGET_DIR=$target_dir cargo build --release --bin "$name" >&2) ||
        die "release build of $name failed"
    [[ -x $target_dir/release/$name ]] || die "$name not found at $target_dir/release/$name"
    echo "$target_dir/release/$name"
}

scalelab_proxy_bin() { # -> $SCALELAB_PROXY_BIN when set (used as is), else a fresh release build
    if [[ -n ${SCALELAB_PROXY_BIN:-} ]]; then
        [[ -x $SCALELAB_PROXY_BIN ]] || die "SCALELAB_PROXY_BIN=$SCALELAB_PROXY_BIN is not executable"
        echo "$SCALELAB_PROXY_BIN"
    else
        release_bin scalelab-proxy "$ROOT"
    fi
}

new_results() { # name ; sets STAMP, WORK (this run's own directory for configs, logs and raw output,
    # even if another run starts in the same second) and REPORT (the markdown report next to it)
    local name=$1
    STAMP=$(date +%Y%m%d-%H%M%S)
    mkdir -p "$BENCH_DIR/results"
    mkdir "$BENCH_DIR/results/$name-$STAMP" 2>/dev/null || {
        STAMP+="-$$" && mkdir "$BENCH_DIR/results/$name-$STAMP"
    }
    WORK=$BENCH_DIR/results/$name-$STAMP
    # shellcheck disable=SC2034  # read by the benchmark that called this
    REPORT=$WORK.md
}

# ---------------------------------------------------------------------------------------------
# Processes: start in the background, wait until ready, stop everything on exit
# ---------------------------------------------------------------------------------------------
STARTED_PIDS=()
CLEANUP_HOOKS=() # commands run at the very end of cleanup (e.g. removing a temp dir)

tree_pids() { # pid... -> those pids and all their descendants, one per line
    local -A kids=()
    local stat pid ppid rest queue=("$@") f
    for f in /proc/[0-9]*/stat; do
        { read -r stat <"$f"; } 2>/dev/null || continue
        pid=${stat%% *}
        rest=${stat##*) }
        read -r _ ppid _ <<<"$rest"
        kids[$ppid]+="$pid "
    done
    while ((${#queue[@]})); do
        pid=${queue[0]}
        queue=("${queue[@]:1}")
        [[ -n $pid && -d /proc/$pid ]] || continue
        echo "$pid"
        # shellcheck disable=SC2206
        queue+=(${kids[$pid]:-})
    done
}

cleanup() {
    local rc=$? pid i alive all=() hook
    trap - EXIT INT TERM
    if ((${#STARTED_PIDS[@]})); then
        mapfile -t all < <(tree_pids "${STARTED_PIDS[@]}")
    fi
    for pid in "${STARTED_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pid in "${all[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${all[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    for hook in "${CLEANUP_HOOKS[@]}"; do eval "$hook" || true; done
    if ((rc != 0)); then log "failed (exit $rc); configs and logs are in ${WORK:-?}"; fi
    exit "$rc"
}

install_cleanup() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

LAST_PID=""
start_bg() { # name cmd... ; runs in the background, output to $WORK/name.log, pid in LAST_PID
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    STARTED_PIDS+=("$LAST_PID")
}

http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" 2>/dev/null || true; }

wait_ready() { # name pid url
    local name=$1 pid=$2 url=$3 deadline=$((SECONDS + READY_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$WORK/$name.log" >&2 || true
            die "$name exited during startup (log: $WORK/$name.log)"
        fi
        [[ $(http_code "$url") == 200 ]] && return 0
        sleep 0.1
    done
    tail -n 20 "$WORK/$name.log" >&2 || true
    die "$name did not answer 200 on $url within ${READY_TIMEOUT}s"
}

# ---------------------------------------------------------------------------------------------
# nginx config fragments
# ---------------------------------------------------------------------------------------------
nginx_common() { # name
    local d=$WORK/$1
    mkdir -p "$d/tmp"
    cat <<EOF
worker_processes 1;
master_process off;   # one process serves requests: its pid is what we measure
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
EOF
}

nginx_temp_paths() { # name
    local d=$WORK/$1/tmp
    cat <<EOF
    client_body_temp_path $d/body;
    proxy_temp_path $d/proxy;
    fastcgi_temp_path $d/fastcgi;
    uwsgi_temp_path $d/uwsgi;
    scgi_temp_path $d/scgi;
EOF
}

# ---------------------------------------------------------------------------------------------
# Measurement from /proc
# ---------------------------------------------------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)

proc_cpu_ticks() { # pid -> utime+stime of all its threads, in clock ticks
    local stat f
    stat=$(<"/proc/$1/stat")
    read -r -a f <<<"${stat##*) }" # fields from 3 (state) on, so utime (14) is f[11]
    echo $((f[11] + f[12]))
}

proc_status_kib() { # pid field -> value in kB from /proc/pid/status
    local key val _
    while read -r key val _; do
        if [[ $key == "$2:" ]]; then
            echo "$val"
            return 0
        fi
    done <"/proc/$1/status"
    echo "-"
}

tree_cpu_ticks() { # pid -> utime+stime of the process and all its descendants (live ones)
    local p t=0 v
    for p in $(tree_pids "$1"); do
        v=$(proc_cpu_ticks "$p" 2>/dev/null) || continue
        t=$((t + v))
    done
    echo "$t"
}

tree_status_kib() { # pid field -> sum of that /proc/PID/status field over the process tree
    local p t=0 v
    for p in $(tree_pids "$1"); do
        v=$(proc_status_kib "$p" "$2" 2>/dev/null) || continue
        [[ $v =~ ^[0-9]+$ ]] && t=$((t + v))
    done
    echo "$t"
}

core_busy_ticks() { # core -> non-idle ticks of that core since boot
    local name user nice system irq softirq steal _
    # columns: user nice system idle iowait irq softirq steal ...; idle and iowait are not busy
    while read -r name user nice system _ _ irq softirq steal _; do
        if [[ $name == "cpu$1" ]]; then
            echo $((user + nice + system + irq + softirq + steal))
            return 0
        fi
    done </proc/stat
    echo 0
}

all_busy_ticks() { # non-idle ticks of all cores since boot
    local name user nice system irq softirq steal _
    read -r name user nice system _ _ irq softirq steal _ </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

own_ticks() { # pid... -> CPU ticks of those process trees plus this shell's own and waited children's (wrk)
    local pid f t=0
    for pid in "$@"; do
        if [[ -n $pid && -r /proc/$pid/stat ]]; then t=$((t + $(tree_cpu_ticks "$pid"))); fi
    done
    f=$(<"/proc/$$/stat")
    read -r -a f <<<"${f##*) }" # utime stime cutime cstime = f[11..14]
    echo $((t + f[11] + f[12] + f[13] + f[14]))
}

ticks_to_us() { echo $(($1 * 1000000 / CLK_TCK)); }

QUIET_TIMEOUTS=0
wait_for_quiet() { # wait up to IDLE_WAIT s until the whole machine is < IDLE_MAX_PCT % busy over 1 s
    ((IDLE_WAIT > 0)) || return 0
    local deadline=$((SECONDS + IDLE_WAIT)) b0 pct ncpu
    ncpu=$(nproc --all)
    while :; do
        b0=$(all_busy_ticks)
        sleep 1
        pct=$((($(all_busy_ticks) - b0) * 100 / (CLK_TCK * ncpu)))
        ((pct < IDLE_MAX_PCT)) && return 0
        if ((SECONDS >= deadline)); then
            log "machine still ${pct}% busy after waiting ${IDLE_WAIT}s; measuring anyway"
            QUIET_TIMEOUTS=$((QUIET_TIMEOUTS + 1))
            return 0
        fi
    done
}
