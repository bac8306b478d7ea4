"""Farmer: harvesters (remote ones included), pools, reward targets, signage points, proofs.

Polls ``get_connections``, ``get_harvesters_summary`` (never the per-plot ``get_harvesters``: the
cost depends on the number of harvesters, not plots), ``get_pool_state``, ``get_reward_targets``
(without the key search), ``get_signage_points`` and ``get_version``. Consumes the farmer's
``new_signage_point``, ``new_farming_info``, ``proof``, ``harvester_update``,
``harvester_removed``, ``submitted_partial`` and ``failed_partial`` events. Hex ids used as labels
(``node_id``, ``launcher_id``) are lowercase with ``0x``, whichever form Chia wrote them in.
Example::

    chia_farmer_harvester_plots{host="10.0.0.5",node_id="0xd8b4…"} 6.0
    chia_farmer_signage_points_total 39.0
    chia_farmer_harvester_lookup_duration_seconds_bucket{le="0.05",node_id="0xd8b4…"} 38.0
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

from prometheus_client.core import Metric

from exporter.collectors.base import (
    LOOKUP_BUCKETS, Collector, EventState, Histogram, as_float, as_int, connection_counts,
    counter_family, gauge, histogram_family, labelled, labelled_dicts, version_info,
)
from exporter.collectors.full_node import parse_connection_types, parse_version
from exporter.rpc import SHAPE_ERRORS
from exporter.scheduler import optional_within

log = logging.getLogger(__name__)

PARTIAL_RESULTS = ("valid", "invalid", "insufficient", "stale", "missing")
MAX_POOLS_FROM_EVENTS = 64  # partial counters by pool: plot NFTs per farm are few, keep it bounded
# The farmer trims a *_24h list only when it adds to that list (chia/farmer/farmer.py
# increment_pool_stats): entries older than this before the poll are left out here.
DAY = 24 * 60 * 60
HEX_DIGITS = frozenset("0123456789abcdef")


def hex_id(value) -> str:
    """A hex id as a label: lowercase, with ``0x``. Chia writes node_id with ``0x`` and the pool
    ids (get_pool_state, submitted_partial, failed_partial) without: one form lets them join."""
    if not isinstance(value, str):
        raise TypeError(f"expected a hex string, got {value!r}")
    text = value.strip().lower()
    digits = text[2:] if text.startswith("0x") else text
    if not digits or not HEX_DIGITS.issuperset(digits):
        raise ValueError(f"expected a hex string, got {value!r}")
    return "0x" + digits


@dataclass(frozen=True)
class HarvesterSummary:
    node_id: str
    host: str
    plots: int
    failed_to_open: int
    no_key: int
    duplicates: int
    total_plot_size: int
    total_effective_plot_size: int
    syncing: bool
    last_sync_time: float | None

    @classmethod
    def parse(cls, h: dict) -> HarvesterSummary:
        c = h["connection"]
        return cls(
            node_id=hex_id(c["node_id"]), host=str(c["host"]), plots=as_int(h["plots"]),
            failed_to_open=_count(h["failed_to_open_filenames"]), no_key=_count(h["no_key_filenames"]),
            duplicates=_count(h["duplicates"]), total_plot_size=as_int(h["total_plot_size"]),
            total_effective_plot_size=as_int(h["total_effective_plot_size"]),
            syncing=h.get("syncing") is not None,
            last_sync_time=as_float(h["last_sync_time"]) if h.get("last_sync_time") is not None else None,
        )


def _count(value) -> int:
    """The summary gives counts; the full list (and older versions) give lists."""
    return len(value) if isinstance(value, list) else as_int(value)


def parse_harvesters(body: dict) -> tuple[HarvesterSummary, ...]:
    return tuple(HarvesterSummary.parse(h) for h in body["harvesters"])


@dataclass(frozen=True)
class PoolState:
    launcher_id: str
    pool_url: str  # "" for a self-pooling plot NFT: it submits no partials
    p2_singleton_puzzle_hash: str
    current_points: int
    current_difficulty: int | None  # null until the pool first answers; for good when self-pooling
    points_found_since_start: int
    points_acknowledged_since_start: int
    points_found_24h: tuple[tuple[float, int], ...]  # (unix time, points)
    points_acknowledged_24h: tuple[tuple[float, int], ...]
    partials_since_start: tuple[tuple[str, int], ...]
    error_times: tuple[float, ...]  # of the pool_errors_24h entries
    plot_count: int | None

    @classmethod
    def parse(cls, p: dict) -> PoolState:
        config = p["pool_config"]
        difficulty = p.get("current_difficulty")
        return cls(
            launcher_id=hex_id(config["launcher_id"]), pool_url=str(config.get("pool_url") or ""),
            p2_singleton_puzzle_hash=hex_id(p.get("p2_singleton_puzzle_hash") or config["p2_singleton_puzzle_hash"]),
            current_points=as_int(p["current_points"]),
            current_difficulty=as_int(difficulty) if difficulty is not None else None,
            points_found_since_start=as_int(p["points_found_since_start"]),
            points_acknowledged_since_start=as_int(p["points_acknowledged_since_start"]),
            points_found_24h=_stamped_points(p["points_found_24h"]),
            points_acknowledged_24h=_stamped_points(p["points_acknowledged_24h"]),
            partials_since_start=tuple((r, as_int(p[f"{r}_partials_since_start"]))
                                       for r in PARTIAL_RESULTS if f"{r}_partials_since_start" in p),
            error_times=tuple(as_float(error[0]) for error in p["pool_errors_24h"]),  # [time, {error_code, …}]
            plot_count=as_int(p["plot_count"]) if p.get("plot_count") is not None else None,
        )


def _stamped_points(pairs: list) -> tuple[tuple[float, int], ...]:
    """The points lists hold [unix time, points] pairs."""
    return tuple((as_float(at), as_int(points)) for at, points in pairs)


def _points_since(pairs: tuple[tuple[float, int], ...], since: float) -> int:
    return sum(points for at, points in pairs if at >= since)


@dataclass(frozen=True)
class PoolStates:
    pools: tuple[PoolState, ...]
    unreadable: tuple[str, ...]  # why each entry left out could not be read

    def on_a_pool(self) -> bool:
        """Whether a plot NFT farms to a pool: only those submit partials, and so fail them
        (chia/farmer/farmer_api.py returns before either for an empty pool_url)."""
        return any(p.pool_url for p in self.pools)


def parse_pools(body: dict) -> PoolStates:
    """Each plot NFT on its own: one entry that cannot be read loses only its own series."""
    entries = body["pool_state"]
    if not isinstance(entries, list):
        raise TypeError("pool_state is not a list")
    pools, unreadable = [], []
    for i, entry in enumerate(entries):
        try:
            pools.append(PoolState.parse(entry))
        except SHAPE_ERRORS as e:
            unreadable.append(f"entry {i}: {type(e).__name__}: {e}")
    return PoolStates(tuple(pools), tuple(unreadable))


def parse_reward_targets(body: dict) -> tuple[str, str]:
    return str(body["farmer_target"]), str(body["pool_target"])


def parse_last_signage_point(body: dict) -> int | None:
    points = body["signage_points"]
    return as_int(points[-1]["signage_point"]["signage_point_index"]) if points else None


@dataclass(frozen=True)
class FarmerSnapshot:
    harvesters: tuple[HarvesterSummary, ...]
    connections: tuple[int, ...] | None
    pools: PoolStates | None
    reward_targets: tuple[str, str] | None
    last_signage_point_index: int | None
    version: str | None
    taken_at: float = 0.0  # unix time of the poll, on the exporter's clock: the 24 h windows end there
    signage_points_asked_at: int = 0  # the event sequence number when get_signage_points was asked
    harvesters_asked_at: int = 0  # the event sequence number when get_harvesters_summary was asked


class FarmerCollector(Collector[FarmerSnapshot]):
    name = "farmer"
    service = "farmer"

    def __init__(self, config, events: FarmerEvents | None = None, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        self.events = events  # harvester rows follow harvester_update / harvester_removed at once
        self.clock = clock
        self._unreadable_pools: tuple[str, ...] = ()  # as last logged
        self._returned_asked_at: int | None = None  # harvesters_asked_at of the last snapshot returned

    def _sequence(self) -> int:
        return self.events.sequence if self.events is not None else 0

    async def fetch(self, rpc) -> FarmerSnapshot:
        if self.events is not None and self._returned_asked_at is not None:
            # The snapshot on show (the last one returned) has caught up with these: forget them.
            # Not earlier: until a poll returns, /metrics merges the events with the older snapshot.
            self.events.polled_harvesters(self._returned_asked_at)
        taken_at, asked_at = self.clock(), self._sequence()
        harvesters = await rpc.call("get_harvesters_summary", parse=parse_harvesters)
        # One slow secondary call costs its own families, not the harvesters the poll already has.
        connections = await optional_within(rpc.call("get_connections", parse=parse_connection_types))
        pools = await self._pools(rpc)
        reward_targets = await optional_within(rpc.call(
            "get_reward_targets", {"search_for_private_key": False}, parse=parse_reward_targets))
        signage_points_asked_at = self._sequence()
        last_signage_point = await optional_within(
            rpc.call("get_signage_points", parse=parse_last_signage_point))
        version = await optional_within(rpc.call("get_version", parse=parse_version))
        self._returned_asked_at = asked_at
        return FarmerSnapshot(
            harvesters=harvesters, connections=connections, pools=pools, reward_targets=reward_targets,
            last_signage_point_index=last_signage_point, version=version,
            taken_at=taken_at, signage_points_asked_at=signage_points_asked_at, harvesters_asked_at=asked_at,
        )

    async def _pools(self, rpc) -> PoolStates | None:
        states = await optional_within(rpc.call("get_pool_state", parse=parse_pools))
        if states is None:
            return None
        if states.unreadable != self._unreadable_pools:  # a change is logged, not every poll
            if states.unreadable:
                log.warning("farmer get_pool_state: %d plot NFT entries left out: %s",
                            len(states.unreadable), "; ".join(states.unreadable[:5]))
            self._unreadable_pools = states.unreadable
        if self.events is not None:  # failed_partial names only the p2 singleton
            self.events.pool_names.update({p.p2_singleton_puzzle_hash: (p.launcher_id, p.pool_url) for p in states.pools})
        return states

    def wants_wallet_ui_events(self, snapshot: FarmerSnapshot) -> bool:
        return snapshot.pools is not None and snapshot.pools.on_a_pool()

    def render(self, snap: FarmerSnapshot) -> Iterator[Metric]:
        note = self.cached_note()
        harvesters = {h.node_id: h for h in snap.harvesters}
        if self.events is not None:  # pushed updates are newer than the last poll
            harvesters = self.events.current_harvesters(harvesters, snap.harvesters_asked_at)
        rows = sorted(harvesters.values(), key=lambda h: (h.host, h.node_id))
        yield gauge("chia_farmer_harvesters", "Harvesters connected to the farmer (get_harvesters_summary, harvester_update)." + note,
                    len(rows))

        keys = [{"node_id": h.node_id, "host": h.host} for h in rows]  # shared by the nine families

        def per_harvester(name: str, doc: str, value) -> Metric:
            return labelled_dicts(name, doc + note, ["node_id", "host"], zip(keys, map(value, rows)))

        yield per_harvester("chia_farmer_harvester_plots", "Plots a harvester farms (get_harvesters_summary plots).", lambda h: h.plots)
        yield per_harvester("chia_farmer_harvester_plot_size_bytes", "Raw size of a harvester's plots, in bytes (total_plot_size).",
                            lambda h: h.total_plot_size)
        yield per_harvester("chia_farmer_harvester_effective_plot_size_bytes",
                            "Effective size of a harvester's plots, in bytes, counting compression (total_effective_plot_size).",
                            lambda h: h.total_effective_plot_size)
        yield per_harvester("chia_farmer_harvester_plots_failed_to_open", "Plots a harvester failed to open (failed_to_open_filenames).",
                            lambda h: h.failed_to_open)
        yield per_harvester("chia_farmer_harvester_plots_no_key", "Plots a harvester has no key for (no_key_filenames).", lambda h: h.no_key)
        yield per_harvester("chia_farmer_harvester_plots_duplicate", "Duplicate plots on a harvester (duplicates).", lambda h: h.duplicates)
        yield per_harvester("chia_farmer_harvester_syncing", "1 while a harvester's plot list is syncing to the farmer (syncing != null).",
                            lambda h: float(h.syncing))
        yield labelled_dicts("chia_farmer_harvester_last_sync_timestamp_seconds",
                             "Unix time of a harvester's last plot sync with the farmer (last_sync_time)." + note,
                             ["node_id", "host"], ((k, h.last_sync_time) for k, h in zip(keys, rows) if h.last_sync_time is not None))
        if snap.connections is not None:
            yield connection_counts("chia_farmer_connections", "Farmer peers by node type (get_connections)." + note, snap.connections)
        if snap.pools is not None:
            yield from render_pools(snap.pools, snap.taken_at, note)
        if snap.reward_targets is not None:
            yield gauge("chia_farmer_reward_target_info", "Where farming rewards go (get_reward_targets)." + note, 1,
                        {"farmer_target": snap.reward_targets[0], "pool_target": snap.reward_targets[1]})
        index = snap.last_signage_point_index
        e = self.events
        # The newer source wins: an event that came after the poll asked (not one from before a
        # WebSocket outage, which the poll has since caught up with).
        if e is not None and e.last_signage_point_index is not None and (
                index is None or e.last_signage_point_at > snap.signage_points_asked_at):
            index = e.last_signage_point_index
        if index is not None:
            yield gauge("chia_farmer_last_signage_point_index",
                        "Index (0-63) of the newest signage point the farmer received (new_signage_point, get_signage_points).",
                        index)
        yield from version_info("farmer", snap.version)


def render_pools(states: PoolStates, taken_at: float, note: str) -> Iterator[Metric]:
    pools = states.pools
    labels = ["launcher_id", "pool_url"]
    since = taken_at - DAY

    def per_pool(name: str, doc: str, value, shown=lambda p: True) -> Metric:
        return labelled(name, doc + note, labels, (((p.launcher_id, p.pool_url), value(p)) for p in pools if shown(p)))

    yield gauge("chia_farmer_pool_states_unreadable",
                "Plot NFT entries of get_pool_state left out because they could not be read (each is logged)." + note,
                len(states.unreadable))
    yield per_pool("chia_farmer_pool_current_points", "Points the pool credits this plot NFT with now (get_pool_state current_points).",
                   lambda p: p.current_points)
    yield per_pool("chia_farmer_pool_current_difficulty",
                   "Partial difficulty the pool set (current_difficulty; absent until the pool has answered, "
                   "and for a self-pooling plot NFT).", lambda p: p.current_difficulty, lambda p: p.current_difficulty is not None)
    yield per_pool("chia_farmer_pool_points_found_since_start", "Points found since the farmer started (points_found_since_start).",
                   lambda p: p.points_found_since_start)
    yield per_pool("chia_farmer_pool_points_acknowledged_since_start",
                   "Points the pool acknowledged since the farmer started (points_acknowledged_since_start).",
                   lambda p: p.points_acknowledged_since_start)
    yield per_pool("chia_farmer_pool_points_found_24h",
                   "Points found in the 24 hours before the poll (sum of the points_found_24h entries that recent).",
                   lambda p: _points_since(p.points_found_24h, since))
    yield per_pool("chia_farmer_pool_points_acknowledged_24h",
                   "Points the pool acknowledged in the 24 hours before the poll (sum of the points_acknowledged_24h entries "
                   "that recent).", lambda p: _points_since(p.points_acknowledged_24h, since))
    yield labelled("chia_farmer_pool_partials_since_start",
                   "Partials since the farmer started, by result (valid, invalid, insufficient, stale, missing; "
                   "*_partials_since_start)." + note, labels + ["result"],
                   (((p.launcher_id, p.pool_url, result), n) for p in pools for result, n in p.partials_since_start))
    yield per_pool("chia_farmer_pool_errors_24h",
                   "Errors the pool returned in the 24 hours before the poll (pool_errors_24h entries that recent).",
                   lambda p: sum(1 for at in p.error_times if at >= since))
    yield labelled("chia_farmer_pool_plots", "Plots farming to this plot NFT (plot_count)." + note, labels,
                   (((p.launcher_id, p.pool_url), p.plot_count) for p in pools if p.plot_count is not None))


@dataclass
class HarvesterActivity:
    """What one harvester's new_farming_info events added up to."""

    lookups: Histogram = field(default_factory=lambda: Histogram(LOOKUP_BUCKETS))
    passed_filter: int = 0
    proofs: int = 0
    responses: int = 0
    last_response: float = 0.0


