"""Harvester (the one beside this exporter): plots by kind, plot directories, lookups.

Polls ``get_plot_directories``, ``get_connections`` and ``get_version`` every interval, and
``get_plots`` far less often; consumes the harvester's ``farming_info`` events. ``get_plots`` lists
every plot (about 600 bytes each: 60 MB at 100k plots), so it is fetched when the plot count the
harvester reports in ``farming_info`` changed (at most once every ``PLOTS_MIN_GAP``, however often
the count moves while plots load or copy in), when the last list is an hour old, or, without the
event stream, every ``PLOTS_MIN_GAP``. A large body is parsed in batches, yielding to the event
loop, into counts per label set.

Through the daemon (``--transport daemon``) the reply is one WebSocket message, and the daemon
refuses one over its ``daemon_max_message_size``: the list is not asked for while the plot count
makes it likely too large (see :func:`daemon_message_limit`). Example::

    chia_harvester_plots{compression_level="0",k_size="32",plot_format="v1",pool_type="pool"} 812.0
    chia_harvester_lookup_duration_seconds_bucket{le="1.0"} 9821.0
"""

from __future__ import annotations

import asyncio
import json
import logging
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
from exporter.rpc import ReplyTooLarge, RpcError, check_success

log = logging.getLogger(__name__)

V2_FLAG = 0x80  # get_plots reports a v2 plot's size as 0x80 | strength
PLOTS_MAX_AGE = 3600.0  # refetch the plot list at least this often, even when the count is the same
# Never fetch the plot list more often than this: while a harvester loads 100k plots or plots are
# copied in, its count moves at every signage point, and each get_plots holds the harvester's plot
# lock that its lookups need.
PLOTS_MIN_GAP = 300.0
K_IN_FILENAME = re.compile(r"plot-k(\d+)-")

# The daemon transport. Chia's daemon refuses a WebSocket message over daemon_max_message_size
# (Config.daemon_max_message_size): a harvester's get_plots reply that large is never relayed,
# and the daemon closes the harvester's own link to it, which the harvester then re-opens after
# 2 s (chia/daemon/server.py incoming_connection, chia/rpc/rpc_server.py).
# Bytes a plot takes in a get_plots reply until a list through the daemon has shown its own size:
# 603 in the recorded stack (495 bytes of fields, a 108-byte path); longer paths are common.
PLOT_BYTES_GUESS = 700
# The list is asked for only while its estimate stays under this share of the limit: room for
# plots added since the count was taken and for paths longer than the ones measured.
LIMIT_SHARE = 0.9
# With no plot count known yet (just after start: no farming_info so far, no list), a harvester
# that has a farmer sends one at its next signage point (every ~9 s): the daemon transport waits
# for it this long (or a quarter of the poll's timeout) before asking for the list regardless.
PLOTS_COUNT_WAIT = 15.0
FARMER = 3  # NodeType.FARMER in get_connections

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
# Up to this size one json.loads of the whole body (a few ms) is cheaper than cutting it.
WHOLE_BODY_BYTES = 2 << 20
PLOT_SEPARATOR = b"}, {"  # how Chia's json.dumps separates the plot objects
PLOTS_KEY = b'"plots": ['
PLOTS_END = b'}], "success": '  # the end of the plots array, with sorted keys
SPACE = b" \n\r\t,"


