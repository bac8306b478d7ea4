# chia-prometheus-exporter: mount CHIA_ROOT read-only at /chia.
#   docker build -t chia-prometheus-exporter .
#   docker run --network host --user "$(id -u):$(id -g)" -v ~/.chia/mainnet:/chia:ro chia-prometheus-exporter
# Chia writes its private keys (config/ssl/*/private_*.key) with mode 0600 for the user that runs
# it: run the container as that user (--user, compose `user:`), or the exporter cannot read them
# and exits with code 2. Without --user it runs as the unprivileged uid 10001.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    CHIA_ROOT=/chia

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# The package installed is this directory; its dependency ranges are in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[auth]" \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin exporter \
    && rm -rf /src

WORKDIR /
USER 10001
EXPOSE 9914
# The health check asks /healthz on the port of CHIA_EXPORTER_WEB_LISTEN_ADDRESS (default 9914;
# a --web.listen-address flag is not seen here: use the variable to move the port). It tries
# http, then https without verifying the certificate (loopback only), so TLS on /metrics
# (--web.config.file) works; with basic auth an answer of 401 counts as up (the server runs), and
# with client certificates required it cannot pass: replace it (compose `healthcheck:`) or turn it
# off (`healthcheck: {disable: true}`).
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, ssl, sys, urllib.error, urllib.request\nhost, _, port = (os.environ.get('CHIA_EXPORTER_WEB_LISTEN_ADDRESS') or ':9914').rpartition(':')\nhost = host.strip('[]')\nhost = '127.0.0.1' if host in ('', '0.0.0.0') else '[::1]' if host == '::' else f'[{host}]' if ':' in host else host\nfor scheme in ('http', 'https'):\n    try:\n        ok = urllib.request.urlopen(f'{scheme}://{host}:{port}/healthz', timeout=4, context=ssl._create_unverified_context()).status == 200\n    except urllib.error.HTTPError as e:\n        ok = e.code == 401\n    except Exception:\n        continue\n    sys.exit(0 if ok else 1)\nsys.exit(1)"]
ENTRYPOINT ["chia-prometheus-exporter"]
