"""The running exporter: the HTTP session, the RPC clients, the poll loops, the registry."""

from __future__ import annotations

import logging
from typing import Iterable, Iterator

import aiohttp
from prometheus_client import ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from exporter.collectors import build
from exporter.collectors.base import Collector, EventState
from exporter.config import Config
from exporter.daemon_ws import DESTINATIONS, DaemonRpc, EventDispatcher, EventStream, StreamRpc, render_stream
from exporter.rpc import RpcClient, RpcStats, TlsFiles
from exporter.scheduler import Clock, CollectorRunner, Scheduler
from exporter.self_metrics import render_self_metrics

log = logging.getLogger(__name__)

# Events the daemon sends only to wallet_ui that the exporter wants.
WALLET_UI_ONLY_COMMANDS = frozenset({"failed_partial"})
# The collector polling the service that sends events as ORIGIN (the daemon's service names).
COLLECTOR_OF_ORIGIN = {origin: name for name, origin in DESTINATIONS.items()}


class Exporter:
    """Everything that runs; ``start``/``stop`` bracket its life inside the aiohttp app."""

    def __init__(self, config: Config, clock: Clock | None = None,
                 collectors: list[Collector] | None = None, process_metrics: bool = True) -> None:
        self.config = config
        self.clock = clock or Clock()
        self.stats = RpcStats()
        built, states = build(config, self)
        self.collectors = collectors if collectors is not None else built
        self.session: aiohttp.ClientSession | None = None
        self.runners: list[CollectorRunner] = []
        self.scheduler = Scheduler([])
        self.dispatcher = EventDispatcher(states, self.clock.time)
        self.events: EventStream | None = None
        self.partials: EventStream | None = None  # the wallet_ui socket, for failed_partial only
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_RegistryBridge(self))
        if process_metrics:  # process_cpu_seconds_total, process_resident_memory_bytes, open fds, …
            ProcessCollector(registry=self.registry)

    async def start(self, background: bool = True) -> None:
        """Open the pool and build the runners; ``background=False`` (tests) starts no loops."""
        # One pool for every service; a small limit, since each collector has one poll in flight.
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=60))
        e = self.config.events
        if e.enabled:
            tls = TlsFiles(self.config.ca_cert, e.cert, e.key)
            self.events = EventStream(self.session, e.host, e.port, tls, self.dispatcher, e.watchdog,
                                      e.max_message_bytes)
            if e.failed_partials != "off":
                gate = self.wants_wallet_ui if e.failed_partials == "auto" else None
                self.partials = EventStream(self.session, e.host, e.port, tls, self.dispatcher, e.watchdog,
                                            e.max_message_bytes, service="wallet_ui",
                                            only_commands=WALLET_UI_ONLY_COMMANDS, gate=gate)
        self.runners = [CollectorRunner(c, self.rpc_for(c), self.clock) for c in self.collectors]
        self.scheduler = Scheduler(self.runners)
        if background:
            self.scheduler.start()
            for stream in (self.events, self.partials):
                if stream is not None:
                    stream.start()

    async def stop(self) -> None:
        for stream in (self.events, self.partials):
            if stream is not None:
                await stream.stop()
        await self.scheduler.stop()
        if self.session is not None:
            await self.session.close()
            self.session = None

    def refresh(self, collector: str) -> None:
        """Poll a collector soon (events such as a wallet's coin_added ask for this)."""
        runner = self.scheduler.runner(collector)
        if runner is not None:
            runner.request_refresh()

    def wants_wallet_ui(self) -> bool:
        """Whether a collector's last snapshot says events only sent to wallet_ui can come
        (the farmer's failed_partial needs a plot NFT on a pool)."""
        return any(r.snapshot is not None and r.collector.wants_wallet_ui_events(r.snapshot) for r in self.runners)

    def runner(self, collector: str) -> CollectorRunner | None:
        return self.scheduler.runner(collector)

    def rpc_for(self, collector: Collector):
        c = collector.config
        assert self.session is not None
        if self.config.transport == "daemon":
            assert self.events is not None  # config.load makes daemon transport require events
            return StreamRpc(self.events, collector.service, collector.name, c.timeout, self.stats)
        tls = TlsFiles(self.config.ca_cert, c.cert, c.key)
        if collector.service == "daemon":
            return DaemonRpc(self.session, c.host, c.port, tls, c.timeout, c.max_response_bytes, self.stats)
        return RpcClient(
            session=self.session, service=collector.service, collector=collector.name,
            host=c.host, port=c.port, tls=tls,
            timeout=c.timeout, max_response_bytes=c.max_response_bytes, stats=self.stats,
        )

    def collect(self) -> Iterator[Metric]:
        families: list[Metric] = list(render_self_metrics(self.runners, self.stats))
        families.extend(render_stream(self.events))
        families.extend(self.dispatcher.render())
        if self.events is not None:
            families.extend(self.dispatcher.render_states(self.shows_events_of))
        for runner in self.runners:
            if runner.fresh():
                families.extend(runner.collector.render(runner.snapshot))
        yield from merge_families(families)

    def shows_events_of(self, state: EventState) -> bool:
        """Event families appear once their service is known to be on this host: it has sent an
        event, or its collector has polled it. A harvester-only host shows no zero block counts."""
        if state.origin in self.dispatcher.last_event:
            return True
        runner = self.runner(COLLECTOR_OF_ORIGIN.get(state.origin, ""))
        return runner is not None and runner.last_success is not None

    def generation(self) -> tuple:
        """Changes whenever a poll finishes, an event arrives or a WebSocket goes up or down:
        what /metrics shows may differ."""
        streams = tuple((s.connected, s.reconnects) for s in (self.events, self.partials) if s is not None)
        return sum(r.polls for r in self.runners), sum(self.dispatcher.events.values()), streams

    def health(self) -> dict:
        return {
            "healthy": self.scheduler.running,
            "events": {
                s.service: {"connected": s.connected, "reconnects": s.reconnects, "last_error": s.last_error}
                for s in (self.events, self.partials) if s is not None},
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