async def parse_plots(body: bytes | bytearray) -> PlotCounts:
    """Count a get_plots body without blocking the event loop, at about the cost of json.loads.

    Chia writes the body with sorted keys (``…, "plots": [{…}, {…}], "success": true}``). The
    plots array is cut into batches of about a megabyte at object boundaries, each parsed by one
    ``json.loads``, with a yield to the loop between batches. A cut that falls inside a string (a
    file name holding ``}, {``) makes that batch invalid JSON: the next boundary is tried. A layout
    this does not recognise is read one object at a time; a small body is parsed whole.
    """
    start = body.find(PLOTS_KEY) if len(body) > WHOLE_BODY_BYTES else -1
    if start < 0:
        return _parse_whole(body)
    if not isinstance(body, bytearray):
        body = bytearray(body)
    tally = _Tally()
    pos = start + len(PLOTS_KEY)
    n = len(body)
    end = body.rfind(PLOTS_END, max(pos, n - 4096))  # where the last plot object closes, if found
    while True:
        while pos < n and body[pos] in SPACE:
            pos += 1
        if pos >= n:
            raise ValueError("get_plots body ends inside the plots list")
        if body[pos] == ord("]"):
            break
        cut = body.find(PLOT_SEPARATOR, pos + BATCH_BYTES)
        if cut < 0 and end > pos:
            cut = end  # the last stretch, up to the array's end
        batch = None
        for _ in range(8):
            if cut < 0:
                break
            try:
                batch = _array_between(body, pos, cut)
                break
            except ValueError:  # a cut inside a string (a file name holding "}, {"): the next one
                cut = body.find(PLOT_SEPARATOR, cut + 1) if cut != end else -1
                if cut < 0 and end > pos and body.rfind(PLOT_SEPARATOR, pos, end) < 0:
                    cut = end
        if batch is not None:
            pos = cut + 1
        else:
            batch, pos = _one_by_one(body, pos, n)
        tally.add_all(batch)
        await asyncio.sleep(0)  # let /metrics and the event stream run between batches
    rest = check_success("get_plots", json.loads(body[:start] + b'"plots": []' + body[pos + 1:]))
    return tally.result(rest)


def _array_between(body: bytearray, first: int, last: int) -> list:
    """The objects from ``body[first]`` (a ``{``) to ``body[last]`` (a ``}``), parsed as one JSON
    array. The two bytes around them (a ``[`` or a space, a ``,`` or a ``]``) stand in for the
    brackets for a moment, so that the batch is copied once, not three times: at 100k plots the
    copies of 1 MB buffers cost as much as the parse of the objects in them."""
    before, after = body[first - 1], body[last + 1]
    body[first - 1], body[last + 1] = ord("["), ord("]")
    try:
        chunk = body[first - 1:last + 2]
    finally:
        body[first - 1], body[last + 1] = before, after
    return json.loads(chunk)


def _one_by_one(body: bytes | bytearray, pos: int, n: int) -> tuple[list, int]:
    """Plot objects from ``pos``, a window of about a batch at a time (wider when one object does
    not fit), up to the end of the array; and where it stopped."""
    decoder = json.JSONDecoder()
    window = BATCH_BYTES
    while True:
        limit = min(n, pos + window)
        text = bytes(body[pos:limit]).decode("utf-8", "ignore" if limit < n else "strict")
        plots, i, size = [], 0, len(text)
        while i < size:
            while i < size and text[i] in " \n\r\t,":
                i += 1
            if i >= size or text[i] == "]":
                break
            try:
                plot, i_next = decoder.raw_decode(text, i)
            except ValueError:
                if limit < n:
                    break  # the window ends inside this object
                raise
            plots.append(plot)
            i = i_next
        if plots or limit >= n or (i < size and text[i] == "]"):
            return plots, pos + len(text[:i].encode())
        window *= 4


def _parse_whole(body: bytes | bytearray) -> PlotCounts:
    return plots_from_body(check_success("get_plots", json.loads(body)))  # success: false keeps Chia's error


def plots_from_body(data: dict) -> PlotCounts:
    """The counts of a decoded get_plots body (the daemon transport decodes it already)."""
    tally = _Tally()
    tally.add_all(data["plots"])
    return tally.result(data)


@dataclass(frozen=True)
class HarvesterSnapshot:
    plots: PlotCounts | None  # None through the daemon while the list is too large or waits for a count
    list_too_large: int | None  # the reply's estimated bytes, while the list is skipped as too large
    directories: int | None
    connections: tuple[int, ...]
    version: str | None
    list_unanswered: bool = False  # skipped because a list asked for with no count known never came


