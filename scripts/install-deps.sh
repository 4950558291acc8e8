#!/usr/bin/env bash
# Installs what building and testing scalelab needs on a Debian machine that has Rust:
# cmake (pingora builds a C library with it), a C toolchain, Prometheus and promtool (for the dashboard and metrics tests),
# redis-server (for the scale-out tests), systemd-analyze (the unit's check)
# and the rustfmt/clippy components.
# Idempotent: it installs only what is missing, so it is cheap to run every time.
set -euo pipefail

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# The dashboard test runs every Grafana panel's query against a real Prometheus, and the backends' metrics test lints
# each /metrics exposition with promtool; Debian's prometheus package ships both.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  need_apt+=(prometheus)
fi

# The scale-out tests start their own redis-server (a shared task queue behind several workers); no service is
# enabled or started here.
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# redis-cli joins the test cluster's nodes and pings a TLS-only server (redis-server depends on it
# today; named so a packaging change cannot drop it).
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)

# The packaging test runs `systemd-analyze verify` on the unit; the systemd package provides it
# even where systemd is not PID 1 (a container).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)

if ((${#need_apt[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "install-deps: need root or sudo to install: ${need_apt[*]}" >&2
      exit 1
    fi
  fi
  echo "install-deps: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${need_apt[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null
    $sudo apt-get install -y --no-install-recommends "${need_apt[@]}"
  }
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo not found; install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi
if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^${component}" ||
      rustup component add "$component"
  done
fi
