#!/usr/bin/env bash
# Install everything the tests need, then run them all (live tests against a real Chia stack
# included):   bash scripts/test.sh [pytest arguments]
#
# - Prometheus and Alertmanager from Debian (promtool, amtool), when missing and apt-get exists;
# - a virtualenv in .venv with the exporter and its test extras;
# - the real Chia 2.7.5 stack is started by the live tests themselves through
#   ../shared/chia-sim/start.sh (once per run; the first run installs chia-blockchain into
#   .chia-venv, about a minute).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then
  if command -v apt-get >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    echo "installing prometheus and prometheus-alertmanager (Debian packages)" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      prometheus prometheus-alertmanager >/dev/null
  else
    echo "promtool/amtool missing and no apt-get: install Prometheus and Alertmanager first" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
export CHIA_VENV=${CHIA_VENV:-$PWD/.chia-venv}
exec .venv/bin/python -m pytest "$@"
