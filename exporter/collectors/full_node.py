"""Full node: sync state, peak, netspace, mempool, fees, connections, database size.

Polls ``get_blockchain_state``, ``get_connections``, ``get_fee_estimate``, ``get_network_info``,
``get_version`` (and ``get_block_record_by_height`` when the peak is not a transaction block), and
``get_block_count_metrics``, a scan of the node's database, every ``BLOCK_COUNTS_GAP``. Only
``get_blockchain_state`` decides whether the poll succeeds; every other call gets a share of the
poll's time left and, slow or failing, loses only its own families. Example::

    # TYPE chia_full_node_peak_height gauge
    chia_full_node_peak_height 6.0
    chia_full_node_connections{node_type="farmer"} 1.0
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

from prometheus_client.core import Metric

from exporter.collectors.base import (
    VALIDATION_BUCKETS, Collector, EventState, Histogram, as_bool, as_float, as_int, connection_counts, counter_family,
    gauge, histogram_family, labelled, version_info,
)
from exporter.scheduler import optional_within

FEE_TARGETS = (60, 300, 900)  # seconds: the confirmation times the fee estimate is asked for
# get_fee_estimate answers uint64(rate × cost) for the cost it is asked about: for a cost of 1 every
# rate under 1 mojo per cost reads 0. Asked for a large cost (Chia takes any uint64) and divided
# back, the rate keeps 9 decimals; Chia's top rate (40,000 mojos per cost) times it is far from 2^64.
FEE_ESTIMATE_COST = 1_000_000_000
# get_block_count_metrics counts the main chain's blocks and the hints with SQL count(*): seconds on
# a mainnet database on a slow disk, for numbers that move slowly. Asked at most this often (also
# after a failure, so that a node too slow to answer is not asked again at every poll).
BLOCK_COUNTS_GAP = 600.0
# Each call after get_blockchain_state takes scheduler.SECONDARY_SHARE of the poll's time left; the
# block counts come last and may take nearly all of what is left.
LAST_SHARE = 0.9
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class BlockchainState:
    initialized: bool  # False while the node is still loading its database: only sync is known
    synced: bool
    sync_mode: bool
    sync_tip_height: int
    sync_progress_height: int
    peak_height: int | None
    peak_timestamp: float | None  # set when the peak is a transaction block
    # Of a peak that is not a transaction block (timestamp and prev_transaction_block_hash null):
    # the height of the last transaction block before it.
    prev_transaction_block_height: int | None
    difficulty: int
    sub_slot_iters: int
    space: int
    average_block_time: float | None
    mempool_size: int
    mempool_cost: int
    mempool_fees: int | None  # absent while the node starts
    mempool_max_total_cost: int
    mempool_min_fee: float | None
    block_max_cost: int | None

    @classmethod
    def parse(cls, body: dict) -> BlockchainState:
        s = body["blockchain_state"]
        sync, peak = s["sync"], s.get("peak")
        min_fees = s.get("mempool_min_fees") or {}
        return cls(
            initialized=s.get("genesis_challenge_initialized") is not False,
            synced=as_bool(sync["synced"]),
            sync_mode=as_bool(sync["sync_mode"]),
            sync_tip_height=as_int(sync["sync_tip_height"] or 0),  # null before a sync target is known
            sync_progress_height=as_int(sync["sync_progress_height"]),
            peak_height=as_int(peak["height"]) if peak else None,
            peak_timestamp=as_float(peak["timestamp"]) if peak and peak.get("timestamp") else None,
            prev_transaction_block_height=(as_int(peak["prev_transaction_block_height"])
                                           if peak and peak.get("timestamp") is None else None),
            difficulty=as_int(s["difficulty"]),
            sub_slot_iters=as_int(s["sub_slot_iters"]),
            space=as_int(s["space"]),
            average_block_time=as_float(s["average_block_time"]) if s.get("average_block_time") is not None else None,
            mempool_size=as_int(s["mempool_size"]),
            mempool_cost=as_int(s["mempool_cost"]),
            mempool_fees=as_int(s["mempool_fees"]) if s.get("mempool_fees") is not None else None,
            mempool_max_total_cost=as_int(s["mempool_max_total_cost"]),
            mempool_min_fee=(as_float(min_fees["cost_5000000"]) if "cost_5000000" in min_fees else None),
            block_max_cost=as_int(s["block_max_cost"]) if s.get("block_max_cost") is not None else None,
        )


@dataclass(frozen=True)
class BlockCounts:
    compact_blocks: int
    uncompact_blocks: int
    hint_count: int

    @classmethod
    def parse(cls, body: dict) -> BlockCounts:
        m = body["metrics"]
        return cls(as_int(m["compact_blocks"]), as_int(m["uncompact_blocks"]), as_int(m["hint_count"]))


@dataclass(frozen=True)
class NetworkInfo:
    network_name: str
    network_prefix: str

    @classmethod
    def parse(cls, body: dict) -> NetworkInfo:
        return cls(str(body["network_name"]), str(body["network_prefix"]))


def parse_connection_types(body: dict) -> tuple[int, ...]:
    return tuple(as_int(c["type"]) for c in body["connections"])


def parse_version(body: dict) -> str:
    return str(body["version"])


@dataclass(frozen=True)
class FeeEstimates:
    by_target: tuple[tuple[int, float], ...]  # (target seconds, mojos per cost)
    last_block_fee_rate: float  # fees / cost of the last transaction block; 0 for an empty one


def parse_fee_estimates(body: dict) -> FeeEstimates:
    rates = (as_float(e) / FEE_ESTIMATE_COST for e in body["estimates"])
    return FeeEstimates(tuple(zip((as_int(t) for t in body["target_times"]), rates)), as_float(body["fee_rate_last_block"]))


def parse_timestamp(body: dict) -> float:
    return as_float(body["block_record"]["timestamp"])


@dataclass(frozen=True)
class FullNodeSnapshot:
    state: BlockchainState
    peak_timestamp: float | None
    connections: tuple[int, ...] | None
    fee_estimates: FeeEstimates | None
    block_counts: BlockCounts | None
    network: NetworkInfo | None
    version: str | None
    database_sizes: tuple[tuple[str, int], ...]


class FullNodeCollector(Collector[FullNodeSnapshot]):
    name = "full_node"
    service = "full_node"

    def __init__(self, config, database: Path | None = None, clock=None) -> None:
        super().__init__(config)
        # Only a database on this machine can be measured: not when the node is remote.
        self.database = database if config.host in LOCAL_HOSTS else None
        self._monotonic = clock or time.monotonic
        self._block_counts: BlockCounts | None = None
        self._block_counts_asked: float | None = None

    async def fetch(self, rpc) -> FullNodeSnapshot:
        state = await rpc.call("get_blockchain_state", parse=BlockchainState.parse)
        peak_timestamp = state.peak_timestamp
        if peak_timestamp is None and state.prev_transaction_block_height is not None:
            # The peak is not a transaction block: its timestamp is that of the last one before it.
            peak_timestamp = await optional_within(rpc.call(
                "get_block_record_by_height", {"height": state.prev_transaction_block_height}, parse=parse_timestamp))
        connections = await optional_within(rpc.call("get_connections", parse=parse_connection_types))
        fee_estimates = await optional_within(rpc.call(
            "get_fee_estimate", {"target_times": list(FEE_TARGETS), "cost": FEE_ESTIMATE_COST}, parse=parse_fee_estimates))
        network = await optional_within(rpc.call("get_network_info", parse=NetworkInfo.parse))
        version = await optional_within(rpc.call("get_version", parse=parse_version))
        return FullNodeSnapshot(
            state=state,
            peak_timestamp=peak_timestamp,
            connections=connections,
            fee_estimates=fee_estimates,
            block_counts=await self.block_counts(rpc, state),
            network=network,
            version=version,
            database_sizes=database_sizes(self.database),
        )

    async def block_counts(self, rpc, state: BlockchainState) -> BlockCounts | None:
        """The last counts, asked again once they are BLOCK_COUNTS_GAP old. A failed attempt drops
        them until the next one; a node still loading its database is not asked."""
        now = self._monotonic()
        if state.initialized and (self._block_counts_asked is None or now - self._block_counts_asked >= BLOCK_COUNTS_GAP):
            self._block_counts_asked = now
            self._block_counts = await optional_within(
                rpc.call("get_block_count_metrics", parse=BlockCounts.parse), LAST_SHARE)
        return self._block_counts

    def render(self, snap: FullNodeSnapshot) -> Iterator[Metric]:
        s = snap.state
        note = self.cached_note()
        yield gauge("chia_full_node_synced", "1 when the full node is synced (get_blockchain_state sync.synced)." + note, float(s.synced))
        yield gauge("chia_full_node_sync_mode", "1 while the full node is in long sync (sync.sync_mode)." + note, float(s.sync_mode))
        yield gauge("chia_full_node_sync_tip_height", "Height of the chain tip the node is syncing to (sync.sync_tip_height)." + note, s.sync_tip_height)
        yield gauge("chia_full_node_sync_progress_height", "Height the long sync has reached (sync.sync_progress_height)." + note, s.sync_progress_height)
        # A node still loading its database answers with zeros for difficulty, space and the
        # mempool: it shows as not synced, never as a netspace of 0 bytes.
        if s.initialized:
            yield from self._render_chain(snap, note)
        if snap.connections is not None:
            yield connection_counts("chia_full_node_connections", "Full node peers by node type (get_connections)." + note,
                                    snap.connections)
        if snap.fee_estimates is not None:
            fees = snap.fee_estimates
            yield labelled("chia_full_node_fee_estimate_mojos_per_cost",
                           "Estimated fee per cost, in mojos, to be included within target_seconds (get_fee_estimate "
                           f"estimates, asked for a cost of {FEE_ESTIMATE_COST:,} and divided by it)." + note,
                           ["target_seconds"], (((str(t),), e) for t, e in fees.by_target))
            yield gauge("chia_full_node_last_block_fee_rate_mojos_per_cost",
                        "Fees per cost, in mojos, paid in the last transaction block at or below the peak; 0 for one "
                        "without transactions (get_fee_estimate fee_rate_last_block)." + note, fees.last_block_fee_rate)
        if snap.block_counts is not None:
            b = snap.block_counts
            counted = f" (counted at most every {BLOCK_COUNTS_GAP:g}s: a scan of the node's database)"
            yield gauge("chia_full_node_compact_blocks", "Blocks stored with compact proofs (get_block_count_metrics)." + counted, b.compact_blocks)
            yield gauge("chia_full_node_uncompact_blocks", "Blocks stored with uncompact proofs (get_block_count_metrics)." + counted, b.uncompact_blocks)
            yield gauge("chia_full_node_hints", "Hints stored in the node's database (get_block_count_metrics hint_count)." + counted, b.hint_count)
        if snap.database_sizes:
            yield labelled("chia_full_node_database_size_bytes",
                           "Size of the node's database files on this machine (db, wal, shm)." + note,
                           ["file"], (((f,), size) for f, size in snap.database_sizes))
        if snap.network is not None:
            yield gauge("chia_network_info", "The network the node is on (get_network_info).", 1,
                        {"network_name": snap.network.network_name, "network_prefix": snap.network.network_prefix})
        yield from version_info("full_node", snap.version)

    def _render_chain(self, snap: FullNodeSnapshot, note: str) -> Iterator[Metric]:
        s = snap.state
        if s.peak_height is not None:
            yield gauge("chia_full_node_peak_height", "Height of the node's peak block (peak.height)." + note, s.peak_height)
        if snap.peak_timestamp is not None:
            yield gauge("chia_full_node_peak_timestamp_seconds",
                        "Unix time of the last transaction block at or below the peak (peak.timestamp; for a peak that is "
                        "not a transaction block, get_block_record_by_height at its prev_transaction_block_height)." + note,
                        snap.peak_timestamp)
        yield gauge("chia_full_node_difficulty", "Current difficulty (get_blockchain_state difficulty)." + note, s.difficulty)
        yield gauge("chia_full_node_sub_slot_iters", "Current sub-slot iterations (sub_slot_iters)." + note, s.sub_slot_iters)
        yield gauge("chia_full_node_netspace_bytes", "Estimated netspace in bytes (get_blockchain_state space)." + note, s.space)
        if s.average_block_time is not None:
            yield gauge("chia_full_node_average_block_time_seconds",
                        "Average seconds per block over the last day, from the timestamps of transaction blocks 4608 heights apart, "
                        "in whole seconds (average_block_time)." + note, s.average_block_time)
        yield gauge("chia_full_node_mempool_items", "Spend bundles in the mempool (mempool_size)." + note, s.mempool_size)
        yield gauge("chia_full_node_mempool_cost", "Total CLVM cost of the mempool (mempool_cost)." + note, s.mempool_cost)
        if s.mempool_fees is not None:
            yield gauge("chia_full_node_mempool_fees_mojos", "Total fees in the mempool, in mojos (1 XCH = 10^12 mojos)." + note, s.mempool_fees)
        yield gauge("chia_full_node_mempool_max_total_cost", "Maximum total cost the mempool holds (mempool_max_total_cost)." + note, s.mempool_max_total_cost)
        if s.mempool_min_fee is not None:
            yield gauge("chia_full_node_mempool_min_fee_mojos_per_cost",
                        "Minimum fee per cost to enter the mempool for a 5,000,000-cost spend (mempool_min_fees.cost_5000000)." + note,
                        s.mempool_min_fee)
        if s.block_max_cost is not None:
            yield gauge("chia_full_node_block_max_cost", "Maximum CLVM cost of a block (block_max_cost)." + note, s.block_max_cost)


def database_sizes(db: Path | None) -> tuple[tuple[str, int], ...]:
    """Sizes of the SQLite database and its write-ahead files, for those that exist."""
    if db is None:
        return ()
    sizes = []
    for label, suffix in (("db", ""), ("wal", "-wal"), ("shm", "-shm")):
        try:
            sizes.append((label, os.stat(f"{db}{suffix}").st_size))
        except OSError:
            continue
    return tuple(sizes)


def make_collector(config, states) -> FullNodeCollector:
    return FullNodeCollector(config.collectors["full_node"], config.full_node_database)


class FullNodeEvents(EventState):
    """Blocks, reorgs and signage points as the node pushes them, and a fresher sync state."""

    origin = "chia_full_node"
    commands = frozenset({"block", "signage_point", "get_blockchain_state"})

    def __init__(self, exporter=None) -> None:
        self.exporter = exporter
        self.blocks = 0
        self.transaction_blocks = 0
        self.validation = Histogram(VALIDATION_BUCKETS)
        self.pre_validation = Histogram(VALIDATION_BUCKETS)
        self.last_block_cost: int | None = None
        self.last_block_fees: int | None = None
        self.reorgs = 0
        self.last_reorg_depth: int | None = None
        self.signage_points = 0

    def handle(self, command: str, data: dict, now: float) -> None:
        if command == "block":
            if "height" not in data:
                return  # the empty block event that ends a long sync carries nothing to count
            height, fork = as_int(data["height"]), as_int(data["fork_height"])
            validation, pre_validation = as_float(data["validation_time"]), as_float(data["pre_validation_time"])
            is_tx = data.get("transaction_block") is True
            cost = as_int(data["block_cost"]) if is_tx and data.get("block_cost") is not None else None
            fees = as_int(data["block_fees"]) if is_tx and data.get("block_fees") is not None else None
            self.blocks += 1
            self.validation.observe(validation)
            self.pre_validation.observe(pre_validation)
            if is_tx:
                self.transaction_blocks += 1
                self.last_block_cost, self.last_block_fees = cost, fees
            depth = height - fork - 1  # blocks of the old chain that this one replaced
            if depth > 0:
                self.reorgs += 1
                self.last_reorg_depth = depth
        elif command == "signage_point":
            self.signage_points += 1
        elif command == "get_blockchain_state":
            state = BlockchainState.parse(data)  # a malformed event raises before anything changes
            runner = self.exporter.runner("full_node") if self.exporter is not None else None
            if runner is not None and runner.snapshot is not None and runner.fresh():
                # The node pushes its state on every new peak: show it now, not at the next poll.
                runner.snapshot = replace(runner.snapshot, state=state,
                                          peak_timestamp=state.peak_timestamp or runner.snapshot.peak_timestamp)

    def render(self, now: float) -> Iterator[Metric]:
        yield counter_family("chia_full_node_blocks", "Blocks the node added to its chain (block event).", rows=[((), self.blocks)])
        yield counter_family("chia_full_node_transaction_blocks", "Transaction blocks the node added (block event with transaction_block).",
                             rows=[((), self.transaction_blocks)])
        yield histogram_family("chia_full_node_block_validation_duration_seconds",
                               "Time the node took to validate a block (block event validation_time).", rows=[((), self.validation)])
        yield histogram_family("chia_full_node_block_pre_validation_duration_seconds",
                               "Time the node took to pre-validate a block (block event pre_validation_time).",
                               rows=[((), self.pre_validation)])
        if self.last_block_cost is not None:
            yield gauge("chia_full_node_last_block_cost", "CLVM cost of the last transaction block (block event block_cost).",
                        self.last_block_cost)
        if self.last_block_fees is not None:
            yield gauge("chia_full_node_last_block_fees_mojos",
                        "Fees in the last transaction block, in mojos (1 XCH = 10^12 mojos; block event block_fees).", self.last_block_fees)
        yield counter_family("chia_full_node_reorgs", "Blocks that replaced part of the chain (block event, height - fork_height - 1 > 0).",
                             rows=[((), self.reorgs)])
        if self.last_reorg_depth is not None:
            yield gauge("chia_full_node_last_reorg_depth", "Blocks the last reorganisation replaced (height - fork_height - 1).",
                        self.last_reorg_depth)
        yield counter_family("chia_full_node_signage_points", "Signage points the node broadcast to farmers (signage_point event).",
                             rows=[((), self.signage_points)])


def make_event_states(config, exporter) -> list[EventState]:
    return [FullNodeEvents(exporter)]
