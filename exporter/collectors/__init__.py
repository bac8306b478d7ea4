"""The registry of collectors: one module per Chia service.

Each module in :data:`MODULES` may define ``make_event_states(config, exporter) ->
list[EventState]`` (what its daemon events feed; the exporter is passed for refresh hooks) and
``make_collector(config, states) -> Collector`` (a polled collector, named like the module and
listed in ``config.SERVICES``; ``states`` are the module's own event states, for collectors whose
output combines both). Nothing else needs to change to add a service.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from exporter.collectors.base import Collector, EventState
from exporter.config import Config

MODULES = ("full_node", "farmer", "harvester", "wallet", "daemon", "data_layer", "crawler", "timelord")


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


def build(config: Config, exporter: Any) -> tuple[list[Collector], list[EventState]]:
    """The enabled collectors and every module's event states."""
    collectors: list[Collector] = []
    states: list[EventState] = []
    for m in _modules():
        name = m.__name__.rsplit(".", 1)[1]
        own = list(m.make_event_states(config, exporter)) if hasattr(m, "make_event_states") else []
        states.extend(own)
        settings = config.collectors.get(name)
        if hasattr(m, "make_collector") and settings is not None and settings.enabled:
            collectors.append(m.make_collector(config, own))
    return collectors, states