class HarvesterCollector(Collector[HarvesterSnapshot]):
    name = "harvester"
    service = "harvester"

    def __init__(self, config, events: HarvesterEvents | None = None, clock=None,
                 message_limit: int | None = None) -> None:
        super().__init__(config)
        self.events = events
        self._plots: PlotCounts | None = None
        self._plots_at = 0.0  # when the list was last asked for, whether or not it came
        self._plots_error: RpcError | None = None  # why the last attempt failed
        self._monotonic = clock or time.monotonic
        # The daemon transport: the largest reply that can come through (None over HTTPS).
        self.message_limit = message_limit
        self._plot_bytes: float | None = None  # bytes a plot took in the last list through the daemon
        self._listed: tuple[int, int] | None = None  # plots, and file names, of the last list that came
        self._blind_unanswered = False  # a list asked for with no count known never came
        self.too_large: int | None = None  # the estimate, while the list is skipped as too large
        self._warned = False

    def known_plot_count(self) -> int | None:
        """Entries a get_plots reply would hold: the plots of the last farming_info (or of the
        last list), and the file names the last list could not open or find."""
        reported = self.events.total_plots if self.events is not None else None
        if self._listed is None:
            return reported
        listed, named = self._listed
        return (listed if reported is None else reported) + named

    def estimated_reply_bytes(self, count: int) -> int:
        return int(count * (self._plot_bytes or PLOT_BYTES_GUESS)) + 1024

    def plot_list_waits(self) -> bool:
        """Whether, through the daemon, the list is not asked for now: its reply would likely be
        over the limit (``too_large`` says by how much), or no count tells yet."""
        if self.message_limit is None:
            return False
        count = self.known_plot_count()
        if count is None:
            self._set_too_large(None)
            return self._blind_unanswered
        self._blind_unanswered = False
        estimate = self.estimated_reply_bytes(count)
        self._set_too_large(estimate if estimate > self.message_limit * LIMIT_SHARE else None)
        return self.too_large is not None

    def _set_too_large(self, estimate: int | None) -> None:
        if (estimate is None) == (self.too_large is None):
            self.too_large = estimate
            return
        self.too_large = estimate
        if estimate is None:
            log.info("harvester: the plot list fits through the daemon again; asking for it")
        elif not self._warned:
            self._warned = True
            log.warning("harvester: not asking for the plot list (get_plots): about %d plots make a reply of about "
                        "%d bytes, and the daemon relays at most %d (daemon_max_message_size in config.yaml, or "
                        "events.max_message_bytes if smaller); a larger one would drop the harvester's link to the "
                        "daemon. Plot counts stay in chia_harvester_total_plots; --transport https lists them all",
                        self.known_plot_count(), estimate, self.message_limit)
        else:
            log.info("harvester: the plot list is too large for the daemon again (about %d bytes)", estimate)

    def plots_outdated(self) -> bool:
        if self._plots is None and self._plots_error is None:
            return True
        age = self._monotonic() - self._plots_at
        if age > PLOTS_MAX_AGE:
            return True
        if age < PLOTS_MIN_GAP:  # also after a failed attempt: a harvester too slow to answer gets a rest
            return False
        reported = self.events.total_plots if self.events is not None else None
        # Without a count from the event stream, a change cannot be seen: recount every gap.
        return self._plots is None or reported is None or reported != self._plots.total

    async def fetch(self, rpc) -> HarvesterSnapshot:
        # The cheap call every poll makes decides whether the harvester answers at all (most polls
        # do not fetch the plot list).
        connections = await rpc.call("get_connections", parse=parse_connection_types)
        if (self.message_limit is not None and self.events is not None and self.known_plot_count() is None
                and FARMER in connections and not self._blind_unanswered and self.plots_outdated()):
            await self.events.wait_for_count(min(PLOTS_COUNT_WAIT, self.config.timeout / 4))
        waits = self.plot_list_waits()
        if self.too_large is not None:
            self._plots, self._plots_error = None, None  # a list of fewer plots than there are misleads
        elif not waits and self.plots_outdated():
            await self._fetch_plots(rpc)
        if self._plots is None and not waits:
            assert self._plots_error is not None
            raise self._plots_error  # no list yet: the poll fails until one comes
        return HarvesterSnapshot(
            plots=self._plots,
            list_too_large=self.too_large,
            list_unanswered=waits and self.too_large is None,
            directories=await optional(rpc.call("get_plot_directories", parse=lambda b: len(b["directories"]))),
            connections=connections,
            version=await optional(rpc.call("get_version", parse=parse_version)),
        )

    async def _fetch_plots(self, rpc) -> None:
        blind = self.message_limit is not None and self.known_plot_count() is None
        self._plots_at = self._monotonic()
        # Stands until the answer comes: a poll that times out mid-list leaves it behind.
        self._plots_error = RpcError("timeout", "get_plots", "no answer within the poll's timeout")
        try:
            self._plots = await rpc.call_raw("get_plots", parse=parse_plots, parse_body=plots_from_body)
            self._plots_error = None
        except RpcError as e:  # counted with its outcome; the last list, if any, stays shown
            self._plots_error = e
        finally:
            # Unanswered through the daemon with no count to go by (a timeout: perhaps a reply too
            # large for the daemon to relay), or a reply over the exporter's own message limit
            # (it closed the WebSocket): not asked for blind again, so as not to drop
            # the harvester's link, or every collector's, at each gap.
            self._blind_unanswered = blind and (isinstance(self._plots_error, ReplyTooLarge) or (
                self._plots_error is not None and self._plots_error.outcome == "timeout"))
        if self._plots_error is None and self._plots is not None:
            named = self._plots.failed_to_open + self._plots.not_found
            self._listed = (self._plots.total, named)
            entries = self._plots.total + named
            if self.message_limit is not None and entries and rpc.last_reply_bytes:
                self._plot_bytes = rpc.last_reply_bytes / entries  # StreamRpc's: the daemon transport's

    def render(self, snap: HarvesterSnapshot) -> Iterator[Metric]:
        note = self.cached_note()
        if snap.list_too_large is not None or snap.list_unanswered:
            yield gauge("chia_harvester_plot_list_skipped",
                        "1 while the plot list (get_plots) is not asked for: through the daemon (--transport daemon) "
                        f"its reply would be over the {self.message_limit} bytes that can come through, which would drop "
                        "a link to the daemon, or a list asked for before any plot count was known never came. The "
                        "get_plots families are missing meanwhile; chia_harvester_total_plots (farming_info) still "
                        "counts the plots." + note, 1.0)
        if snap.plots is not None:
            yield from self.render_plots(snap.plots)
        if snap.directories is not None:
            yield gauge("chia_harvester_plot_directories", "Plot directories configured (get_plot_directories)." + note, snap.directories)
        yield connection_counts("chia_harvester_connections", "Harvester peers by node type (get_connections)." + note, snap.connections)
        yield from version_info("harvester", snap.version)

    def render_plots(self, p: PlotCounts) -> Iterator[Metric]:
        listed = f" (recounted when the plot count changes, at most every {PLOTS_MIN_GAP:g}s, and hourly)"
        labels = ["k_size", "plot_format", "compression_level", "pool_type"]
        yield labelled("chia_harvester_plots", "Plots this harvester farms, by k-size, format (v1, v2), compression and "
                       "pool type (og, pool) (get_plots)." + listed, labels, ((k, n) for k, n, _ in p.by_kind))
        yield labelled("chia_harvester_plot_size_bytes", "Size on disk of this harvester's plots, in bytes (get_plots file_size)." + listed,
                       labels, ((k, size) for k, _, size in p.by_kind))
        yield labelled("chia_harvester_v2_plots", "v2 plots by strength (get_plots size = 0x80 | strength)." + listed,
                       ["strength"], (((str(s),), n) for s, n in p.by_strength))
        yield gauge("chia_harvester_plots_failed_to_open", "Plot files that raised an error when the harvester loaded them, not farmed; "
                    "retried every plots_refresh_parameter.retry_invalid_seconds (get_plots failed_to_open_filenames)." + listed,
                    p.failed_to_open)
        # Chia fills not_found_filenames from its plot manager's no_key_filenames: the name is kept
        # (the metric contract has it), the HELP says what it counts.
        yield gauge("chia_harvester_plots_not_found", "Plot files not farmed because their farmer or pool public key is not one of "
                    "this farm's keys (get_plots not_found_filenames, Chia's no_key_filenames; not missing files)." + listed,
                    p.not_found)


