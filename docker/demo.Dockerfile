# The demo farm in a container: a simulated Chia farm and the exporter on it. Prometheus runs in
# its own container (docker-compose.demo.yml mounts the rules there), so the demo runs with
# --no-prometheus. SIGTERM (docker stop) stops the farm cleanly in about 15 s.
#   docker compose -f docker-compose.demo.yml up
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN python -m venv /opt/chia \
    && /opt/chia/bin/pip install --no-cache-dir chia-blockchain==2.7.5

WORKDIR /src
COPY pyproject.toml README.md ./
COPY exporter ./exporter
# The package installed is this directory; its dependency ranges are in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --create-home --shell /usr/sbin/nologin demo \
    && mkdir /data && chown demo /data

USER 10001
EXPOSE 9914
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9914/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["chia-prometheus-exporter", "demo", "--chia-venv", "/opt/chia", "--dir", "/data", "--no-prometheus", \
            "--web.listen-address", "0.0.0.0:9914"]
