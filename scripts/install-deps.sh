#!/usr/bin/env bash
# Installs what scalelab needs on a Debian machine that has Rust, and only that:
#   (no flag)   what `make up` needs to build and run the lab: cmake (pingora builds a C library with it),
#               a C toolchain, pkg-config, and curl for the README's tour.
#   --observe   also Prometheus, for `scalelab up --observe` (`make observe`).
#   --fleet     also redis-server, for `scalelab up --fleet` (a shared cache tier and task queue).
#   --dns       also dnsmasq, for `scalelab up --dns` (the gateways behind a name the lab serves).
#   --test      everything the test suite needs (`make test`, `.ci/run`): the above, promtool, redis-tools,
#               systemd-analyze (the unit's check), dnsmasq (the DNS discovery tests), chromium (the CORS
#               browser test) and the rustfmt/clippy components.
# Idempotent: it installs only what is missing, so it is cheap to run every time.
set -euo pipefail

observe=false
fleet=false
dns=false
test=false
for arg in "$@"; do
  case "$arg" in
    --observe) observe=true ;;
    --fleet) fleet=true ;;
    --dns) dns=true ;;
    --test) observe=true fleet=true dns=true test=true ;;
    *)
      echo "install-deps: unknown option $arg (use --observe, --fleet, --dns or --test)" >&2
      exit 2
      ;;
  esac
done

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# `up --observe` runs Prometheus; the dashboard test runs every Grafana panel's query against a real Prometheus,
# and the backends' metrics test lints each /metrics exposition with promtool. Debian's prometheus package ships
# both.
if $observe; then
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    need_apt+=(prometheus)
  fi
fi
# `up --fleet` and the scale-out tests start their own redis-server (a shared task queue behind several workers);
# no service is enabled or started here.
if $fleet; then
  command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
fi
# redis-cli joins the test cluster's nodes and pings a TLS-only server (redis-server depends on it
# today; named so a packaging change cannot drop it).
if $test; then
  command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
fi

# The service discovery tests and `scalelab up --dns` resolve upstream names against a real DNS
# server on a free port: dnsmasq-base is the binary alone (no service enabled or started, unlike
# the dnsmasq package).
if $dns; then
  command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need_apt+=(dnsmasq-base)
fi

# The packaging test runs `systemd-analyze verify` on the unit; the systemd package provides it
# even where systemd is not PID 1 (a container).
if $test; then
  command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
fi

# The CORS test loads a page in headless Chromium (Debian's package: /usr/bin/chromium).
if $test; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi

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
if $test && command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    rustup component list --installed 2>/dev/null | grep -q "^${component}" ||
      rustup component add "$component"
  done
fi