class FarmerEvents(EventState):
    origin = "chia_farmer"
    commands = frozenset({"new_signage_point", "new_farming_info", "proof", "harvester_update", "harvester_removed",
                          "submitted_partial", "failed_partial"})

    def __init__(self, harvester_expiry: float, clock: Callable[[], float] = time.time) -> None:
        self.harvester_expiry = harvester_expiry
        self.clock = clock  # the exporter's wall clock, which the collector stamps its polls with
        self.signage_points = 0
        self.signage_points_missed = 0
        self.last_signage_point_index: int | None = None
        self.last_signage_point_at = 0  # its event sequence number
        self.proofs_declared = 0
        self.activity: dict[str, HarvesterActivity] = {}
        # Harvesters the farmer said it lost: their rows go at once, their counts stay until the
        # silence expiry, so that a brief disconnect does not reset them.
        self.departed: set[str] = set()
        # Pushed changes, stamped with the event sequence number: a poll asked after one came
        # supersedes it; one that came while the poll was in flight is newer than its answer.
        self.sequence = 0
        self.updates: dict[str, tuple[int, HarvesterSummary]] = {}  # harvester_update since the last poll
        self.removed: dict[str, int] = {}  # node_id -> when harvester_removed came
        self.partials_submitted: dict[tuple[str, str], int] = {}
        # By (launcher_id, pool_url) as the pool state named the plot NFT when the partial failed, so
        # that a plot NFT moving to another pool does not carry its past failures there; by
        # p2_singleton_puzzle_hash alone while the pool state has not named it yet.
        self.partials_failed: dict[tuple[str, str] | str, int] = {}
        self.pool_names: dict[str, tuple[str, str]] = {}  # p2_singleton_puzzle_hash -> (launcher_id, pool_url)

    def handle(self, command: str, data: dict, now: float) -> None:
        self.sequence += 1
        if command == "new_signage_point":
            sp = data["signage_point"]
            index = as_int(sp["signage_point_index"])
            missing = data.get("missing_signage_points")
            missed = as_int(missing[1]) if missing else 0  # [timestamp, count] or null
            self.signage_points += 1
            self.signage_points_missed += max(missed, 0)
            self.last_signage_point_index, self.last_signage_point_at = index, self.sequence
        elif command == "new_farming_info":
            info = data["farming_info"]
            node_id = hex_id(info["node_id"])
            lookup_seconds = as_float(info["lookup_time"]) / 1e6  # the farmer reports microseconds
            passed, proofs = as_int(info["passed_filter"]), as_int(info["proofs"])
            a = self.activity.setdefault(node_id, HarvesterActivity())
            a.lookups.observe(lookup_seconds)
            a.passed_filter += passed
            a.proofs += proofs
            a.responses += 1
            a.last_response = now
            self.removed.pop(node_id, None)
            self.departed.discard(node_id)
        elif command == "proof":
            if not isinstance(data["proof"], dict):
                raise TypeError("proof is not an object")
            self.proofs_declared += 1
        elif command == "harvester_update":
            h = HarvesterSummary.parse(data)
            self.updates[h.node_id] = (self.sequence, h)
            self.removed.pop(h.node_id, None)
            self.departed.discard(h.node_id)
        elif command == "harvester_removed":
            node_id = hex_id(data["node_id"])
            self.removed[node_id] = self.sequence
            self.updates.pop(node_id, None)
            if node_id in self.activity:
                self.departed.add(node_id)
        elif command == "submitted_partial":
            key = (hex_id(data["launcher_id"]), str(data.get("pool_url") or ""))
            if key in self.partials_submitted or len(self.partials_submitted) < MAX_POOLS_FROM_EVENTS:
                self.partials_submitted[key] = self.partials_submitted.get(key, 0) + 1
        elif command == "failed_partial":
            p2 = hex_id(data["p2_singleton_puzzle_hash"])
            key = self.pool_names.get(p2, p2)
            if key in self.partials_failed or len(self.partials_failed) < MAX_POOLS_FROM_EVENTS:
                self.partials_failed[key] = self.partials_failed.get(key, 0) + 1

    def polled_harvesters(self, asked_at: int) -> None:
        """Forget the pushed updates and removals that a poll asked at event sequence ``asked_at``
        has caught up with, once that poll's snapshot is the one on show (a harvester that
        reconnected after its removal is listed by the poll again); keep those that came later."""
        self.updates = {n: u for n, u in self.updates.items() if u[0] > asked_at}
        self.removed = {n: seq for n, seq in self.removed.items() if seq > asked_at}

    def current_harvesters(self, polled: dict[str, HarvesterSummary], asked_at: int) -> dict[str, HarvesterSummary]:
        """The poll asked at event sequence ``asked_at``, with what was pushed after it on top."""
        merged = dict(polled)
        for node_id, (seq, h) in self.updates.items():
            if seq > asked_at:
                merged[node_id] = h
        for node_id, seq in self.removed.items():
            if seq > asked_at:
                merged.pop(node_id, None)
        return merged

    def render(self, now: float) -> Iterator[Metric]:
        # A harvester silent past the expiry leaves: its series would only mislead dashboards.
        for node_id in [n for n, a in self.activity.items() if now - a.last_response > self.harvester_expiry]:
            del self.activity[node_id]
            self.departed.discard(node_id)
        yield counter_family("chia_farmer_signage_points", "Signage points the farmer received (new_signage_point event).",
                             rows=[((), self.signage_points)])
        yield counter_family("chia_farmer_signage_points_missed",
                             "Signage points the farmer noticed it missed (new_signage_point missing_signage_points).",
                             rows=[((), self.signage_points_missed)])
        yield counter_family("chia_farmer_proofs_declared",
                             "Proofs of space the farmer declared to the node as block candidates (proof event).",
                             rows=[((), self.proofs_declared)])
        rows = sorted((n, a) for n, a in self.activity.items() if n not in self.departed)
        yield histogram_family("chia_farmer_harvester_lookup_duration_seconds",
                               "Time a harvester took to look up proofs for a signage point (new_farming_info lookup_time); "
                               "Chia warns over 8 s, and past the infusion point (about 28 s) a proof is lost.", ["node_id"], ((((n,), a.lookups) for n, a in rows)))
        yield counter_family("chia_farmer_harvester_plots_passed_filter",
                             "Plots that passed the plot filter, per harvester (new_farming_info passed_filter).",
                             ["node_id"], (((n,), a.passed_filter) for n, a in rows))
        yield counter_family("chia_farmer_harvester_proofs_found", "Proofs a harvester found (new_farming_info proofs).",
                             ["node_id"], (((n,), a.proofs) for n, a in rows))
        yield counter_family("chia_farmer_harvester_responses", "Signage point responses from a harvester (new_farming_info).",
                             ["node_id"], (((n,), a.responses) for n, a in rows))
        yield labelled("chia_farmer_harvester_last_response_timestamp_seconds",
                       "Unix time of a harvester's last signage point response (new_farming_info).",
                       ["node_id"], (((n,), a.last_response) for n, a in rows))
        # Every plot NFT the pool state lists on a pool starts at 0, so that increase() sees the
        # first partial (a self-pooling one submits none).
        known = dict.fromkeys((names for names in self.pool_names.values() if names[1]), 0)
        yield counter_family("chia_farmer_partials_submitted", "Partials the pool accepted (submitted_partial event, sent once the pool's answer is a success; "
                             "rejections show in chia_farmer_pool_partials_since_start).",
                             ["launcher_id", "pool_url"], sorted({**known, **self.partials_submitted}.items()))
        failed: dict[tuple[str, str], int] = dict(known)
        for key, n in self.partials_failed.items():
            if isinstance(key, str):  # failed before the pool state named the plot NFT
                key = self.pool_names.get(key, (key, ""))
            failed[key] = failed.get(key, 0) + n
        yield counter_family("chia_farmer_partials_failed",
                             "Partials that failed before the pool could judge them: no pool difficulty yet, a signing error, "
                             "or the pool unreachable (failed_partial event, sent to wallet_ui only).", ["launcher_id", "pool_url"], sorted(failed.items()))


def make_event_states(config, exporter) -> list[EventState]:
    clock = exporter.clock.time if exporter is not None else time.time
    return [FarmerEvents(config.events.harvester_expiry, clock)]


def make_collector(config, states: list[EventState]) -> FarmerCollector:
    events = next(s for s in states if isinstance(s, FarmerEvents))
    return FarmerCollector(config.collectors["farmer"], events, events.clock)
