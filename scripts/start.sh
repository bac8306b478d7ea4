#!/usr/bin/env bash
# Install the exporter and run it:   bash scripts/start.sh [options]
#
# - with a Chia installation ($CHIA_ROOT/config/config.yaml, default ~/.chia/mainnet): the
#   exporter on it, serving http://localhost:9914/metrics;
# - without one: `chia-prometheus-exporter demo`, a simulated farm with the exporter (and
#   Prometheus with the shipped rules, when installed) on it. The first demo run installs
#   chia-blockchain into a private virtualenv and plots (about two minutes), later runs take
#   seconds.
# Options pass through to the exporter (or the demo). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[auth]'

ROOT=${CHIA_ROOT:-$HOME/.chia/mainnet}
if [ -f "$ROOT/config/config.yaml" ]; then
  echo "Chia found at $ROOT: running the exporter on it (http://localhost:9914/metrics)" >&2
  exec .venv/bin/chia-prometheus-exporter --chia-root "$ROOT" "$@"
fi
echo "No Chia installation at $ROOT: starting the demo farm" >&2
exec .venv/bin/chia-prometheus-exporter demo "$@"
