# chia-prometheus-exporter: mount CHIA_ROOT read-only at /chia.
#   docker build -t chia-prometheus-exporter .
#   docker run --network host -v ~/.chia/mainnet:/chia:ro chia-prometheus-exporter
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
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9914/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["chia-prometheus-exporter"]
