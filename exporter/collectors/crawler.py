"""Crawler (seeder): how many peers the network has, and on which versions.

Polls ``get_peer_counts`` where config.yaml has a crawler section, shown only once the crawler has
answered (only network operators run one: elsewhere its refused port is "absent", not failing),
and consumes ``crawl_batch_completed`` events, which carry the same counts; the newer of the two
is shown (an event that came after the poll asked, not one from before a WebSocket outage).
Example::

    chia_crawler_peers{kind="reliable"} 512.0
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from prometheus_client.core import Metric

from exporter.collectors.base import Collector, EventState, as_int, labelled

KINDS = {"total_last_5_days": "total_last_5_days", "reliable_nodes": "reliable",
         "ipv4_last_5_days": "ipv4_last_5_days", "ipv6_last_5_days": "ipv6_last_5_days"}
MAX_VERSIONS = 50  # the most common versions; the rest add up under "other"


@dataclass(frozen=True)
class PeerCounts:
    kinds: tuple[tuple[str, int], ...]
    versions: tuple[tuple[str, int], ...]

    @classmethod
    def parse(cls, body: dict) -> PeerCounts:
        counts = body["peer_counts"]
        kinds = tuple((ours, as_int(counts[theirs])) for theirs, ours in KINDS.items() if theirs in counts)
        versions = sorted(((str(v), as_int(n)) for v, n in (counts.get("versions") or {}).items()), key=lambda x: (-x[1], x[0]))
        if len(versions) > MAX_VERSIONS:
            versions = versions[:MAX_VERSIONS] + [("other", sum(n for _, n in versions[MAX_VERSIONS:]))]
        return cls(kinds, tuple(versions))


@dataclass(frozen=True)
class PolledCounts:
    counts: PeerCounts
    asked_at: int  # CrawlerEvents.batches when the poll asked


def render_counts(counts: PeerCounts, note: str = "") -> Iterator[Metric]:
    yield labelled("chia_crawler_peers", "Peers the crawler knows, by kind (get_peer_counts, crawl_batch_completed)." + note,
                   ["kind"], (((k,), n) for k, n in counts.kinds))
    yield labelled("chia_crawler_peer_versions", "Peers seen in the last 5 days by Chia version (get_peer_counts versions)." + note,
                   ["version"], (((v,), n) for v, n in counts.versions))


class CrawlerEvents(EventState):
    origin = "chia_crawler"
    commands = frozenset({"crawl_batch_completed"})

    def __init__(self) -> None:
        self.latest: PeerCounts | None = None
        self.batches = 0  # batches received; the latest is the batches-th

    def handle(self, command: str, data: dict, now: float) -> None:
        self.latest = PeerCounts.parse(data)
        self.batches += 1

    def render(self, now: float) -> Iterator[Metric]:
        return iter(())  # shown by the collector, or on its own when no collector polls (below)


class CrawlerCollector(Collector[PolledCounts]):
    name = "crawler"
    service = "crawler"

    def __init__(self, config, events: CrawlerEvents | None = None) -> None:
        super().__init__(config)
        self.events = events

    async def fetch(self, rpc) -> PolledCounts:
        asked_at = self.events.batches if self.events is not None else 0
        return PolledCounts(await rpc.call("get_peer_counts", parse=PeerCounts.parse), asked_at)

    def render(self, snap: PolledCounts) -> Iterator[Metric]:
        counts = snap.counts
        # A crawl batch that finished after the poll asked is newer than the poll.
        if self.events is not None and self.events.latest is not None and self.events.batches > snap.asked_at:
            counts = self.events.latest
        yield from render_counts(counts, self.cached_note())


class CrawlerOnlyEvents(CrawlerEvents):
    """With the collector off, the events alone feed the families."""

    def render(self, now: float) -> Iterator[Metric]:
        if self.latest is not None:
            yield from render_counts(self.latest)


def make_event_states(config, exporter) -> list[EventState]:
    return [CrawlerEvents() if config.collectors["crawler"].enabled else CrawlerOnlyEvents()]


def make_collector(config, states) -> CrawlerCollector:
    return CrawlerCollector(config.collectors["crawler"], next(s for s in states if isinstance(s, CrawlerEvents)))
