#!/usr/bin/env bash
# Checks the package `make deb` built: lintian must report no error (warnings are printed),
# then the packaging tests install it into a scratch root with `dpkg -x`, verify its unit, run
# the installed binary's --check on the installed config and start it on free ports.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v lintian >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends lintian >/dev/null
fi

deb=$(ls -t target/debian/scalelab-proxy_*.deb | head -n 1)
echo "check-deb: lintian $deb"
lintian --fail-on error "$deb"
cargo test -p scalelab-proxy --test it --locked -- packaging
