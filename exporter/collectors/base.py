"""The shape every collector has.

A collector knows one Chia service: ``fetch`` polls it and returns a typed, frozen snapshot;
``render`` turns a snapshot into fresh metric families and is pure (no I/O, no state). A collector
that also consumes daemon events keeps an :class:`EventState` whose ``render`` is just as pure.
Nothing outside the collector module knows any Chia field.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Awaitable, ClassVar, Generic, Iterable, Iterator, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from exporter.config import CollectorConfig
from exporter.rpc import RpcError

S = TypeVar("S")
T = TypeVar("T")

# Chia's NodeType numbers (chia/protocols/outbound_message.py).
NODE_TYPES = {1: "full_node", 2: "harvester", 3: "farmer", 4: "timelord", 5: "introducer",
              6: "wallet", 7: "data_layer", 8: "solver"}


class Collector(ABC, Generic[S]):
    """One Chia service's polled metrics."""

    name: ClassVar[str]
    #: the service whose endpoints it may call (a key of rpc.READ_ONLY_ENDPOINTS)
    service: ClassVar[str]

    def __init__(self, config: CollectorConfig) -> None:
        self.config = config

    @abstractmethod
    async def fetch(self, rpc: Any) -> S:
        """Poll the service. Raises RpcError when the poll as a whole failed."""

    @abstractmethod
    def render(self, snapshot: S) -> Iterable[Metric]:
        """Fresh metric families from a snapshot; no I/O, no side effects."""

    def wants_wallet_ui_events(self, snapshot: S) -> bool:
        """Whether this snapshot means events sent only to wallet_ui matter (the farmer's
        failed_partial, once it has a plot NFT on a pool)."""
        return False

    def cached_note(self) -> str:
        return f" (polled every {self.config.interval:g}s)"


async def optional(call: Awaitable[T]) -> T | None:
    """The result of a call whose failure loses only its own families (already counted)."""
    try:
        return await call
    except RpcError:
        return None


def gauge(name: str, doc: str, value: float | None = None, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    """A gauge family with one sample, or an empty family to add samples to."""
    if labels:
        fam = GaugeMetricFamily(name, doc, labels=list(labels))
        if value is not None:
            fam.add_metric(list(labels.values()), value)
        return fam
    return GaugeMetricFamily(name, doc, value=value)


def labelled(name: str, doc: str, labels: list[str], rows: Iterable[tuple[Iterable[str], float]]) -> GaugeMetricFamily:
    return labelled_dicts(name, doc, labels, ((dict(zip(labels, map(str, values))), value) for values, value in rows))


def labelled_dicts(name: str, doc: str, labels: list[str], rows: Iterable[tuple[dict[str, str], float]]) -> GaugeMetricFamily:
    """Like :func:`labelled`, with each row's labels already a dict: one dict can serve every
    family of the same object (a farm's harvesters appear in nine families)."""
    fam = GaugeMetricFamily(name, doc, labels=labels)
    # The samples are made here rather than by add_metric: a big farm's scrape makes tens of
    # thousands, and this is what a render costs beyond generate_latest itself.
    append = fam.samples.append
    for label_dict, value in rows:
        append(Sample(name, label_dict, value))
    return fam


def connection_counts(name: str, doc: str, node_types: Iterable[int]) -> GaugeMetricFamily:
    """Peers by node_type, every known type present (0 when none) so that absence is visible."""
    counts = dict.fromkeys(NODE_TYPES.values(), 0)
    for t in node_types:
        counts[NODE_TYPES.get(t, "unknown")] = counts.get(NODE_TYPES.get(t, "unknown"), 0) + 1
    return labelled(name, doc, ["node_type"], (((k,), v) for k, v in counts.items()))


def version_info(component: str, version: str | None) -> Iterator[GaugeMetricFamily]:
    if version:
        yield gauge("chia_version_info", "Version of each Chia component (get_version RPC).", 1,
                    {"component": component, "version": version})


def as_int(value: Any) -> int:
    """An integer field; bools and missing values are shape errors."""
    if isinstance(value, bool) or value is None:
        raise TypeError(f"expected an integer, got {value!r}")
    return int(value)


def as_float(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


class EventState(ABC):
    """What one service's daemon events feed: counters, histograms and gauges that live as long as
    the exporter, across WebSocket reconnects and daemon restarts.

    ``handle`` may raise KeyError, TypeError or ValueError on a malformed event: the dispatcher
    counts and logs it and carries on. ``render`` is pure, like a collector's.
    """

    origin: ClassVar[str]  # the daemon's name of the sending service, e.g. "chia_farmer"
    commands: ClassVar[frozenset[str]]  # the commands this state consumes

    @abstractmethod
    def handle(self, command: str, data: dict, now: float) -> None:
        """Fold one event into the state."""

    @abstractmethod
    def render(self, now: float) -> Iterable[Metric]:
        """Fresh families from the state."""


# Buckets that resolve what farmers care about: warnings start at 1-2 s, over 5 s a proof is at
# risk, Chia's harvester itself warns over 8 s, and past the infusion point (3 signage points,
# about 28 s) it is lost.
LOOKUP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 8.0, 10.0, 30.0)
# Block validation on a healthy node is well under a second; a slow disk or CPU shows as seconds.
VALIDATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """A cumulative histogram fed by events, rendered as a fresh HistogramMetricFamily."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
                break
        self.sum += value
        self.count += 1

    def buckets(self) -> list[tuple[str, float]]:
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts):
            running += n
            out.append((_bound(bound), running))
        out.append(("+Inf", self.count))
        return out


def _bound(bound: float) -> str:
    return repr(float(bound))


def histogram_family(name: str, doc: str, labels: list[str] | None = None,
                     rows: Iterable[tuple[Iterable[str], Histogram]] = ()) -> Metric:
    from prometheus_client.core import HistogramMetricFamily

    fam = HistogramMetricFamily(name, doc, labels=labels or [])
    for values, h in rows:
        fam.add_metric([str(v) for v in values], h.buckets(), h.sum)
    return fam


def counter_family(name: str, doc: str, labels: list[str] | None = None,
                   rows: Iterable[tuple[Iterable[str], float]] = ()) -> Metric:
    from prometheus_client.core import CounterMetricFamily

    fam = CounterMetricFamily(name, doc, labels=labels or [])
    for values, value in rows:
        fam.add_metric([str(v) for v in values], value)
    return fam
