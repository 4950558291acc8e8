#!/usr/bin/env bash
# Route lookup cost with 10 to 10,000 routes (half on virtual hosts): `RouteTable::resolve` in a
# loop, release build, pinned to one core. Prints a Markdown table for bench/RESULTS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --example route_lookup -p scalelab-proxy >&2
echo "route lookup, $(git rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%MZ)"
taskset -c 1 ./target/release/examples/route_lookup
