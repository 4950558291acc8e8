#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for SECONDS seconds each (libFuzzer), with an RSS cap, and
# prints one line per target: runs, corpus size, crashes. A crash leaves its input in
# fuzz/artifacts/TARGET/; turn it into a regression test next to the code it broke.
#
# Usage: bench/fuzz.sh [target...]     (default: all four)
# Environment (all optional):
#   SECONDS_PER_TARGET=60
#   RSS_LIMIT_MB=2048
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`, installed here if missing). libFuzzer
# needs nightly flags; on a stable toolchain RUSTC_BOOTSTRAP=1 enables them.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
PER_TARGET=${SECONDS_PER_TARGET:-60}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-2048}

BENCH_NAME=fuzz
# shellcheck source-path=SCRIPTDIR source=lib.sh disable=SC2034  # BENCH_NAME is read by lib.sh
source "$BENCH_DIR/lib.sh"
require_uint PER_TARGET RSS_LIMIT_MB

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1

targets=("$@")
if ((${#targets[@]} == 0)); then
    targets=(config_parse cache_key_template cache_control jwt_header)
fi

new_results fuzz
cd "$ROOT/fuzz"
log "building ${targets[*]}"
for target in "${targets[@]}"; do
    cargo fuzz build "$target" >"$WORK/build-$target.log" 2>&1 || {
        tail -n 20 "$WORK/build-$target.log" >&2
        die "cannot build $target"
    }
done
status=0
{
    echo "# cargo fuzz, ${PER_TARGET}s per target ($STAMP)"
    echo
    echo '| target | runs | exec/s | corpus | result |'
    echo '|---|---:|---:|---:|---|'
} >"$REPORT"
for target in "${targets[@]}"; do
    log "$target: ${PER_TARGET}s"
    mkdir -p "corpus/$target"
    if cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$PER_TARGET" -rss_limit_mb="$RSS_LIMIT_MB" -print_final_stats=1 \
        >"$WORK/$target.log" 2>&1; then
        result="no crash"
    else
        result="**crash** (see fuzz/artifacts/$target)"
        status=1
    fi
    runs=$(awk '/stat::number_of_executed_units/ { print $NF }' "$WORK/$target.log")
    speed=$(awk '/stat::average_exec_per_sec/ { print $NF }' "$WORK/$target.log")
    corpus=$(find "corpus/$target" -type f | wc -l)
    echo "| $target | ${runs:-?} | ${speed:-?} | $corpus | $result |" >>"$REPORT"
done
cat "$REPORT"
log "report: $REPORT (logs in $WORK)"
exit "$status"
