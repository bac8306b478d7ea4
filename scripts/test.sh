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

PYTHON=${PYTHON:-python3}
SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
apt_install() {
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "test.sh: $* missing: apt-get install it as root first" >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v promtool >/dev/null || ! command -v amtool >/dev/null; then
  if command -v apt-get >/dev/null; then
    echo "installing prometheus and prometheus-alertmanager (Debian packages)" >&2
    apt_install prometheus prometheus-alertmanager
  else
    echo "promtool/amtool missing and no apt-get: install Prometheus and Alertmanager first" >&2
    exit 1
  fi
fi

EXTRAS=test
STAMP=.venv/.installed-$EXTRAS
WANT="$(cksum <pyproject.toml) $EXTRAS"
if [ -x .venv/bin/pytest ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$WANT" ] && .venv/bin/python -c '' 2>/dev/null; then
  :  # installed from this pyproject.toml already (editable: code changes need no reinstall)
else
  if [ ! -x .venv/bin/pip ]; then
    if ! command -v "$PYTHON" >/dev/null || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
      echo "test.sh: needs Python 3.10 or newer as $PYTHON (set PYTHON=/path/to/python3)" >&2
      exit 1
    fi
    # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) apart, in python3-venv.
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
      command -v apt-get >/dev/null || { echo "test.sh: $PYTHON cannot make virtualenvs: install its venv package" >&2; exit 1; }
      version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
      echo "installing python$version-venv (Debian package): $PYTHON cannot make virtualenvs" >&2
      apt_install "python$version-venv" || apt_install python3-venv
    fi
    "$PYTHON" -m venv .venv
  fi
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  echo "$WANT" >"$STAMP"
fi
export CHIA_VENV=${CHIA_VENV:-$PWD/.chia-venv}
exec .venv/bin/python -m pytest "$@"