class HarvesterEvents(EventState):
    origin = "chia_harvester"
    commands = frozenset({"farming_info"})

    def __init__(self) -> None:
        self.lookups = Histogram(LOOKUP_BUCKETS)
        self.eligible = 0
        self.proofs = 0
        self.v2_partial_proofs = 0
        self.total_plots: int | None = None
        self.counted = asyncio.Event()  # set once a farming_info has told the plot count

    async def wait_for_count(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.counted.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def handle(self, command: str, data: dict, now: float) -> None:
        seconds = as_float(data["time"])
        eligible, proofs, total = as_int(data["eligible_plots"]), as_int(data["found_proofs"]), as_int(data["total_plots"])
        self.lookups.observe(seconds)
        self.eligible += eligible
        self.proofs += proofs
        # v2 plots answer with partial proofs the farmer completes; Chia before 2.7 sends no such field.
        self.v2_partial_proofs += as_int(data.get("found_v2_partial_proofs", 0))
        self.total_plots = total  # the collector's next poll recounts when this differs from its list
        self.counted.set()

    def render(self, now: float) -> Iterator[Metric]:
        yield histogram_family("chia_harvester_lookup_duration_seconds",
                               "Time this harvester took to look up proofs for a signage point (farming_info time); "
                               "Chia warns over 8 s, and past the infusion point (about 28 s) a proof is lost.", rows=[((), self.lookups)])
        yield counter_family("chia_harvester_plots_eligible", "Plots that passed the plot filter (farming_info eligible_plots).",
                             rows=[((), self.eligible)])
        yield counter_family("chia_harvester_proofs_found", "Proofs this harvester found in v1 plots (farming_info found_proofs).",
                             rows=[((), self.proofs)])
        yield counter_family("chia_harvester_v2_partial_proofs_found",
                             "Partial proofs this harvester found in v2 plots, for the farmer to complete "
                             "(farming_info found_v2_partial_proofs).", rows=[((), self.v2_partial_proofs)])
        if self.total_plots is not None:
            yield gauge("chia_harvester_total_plots", "Plots the harvester reported in its last lookup (farming_info total_plots).",
                        self.total_plots)


def make_event_states(config, exporter) -> list[EventState]:
    return [HarvesterEvents()]


def daemon_message_limit(config) -> int | None:
    """The largest get_plots reply that reaches the exporter through the daemon: the daemon's
    ``daemon_max_message_size`` (config.yaml, else Chia's default) or the exporter's own
    ``events.max_message_bytes``, whichever is smaller (a message over the latter drops the shared
    socket, every collector's calls and the events with it). None over HTTPS: no limit but
    ``max_response_bytes``."""
    if config.transport != "daemon":
        return None
    return min(config.daemon_max_message_size, config.events.max_message_bytes)


def make_collector(config, states: list[EventState]) -> HarvesterCollector:
    return HarvesterCollector(config.collectors["harvester"], next(s for s in states if isinstance(s, HarvesterEvents)),
                              message_limit=daemon_message_limit(config))
