"""DataLayer: owned and subscribed stores, and whether each one is synced.

Polls ``get_owned_stores``, ``subscriptions``, and for each store (up to ``MAX_STORES``)
``get_sync_status``, ``get_root`` and ``get_mirrors``, plus ``get_connections`` and ``get_version``.
On by default where config.yaml has a ``data_layer`` section, but shown only once the service has
answered: a host that does not run a DataLayer gets no failing collector. Example::

    chia_data_layer_store_synced{owned="1",store_id="803bb9…"} 1.0
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Iterator

from prometheus_client.core import Metric

from exporter.collectors.base import Collector, as_float, as_int, connection_counts, gauge, labelled, optional, version_info
from exporter.collectors.full_node import parse_connection_types, parse_version
from exporter.rpc import RpcError

# Per-store series and calls are bounded: a host with thousands of subscriptions shows the first
# MAX_STORES (owned first) and counts the rest in chia_data_layer_stores_omitted.
MAX_STORES = 200
# Stores asked about at once: 200 stores × 3 calls one after another would not fit a 10 s poll on a
# slow DataLayer, and all at once would flood it.
CONCURRENT_STORES = 8
FRESH_DATA_LAYER = "DataLayerWallet not available"  # no store was ever made: nothing owned yet


@dataclass(frozen=True)
class StoreState:
    store_id: str
    owned: bool
    generation: int | None  # None (and so not synced) when get_sync_status failed
    target_generation: int | None
    root_timestamp: float | None
    mirrors: int | None


def parse_store_ids(body: dict) -> tuple[str, ...]:
    ids = body["store_ids"]
    if not isinstance(ids, list):
        raise TypeError("store_ids is not a list")
    return tuple(str(i) for i in ids)


def parse_sync_status(body: dict) -> tuple[int, int]:
    s = body["sync_status"]
    return as_int(s["generation"]), as_int(s["target_generation"])


def parse_root_timestamp(body: dict) -> float | None:
    return as_float(body["timestamp"]) if body.get("timestamp") is not None else None


def parse_mirrors(body: dict) -> int:
    mirrors = body["mirrors"]
    if not isinstance(mirrors, list):
        raise TypeError("mirrors is not a list")
    return len(mirrors)


@dataclass(frozen=True)
class DataLayerSnapshot:
    owned: int
    subscribed: int
    stores: tuple[StoreState, ...]
    omitted: int
    connections: tuple[int, ...] | None
    version: str | None


class DataLayerCollector(Collector[DataLayerSnapshot]):
    name = "data_layer"
    service = "data_layer"

    async def fetch(self, rpc) -> DataLayerSnapshot:
        try:
            owned = await rpc.call("get_owned_stores", parse=parse_store_ids)
        except RpcError as e:
            if e.outcome != "error" or FRESH_DATA_LAYER not in e.detail:
                raise
            # A DataLayer whose wallet never made a store: it owns none, and the poll succeeds. The
            # call itself still counts as outcome="error" in chia_exporter_rpc_requests_total: Chia
            # answered success: false, and both transports (rpc.py, daemon_ws.py) count that as an
            # error before any parse sees the body. The counter says what Chia answered.
            owned = ()
        subscribed = await rpc.call("subscriptions", parse=parse_store_ids)
        ordered = list(dict.fromkeys([*owned, *subscribed]))  # owned first, each store once
        shown, omitted = ordered[:MAX_STORES], max(0, len(ordered) - MAX_STORES)
        owned_set = set(owned)
        slots = asyncio.Semaphore(CONCURRENT_STORES)

        async def store(store_id: str) -> StoreState:
            async with slots:
                sync = await optional(rpc.call("get_sync_status", {"id": store_id}, parse=parse_sync_status))
                return StoreState(
                    store_id=store_id, owned=store_id in owned_set,
                    generation=sync[0] if sync else None, target_generation=sync[1] if sync else None,
                    root_timestamp=await optional(rpc.call("get_root", {"id": store_id}, parse=parse_root_timestamp)),
                    mirrors=await optional(rpc.call("get_mirrors", {"id": store_id}, parse=parse_mirrors)),
                )
        stores = await asyncio.gather(*(store(i) for i in shown))  # in the order asked: owned first
        return DataLayerSnapshot(
            owned=len(owned), subscribed=len(subscribed), stores=tuple(stores), omitted=omitted,
            connections=await optional(rpc.call("get_connections", parse=parse_connection_types)),
            version=await optional(rpc.call("get_version", parse=parse_version)),
        )

    def render(self, snap: DataLayerSnapshot) -> Iterator[Metric]:
        note = self.cached_note()
        yield gauge("chia_data_layer_owned_stores", "DataLayer stores this wallet owns (get_owned_stores)." + note, snap.owned)
        yield gauge("chia_data_layer_subscriptions", "DataLayer stores subscribed to (subscriptions)." + note, snap.subscribed)
        labels = ["store_id", "owned"]

        def per_store(name: str, doc: str, value) -> Metric:
            rows = [((s.store_id, "1" if s.owned else "0"), value(s)) for s in snap.stores]
            return labelled(name, doc + note, labels, ((k, v) for k, v in rows if v is not None))

        yield per_store("chia_data_layer_store_generation", "Generation of the store held locally (get_sync_status generation).",
                        lambda s: s.generation)
        yield per_store("chia_data_layer_store_target_generation", "Generation of the store on chain (get_sync_status target_generation).",
                        lambda s: s.target_generation)
        # A store whose sync status cannot be read (not in the local database yet, no confirmed
        # singleton in the wallet) is the one an alert on == 0 must see: it shows 0, not nothing.
        yield per_store("chia_data_layer_store_synced", "1 when the local generation has reached the chain's (get_sync_status "
                        "generation == target_generation); 0 when behind or when get_sync_status fails (store not in the "
                        "local database yet, no confirmed singleton).",
                        lambda s: float(s.generation is not None and s.generation == s.target_generation))
        yield per_store("chia_data_layer_store_root_timestamp_seconds", "Unix time of the store's current root on chain (get_root "
                        "timestamp).", lambda s: s.root_timestamp)
        yield per_store("chia_data_layer_store_mirrors", "Mirrors announced for the store (get_mirrors).", lambda s: s.mirrors)
        yield gauge("chia_data_layer_stores_omitted", f"Stores beyond the first {MAX_STORES} (owned first), not shown per store "
                    "to keep the series bounded." + note, snap.omitted)
        if snap.connections is not None:
            yield connection_counts("chia_data_layer_connections", "DataLayer peers by node type (get_connections)." + note,
                                    snap.connections)
        yield from version_info("data_layer", snap.version)


def make_collector(config, states) -> DataLayerCollector:
    return DataLayerCollector(config.collectors["data_layer"])
