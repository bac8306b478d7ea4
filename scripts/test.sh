#!/usr/bin/env bash
# Install everything the tests need, then run them all (live tests against a real Chia stack
# included):   bash scripts/test.sh [pytest arguments]
#
# - Prometheus and Alertmanager from Debian (promtool, amtool), when missing and apt-get exists;
#   python3-venv too, when Python cannot make virtualenvs;
# - a virtualenv in .venv with the exporter and its test extras (installed on a fresh clone, and
#   again only when pyproject.toml changes);
# - the real Chia 2.7.5 stack is started by the live tests themselves through
#   ../shared/chia-sim/start.sh (once per run; the first run installs chia-blockchain into
#   .chia-venv, about 80 s).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/venv.sh

if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then
  if command -v apt-get >/dev/null; then
    echo "installing prometheus and prometheus-alertmanager (Debian packages)" >&2
    apt_install prometheus prometheus-alertmanager
  else
    echo "promtool/amtool missing and no apt-get: install Prometheus and Alertmanager first" >&2
    exit 1
  fi
fi

ensure_venv test
export CHIA_VENV=${CHIA_VENV:-$PWD/.chia-venv}
exec .venv/bin/python -m pytest "$@"
