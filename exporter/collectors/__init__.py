"""The registry of collectors: one per Chia service, each in its own module."""

from __future__ import annotations

from typing import Any, Callable

from exporter.collectors.base import Collector, EventState
from exporter.collectors.full_node import FullNodeCollector
from exporter.config import Config, full_node_database, read_chia_config

# name -> factory(config) building the collector from the whole Config.
COLLECTORS: dict[str, Callable[[Config], Collector]] = {
    "full_node": lambda cfg: FullNodeCollector(cfg.collectors["full_node"], _database(cfg)),
}


def _database(cfg: Config):
    chia, path = read_chia_config(cfg.chia_root)
    return full_node_database(cfg.chia_root, chia) if path else None


# Factories of the states that daemon events feed; each gets the exporter, for refresh hooks.
EVENT_STATES: list[Callable[[Config, Any], EventState]] = []


def build_event_states(config: Config, exporter: Any) -> list[EventState]:
    return [make(config, exporter) for make in EVENT_STATES]


def build_collectors(config: Config) -> list[Collector]:
    return [COLLECTORS[name](config) for name, c in config.collectors.items() if c.enabled and name in COLLECTORS]
