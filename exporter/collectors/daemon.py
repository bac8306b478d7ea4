"""Daemon: which Chia services run, and the daemon's version.

Asks the daemon over its WebSocket: ``running_services`` (one call for all) and ``get_version``.
Every known service is present, with 0 when it is not running, so that a stopped farmer shows
as 0 rather than as a missing series. Example::

    chia_daemon_service_running{component="farmer"} 1.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from prometheus_client.core import Metric

from exporter.collectors.base import Collector, labelled, optional, version_info
from exporter.collectors.full_node import parse_version

# The daemon's service names -> our component names (those of chia_version_info). The full node
# simulator counts as the full node.
COMPONENTS = {
    "chia_full_node": "full_node", "chia_full_node_simulator": "full_node", "chia_farmer": "farmer",
    "chia_harvester": "harvester", "chia_wallet": "wallet", "chia_timelord": "timelord",
    "chia_timelord_launcher": "timelord_launcher", "chia_introducer": "introducer", "chia_seeder": "seeder",
    "chia_crawler": "crawler", "chia_data_layer": "data_layer", "chia_data_layer_http": "data_layer_http",
}


def parse_running(body: dict) -> frozenset[str]:
    services = body["running_services"]
    if not isinstance(services, list):
        raise TypeError("running_services is not a list")
    return frozenset(str(s) for s in services)


@dataclass(frozen=True)
class DaemonSnapshot:
    running: frozenset[str]  # component names
    version: str | None


class DaemonCollector(Collector[DaemonSnapshot]):
    name = "daemon"
    service = "daemon"

    async def fetch(self, rpc) -> DaemonSnapshot:
        async with rpc:
            running = await rpc.call("running_services", parse=parse_running)
            version = await optional(rpc.call("get_version", parse=parse_version))
        return DaemonSnapshot(frozenset(COMPONENTS[s] for s in running if s in COMPONENTS), version)

    def render(self, snap: DaemonSnapshot) -> Iterator[Metric]:
        components = sorted(set(COMPONENTS.values()))
        yield labelled("chia_daemon_service_running",
                       "1 when the daemon reports the service running (running_services)." + self.cached_note(),
                       ["component"], (((c,), float(c in snap.running)) for c in components))
        yield from version_info("daemon", snap.version)


def make_collector(config, states) -> DaemonCollector:
    return DaemonCollector(config.collectors["daemon"])
