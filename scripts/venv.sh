# Sourced by start.sh and test.sh (from the repository's root): the virtualenv in .venv, with
# the exporter installed from this checkout, made once and installed again only when
# pyproject.toml changes.
#
#   ensure_venv EXTRAS    # e.g. auth, test

PYTHON=${PYTHON:-python3}

# apt-get install PACKAGE..., as root or through sudo.
apt_install() {
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "$(basename "$0"): $* missing: apt-get install it as root first" >&2; exit 1; }
    sudo=sudo
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_venv() {
  local extras=$1 stamp=.venv/.installed-$1 want version
  want="$(cksum <pyproject.toml) $extras"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] && .venv/bin/python -c '' 2>/dev/null; then
    return  # installed from this pyproject.toml already (editable: code changes need no reinstall)
  fi
  if [ ! -x .venv/bin/pip ]; then
    if ! command -v "$PYTHON" >/dev/null || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then
      echo "$(basename "$0"): needs Python 3.10 or newer as $PYTHON (set PYTHON=/path/to/python3)" >&2
      exit 1
    fi
    # Debian and Ubuntu ship venv's pip bootstrap (ensurepip) apart, in python3-venv.
    if ! "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null; then
      command -v apt-get >/dev/null || { echo "$(basename "$0"): $PYTHON cannot make virtualenvs: install its venv package" >&2; exit 1; }
      version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
      echo "$(basename "$0"): $PYTHON cannot make virtualenvs: installing python$version-venv (apt-get)" >&2
      apt_install "python$version-venv" || apt_install python3-venv
    fi
    "$PYTHON" -m venv .venv
  fi
  echo "$(basename "$0"): installing the exporter into .venv (pip install -e '.[$extras]')" >&2
  .venv/bin/pip install -q --disable-pip-version-check -e ".[$extras]"
  echo "$want" >"$stamp"
}
