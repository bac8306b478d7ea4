"""The exporter's own families: build, per-collector health, RPC outcomes, WebSocket and events."""

from __future__ import annotations

import platform
from typing import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter import __version__
from exporter.rpc import RpcStats
from exporter.scheduler import CollectorRunner

PYTHON_VERSION = platform.python_version()


def render_self_metrics(runners: list[CollectorRunner], stats: RpcStats) -> Iterator[Metric]:
    build = GaugeMetricFamily("chia_exporter_build_info", "chia_exporter: version of the exporter and of Python it runs on.",
                              labels=["version", "python_version"])
    build.add_metric([__version__, PYTHON_VERSION], 1)
    yield build

    success = GaugeMetricFamily("chia_exporter_collector_success",
                                "chia_exporter: 1 when the collector's last poll succeeded.", labels=["collector"])
    duration = GaugeMetricFamily("chia_exporter_collector_duration_seconds",
                                 "chia_exporter: how long the collector's last poll took.", labels=["collector"])
    last = GaugeMetricFamily("chia_exporter_collector_last_success_timestamp_seconds",
                             "chia_exporter: Unix time of the collector's last successful poll (0 before the first).",
                             labels=["collector"])
    for r in runners:
        if r.absent:  # a service this host does not run: not a failing collector
            continue
        success.add_metric([r.name], float(r.success))
        if r.duration is not None:
            duration.add_metric([r.name], r.duration)
        last.add_metric([r.name], r.last_success or 0.0)
    yield success
    yield duration
    yield last

    requests = CounterMetricFamily("chia_exporter_rpc_requests",
                                   "chia_exporter: RPC calls the exporter made, by outcome "
                                   "(ok, error, timeout, refused, tls, bad_response).",
                                   labels=["collector", "endpoint", "outcome"])
    absent = {r.name for r in runners if r.absent}
    for (collector, endpoint, outcome), n in sorted(stats.counts.items()):
        if collector in absent:
            continue
        requests.add_metric([collector, endpoint, outcome], n)
    yield requests
