"""Harvester (the one beside this exporter): plots by kind, plot directories, lookups.

Polls ``get_plots``, ``get_plot_directories``, ``get_connections`` and ``get_version``; consumes
the harvester's ``farming_info`` events. ``get_plots`` lists every plot (about 600 bytes each:
60 MB at 100k plots), so it is fetched only when the plot count the harvester reports in
``farming_info`` changed, or when the last list is older than an hour, and parsed one plot at a
time, yielding to the event loop, into counts per label set. Example::

    chia_harvester_plots{compression_level="0",k_size="32",plot_format="v1",pool_type="pool"} 812.0
    chia_harvester_lookup_duration_seconds_bucket{le="1.0"} 9821.0
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Iterator

from prometheus_client.core import Metric

from exporter.collectors.base import (
    LOOKUP_BUCKETS, Collector, EventState, Histogram, as_float, as_int, connection_counts, counter_family, gauge,
    histogram_family, labelled, optional, version_info,
)
from exporter.collectors.full_node import parse_connection_types, parse_version

V2_FLAG = 0x80  # get_plots reports a v2 plot's size as 0x80 | strength
PLOTS_MAX_AGE = 3600.0  # refetch the plot list at least this often, even when the count is the same
K_IN_FILENAME = re.compile(r"plot-k(\d+)-")

PlotKey = tuple[str, str, str, str]  # k_size, plot_format, compression_level, pool_type


@dataclass(frozen=True)
class PlotCounts:
    """get_plots reduced to what the metrics need: no per-plot data is kept."""

    by_kind: tuple[tuple[PlotKey, int, int], ...]  # (labels, plots, bytes)
    by_strength: tuple[tuple[int, int], ...]  # v2 strength -> plots
    total: int
    failed_to_open: int
    not_found: int


class _Tally:
    """Counts per label set. The loop is the hot path at 100k plots: plain dict access only;
    the values are checked once per distinct kind, not once per plot."""

    def __init__(self) -> None:
        self.raw: dict[tuple, list] = {}  # (size, compression, pooled, v2 k) -> [plots, bytes]
        self.total = 0

    def add_all(self, plots: list) -> None:
        raw = self.raw
        for plot in plots:
            size = plot["size"]
            k = ""
            if size & V2_FLAG:  # v2 plots do not report k in get_plots; their file name does
                m = K_IN_FILENAME.search(plot["filename"])
                k = m.group(1) if m else ""
            key = (size, plot["compression_level"], plot["pool_contract_puzzle_hash"] is not None, k)
            entry = raw.get(key)
            if entry is None:
                entry = raw[key] = [0, 0]
            entry[0] += 1
            entry[1] += plot["file_size"]
        self.total += len(plots)

    def result(self, rest: dict) -> PlotCounts:
        kinds: dict[PlotKey, list[int]] = {}
        strengths: dict[int, int] = {}
        for (size, compression, pooled, k), (n, size_bytes) in self.raw.items():
            size, n, size_bytes = as_int(size), as_int(n), as_int(size_bytes)
            compression = str(as_int(compression or 0))
            pool_type = "pool" if pooled else "og"
            if size & V2_FLAG:
                labels: PlotKey = (k, "v2", compression, pool_type)
                strengths[size & ~V2_FLAG] = strengths.get(size & ~V2_FLAG, 0) + n
            else:
                labels = (str(size), "v1", compression, pool_type)
            entry = kinds.setdefault(labels, [0, 0])
            entry[0] += n
            entry[1] += size_bytes
        return PlotCounts(
            by_kind=tuple((k, v[0], v[1]) for k, v in sorted(kinds.items())),
            by_strength=tuple(sorted(strengths.items())),
            total=self.total,
            failed_to_open=len(rest["failed_to_open_filenames"]),
            not_found=len(rest["not_found_filenames"]),
        )


BATCH_BYTES = 1 << 20  # about 1,700 plots parsed by one json.loads
PLOT_SEPARATOR = b"}, {"  # how Chia's json.dumps separates the plot objects
PLOTS_KEY = b'"plots": ['
SPACE = b" \n\r\t,"


async def parse_plots(body: bytes | bytearray) -> PlotCounts:
    """Count a get_plots body without blocking the event loop, at about the cost of json.loads.

    Chia writes the body with sorted keys (``…, "plots": [{…}, {…}], "success": true}``). The
    plots array is cut into batches of about a megabyte at object boundaries, each parsed by one
    ``json.loads`` straight from the bytes (no decoded copy of the whole body), with a yield to the
    loop between batches. A cut that falls inside a string (a file name holding ``}, {``) makes
    that batch invalid JSON, which is then read one object at a time with ``raw_decode``. Any other
    layout falls back to one ``json.loads`` of the whole.
    """
    start = body.find(PLOTS_KEY)
    if start < 0:
        return _parse_whole(body)
    tally = _Tally()
    pos = start + len(PLOTS_KEY)
    n = len(body)
    while True:
        while pos < n and body[pos] in SPACE:
            pos += 1
        if pos >= n:
            raise ValueError("get_plots body ends inside the plots list")
        if body[pos] == ord("]"):
            break
        cut = body.find(PLOT_SEPARATOR, pos + BATCH_BYTES)
        batch = None
        if cut > 0:
            try:
                batch = json.loads(b"[" + body[pos:cut + 1] + b"]")
            except ValueError:
                batch = None
        if batch is not None:
            pos = cut + 1
        else:  # the last, short stretch, or a cut inside a string: one object at a time
            batch, pos = _one_by_one(body, pos, cut + 1 if cut > 0 else n)
        tally.add_all(batch)
        await asyncio.sleep(0)  # let /metrics and the event stream run between batches
    rest = json.loads(body[:start] + b'"plots": []' + body[pos + 1:])
    if not isinstance(rest, dict) or rest.get("success") is not True:
        raise ValueError("get_plots did not succeed")
    return tally.result(rest)


def _one_by_one(body: bytes | bytearray, pos: int, limit: int) -> tuple[list, int]:
    """Plot objects from ``pos`` up to ``limit`` (or the end of the array), and where it stopped."""
    text = bytes(body[pos:limit]).decode()
    decoder = json.JSONDecoder()
    plots, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i] in " \n\r\t,":
            i += 1
        if i >= n or text[i] == "]":
            break
        plot, i = decoder.raw_decode(text, i)
        plots.append(plot)
    return plots, pos + len(text[:i].encode())


def _parse_whole(body: bytes | bytearray) -> PlotCounts:
    data = json.loads(body)
    if not isinstance(data, dict) or data.get("success") is not True:
        raise ValueError("get_plots did not succeed")
    tally = _Tally()
    tally.add_all(data["plots"])
    return tally.result(data)


@dataclass(frozen=True)
class HarvesterSnapshot:
    plots: PlotCounts
    directories: int | None
    connections: tuple[int, ...] | None
    version: str | None


class HarvesterCollector(Collector[HarvesterSnapshot]):
    name = "harvester"
    service = "harvester"

    def __init__(self, config, events: HarvesterEvents | None = None, clock=None) -> None:
        super().__init__(config)
        self.events = events
        self._plots: PlotCounts | None = None
        self._plots_at = 0.0
        self._monotonic = clock or time.monotonic

    def plots_outdated(self) -> bool:
        if self._plots is None or self._monotonic() - self._plots_at > PLOTS_MAX_AGE:
            return True
        reported = self.events.total_plots if self.events is not None else None
        return reported is None or reported != self._plots.total

    async def fetch(self, rpc) -> HarvesterSnapshot:
        if self.plots_outdated():
            self._plots = await rpc.call_raw("get_plots", parse=parse_plots)
            self._plots_at = self._monotonic()
        assert self._plots is not None
        return HarvesterSnapshot(
            plots=self._plots,
            directories=await optional(rpc.call("get_plot_directories", parse=lambda b: len(b["directories"]))),
            connections=await optional(rpc.call("get_connections", parse=parse_connection_types)),
            version=await optional(rpc.call("get_version", parse=parse_version)),
        )

    def render(self, snap: HarvesterSnapshot) -> Iterator[Metric]:
        note = self.cached_note()
        p = snap.plots
        labels = ["k_size", "plot_format", "compression_level", "pool_type"]
        yield labelled("chia_harvester_plots", "Plots this harvester farms, by k-size, format (v1, v2), compression and "
                       "pool type (og, pool) (get_plots)." + note, labels, ((k, n) for k, n, _ in p.by_kind))
        yield labelled("chia_harvester_plot_size_bytes", "Size on disk of this harvester's plots, in bytes (get_plots file_size)." + note,
                       labels, ((k, size) for k, _, size in p.by_kind))
        yield labelled("chia_harvester_v2_plots", "v2 plots by strength (get_plots size = 0x80 | strength)." + note,
                       ["strength"], (((str(s),), n) for s, n in p.by_strength))
        yield gauge("chia_harvester_plots_failed_to_open", "Plot files the harvester failed to open (get_plots failed_to_open_filenames)." + note,
                    p.failed_to_open)
        yield gauge("chia_harvester_plots_not_found", "Plot files the harvester no longer finds (get_plots not_found_filenames)." + note,
                    p.not_found)
        if snap.directories is not None:
            yield gauge("chia_harvester_plot_directories", "Plot directories configured (get_plot_directories)." + note, snap.directories)
        if snap.connections is not None:
            yield connection_counts("chia_harvester_connections", "Harvester peers by node type (get_connections)." + note, snap.connections)
        yield from version_info("harvester", snap.version)


class HarvesterEvents(EventState):
    origin = "chia_harvester"
    commands = frozenset({"farming_info"})

    def __init__(self, exporter=None) -> None:
        self.exporter = exporter
        self.lookups = Histogram(LOOKUP_BUCKETS)
        self.eligible = 0
        self.proofs = 0
        self.total_plots: int | None = None

    def handle(self, command: str, data: dict, now: float) -> None:
        seconds = as_float(data["time"])
        eligible, proofs, total = as_int(data["eligible_plots"]), as_int(data["found_proofs"]), as_int(data["total_plots"])
        self.lookups.observe(seconds)
        self.eligible += eligible
        self.proofs += proofs
        changed = self.total_plots is not None and total != self.total_plots
        self.total_plots = total
        if changed and self.exporter is not None:
            self.exporter.refresh("harvester")  # plots were added or removed: recount them soon

    def render(self, now: float) -> Iterator[Metric]:
        yield histogram_family("chia_harvester_lookup_duration_seconds",
                               "Time this harvester took to look up proofs for a signage point (farming_info time); "
                               "over 5 s loses the signage point.", rows=[((), self.lookups)])
        yield counter_family("chia_harvester_plots_eligible", "Plots that passed the plot filter (farming_info eligible_plots).",
                             rows=[((), self.eligible)])
        yield counter_family("chia_harvester_proofs_found", "Proofs this harvester found (farming_info found_proofs).",
                             rows=[((), self.proofs)])
        if self.total_plots is not None:
            yield gauge("chia_harvester_total_plots", "Plots the harvester reported in its last lookup (farming_info total_plots).",
                        self.total_plots)


def make_event_states(config, exporter) -> list[EventState]:
    return [HarvesterEvents(exporter)]


def make_collector(config, states: list[EventState]) -> HarvesterCollector:
    return HarvesterCollector(config.collectors["harvester"], next(s for s in states if isinstance(s, HarvesterEvents)))
