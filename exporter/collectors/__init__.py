"""The registry of collectors: one module per Chia service.

Each module in :data:`MODULES` may define ``make_collector(config) -> Collector`` (a polled
collector, named like the module and listed in ``config.SERVICES``) and
``make_event_states(config, exporter) -> list[EventState]`` (what its daemon events feed; the
exporter is passed for refresh hooks). Nothing else needs to change to add a service.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from exporter.collectors.base import Collector, EventState
from exporter.config import Config

MODULES = ("full_node", "farmer", "harvester", "wallet", "daemon", "crawler", "timelord")


def _modules() -> list[ModuleType]:
    found = []
    for name in MODULES:
        try:
            found.append(importlib.import_module(f"exporter.collectors.{name}"))
        except ModuleNotFoundError as e:
            if e.name != f"exporter.collectors.{name}":
                raise
    return found


def polled_collectors() -> dict[str, Any]:
    """Collector name -> factory, for every module with a polled collector."""
    return {m.__name__.rsplit(".", 1)[1]: m.make_collector for m in _modules() if hasattr(m, "make_collector")}


def build_collectors(config: Config) -> list[Collector]:
    factories = polled_collectors()
    return [factories[name](config) for name, c in config.collectors.items() if c.enabled and name in factories]


def build_event_states(config: Config, exporter: Any) -> list[EventState]:
    states: list[EventState] = []
    for m in _modules():
        if hasattr(m, "make_event_states"):
            states.extend(m.make_event_states(config, exporter))
    return states
