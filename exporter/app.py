"""The running exporter: the HTTP session, the RPC clients, the poll loops, the registry."""

from __future__ import annotations

import logging
from typing import Iterable, Iterator

import aiohttp
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from exporter.collectors import build_collectors
from exporter.collectors.base import Collector
from exporter.config import Config
from exporter.rpc import RpcClient, RpcStats, TlsFiles
from exporter.scheduler import Clock, CollectorRunner, Scheduler
from exporter.self_metrics import render_self_metrics

log = logging.getLogger(__name__)


class Exporter:
    """Everything that runs; ``start``/``stop`` bracket its life inside the aiohttp app."""

    def __init__(self, config: Config, clock: Clock | None = None,
                 collectors: list[Collector] | None = None) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.stats = RpcStats()
        self.collectors = collectors if collectors is not None else build_collectors(config)
        self.session: aiohttp.ClientSession | None = None
        self.runners: list[CollectorRunner] = []
        self.scheduler = Scheduler([])
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RegistryBridge(self))

    async def start(self) -> None:
        # One pool for every service; a small limit, since each collector has one poll in flight.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=60))
        self.runners = [CollectorRunner(c, self.rpc_for(c), self.clock) for c in self.collectors]
        self.scheduler = Scheduler(self.runners)
        self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        if self.session is not None:
            await self.session.close()

    def rpc_for(self, collector: Collector) -> RpcClient:
        c = collector.config
        assert self.session is not None
        return RpcClient(
            session=self.session, service=collector.service, collector=collector.name,
            host=c.host, port=c.port, tls=TlsFiles(self.config.ca_cert, c.cert, c.key),
            timeout=c.timeout, max_response_bytes=c.max_response_bytes, stats=self.stats,
        )

    def collect(self) -> Iterator[Metric]:
        families: list[Metric] = list(render_self_metrics(self.runners, self.stats))
        for runner in self.runners:
            if runner.fresh():
                families.extend(runner.collector.render(runner.snapshot))
        yield from merge_families(families)

    def health(self) -> dict:
        return {
            "healthy": self.scheduler.running,
            "collectors": {
                r.name: {"state": r.state, "last_success": r.last_success, "last_error": r.last_error}
                for r in self.runners
            },
        }


def merge_families(families: Iterable[Metric]) -> Iterator[Metric]:
    """One family per name: several collectors add to chia_version_info and chia_network_info."""
    by_name: dict[str, Metric] = {}
    for fam in families:
        seen = by_name.get(fam.name)
        if seen is None:
            by_name[fam.name] = fam
        else:
            seen.samples.extend(fam.samples)
    return iter(by_name.values())


class _RegistryBridge:
    """prometheus-client calls collect() synchronously on each scrape: it only reads snapshots."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def collect(self) -> Iterator[Metric]:
        return self.exporter.collect()
