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

PYTHON=${PYTHON:-python3}
EXTRAS=auth
STAMP=.venv/.installed-$EXTRAS
WANT="$(cksum <pyproject.toml) $EXTRAS"

ensure_python() {
  if ! command -v "$PYTHON" >/dev/null || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
    echo "start.sh: needs Python 3.10 or newer as $PYTHON (set PYTHON=/path/to/python3)" >&2
    exit 1
  fi
  # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) apart, in python3-venv.
  if "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then return; fi
  if ! command -v apt-get >/dev/null; then
    echo "start.sh: $PYTHON cannot make virtualenvs (no ensurepip): install its venv package first" >&2
    exit 1
  fi
  local sudo="" version
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "start.sh: python3-venv is missing: apt-get install python3-venv as root" >&2; exit 1; }
    sudo=sudo
  fi
  version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  echo "start.sh: $PYTHON cannot make virtualenvs: installing python$version-venv (apt-get)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "python$version-venv" >/dev/null ||
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
}

if [ -x .venv/bin/chia-prometheus-exporter ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] &&
   .venv/bin/python -c '' 2>/dev/null; then
  :  # installed from this pyproject.toml already (editable: code changes need no reinstall)
else
  if [ ! -x .venv/bin/pip ]; then
    ensure_python
    "$PYTHON" -m venv .venv
  fi
  echo "start.sh: installing the exporter into .venv (pip install -e '.[$EXTRAS]')" >&2
  .venv/bin/pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
  echo "$WANT" >"$STAMP"
fi

if [ -n "$ROOT" ]; then
  echo "Chia found at $ROOT: running the exporter on it (http://localhost:9914/metrics)" >&2
  exec .venv/bin/chia-prometheus-exporter --chia-root "$ROOT" "$@"
fi
echo "No Chia installation (CHIA_ROOT unset, no ~/.chia/mainnet): starting the demo farm" >&2
exec .venv/bin/chia-prometheus-exporter demo "$@"
