#!/usr/bin/env bash
# Install the exporter and run it:   bash scripts/start.sh [options]
#
# - CHIA_ROOT set: the exporter on that Chia installation (exit 2 when it has no config/config.yaml);
# - CHIA_ROOT unset, ~/.chia/mainnet there: the exporter on it, http://localhost:9914/metrics;
# - neither: `chia-prometheus-exporter demo`, a simulated farm with the exporter (and Prometheus
#   with the shipped rules, when installed) on it. The first demo run downloads chia-blockchain
#   (about 65 MB) into a private virtualenv and plots: about 2.5 minutes on 2 cores. Later runs
#   start in about 20 s.
# The virtualenv .venv is made on the first run (with python3-venv from apt-get when Debian or
# Ubuntu lack it) and installed again only when pyproject.toml changes. Options pass through to
# the exporter (or the demo). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -n "${CHIA_ROOT:-}" ]; then
  if [ ! -f "$CHIA_ROOT/config/config.yaml" ]; then
    echo "start.sh: CHIA_ROOT=$CHIA_ROOT has no config/config.yaml: point CHIA_ROOT at a Chia installation" \
         "(such as ~/.chia/mainnet), or unset it to run the demo farm" >&2
    exit 2
  fi
  ROOT=$CHIA_ROOT
elif [ -e "$HOME/.chia/mainnet" ]; then
  ROOT=$HOME/.chia/mainnet
  if [ ! -f "$ROOT/config/config.yaml" ]; then
    echo "start.sh: $ROOT has no config/config.yaml (run chia init there), or set CHIA_ROOT to your Chia" \
         "installation; for the demo farm run .venv/bin/chia-prometheus-exporter demo" >&2
    exit 2
  fi
else
  ROOT=
fi

. scripts/venv.sh
ensure_venv auth

if [ -n "$ROOT" ]; then
  echo "Chia found at $ROOT: running the exporter on it (http://localhost:9914/metrics)" >&2
  exec .venv/bin/chia-prometheus-exporter --chia-root "$ROOT" "$@"
fi
echo "No Chia installation (CHIA_ROOT unset, no ~/.chia/mainnet): starting the demo farm" >&2
exec .venv/bin/chia-prometheus-exporter demo "$@"
