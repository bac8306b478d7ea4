"""The full-node collector against fake services: a slow secondary call, the block counts' gap,
fee rates under one mojo per cost."""

from __future__ import annotations

from exporter.app import Exporter
from exporter.collectors.full_node import BLOCK_COUNTS_GAP, FEE_ESTIMATE_COST, FullNodeCollector
from exporter.scheduler import CollectorRunner
from tests.fakes.services import Fault
from tests.harness import config_for

BLOCK_COUNT_FAMILIES = ("chia_full_node_compact_blocks", "chia_full_node_uncompact_blocks", "chia_full_node_hints")


def samples(exporter: Exporter) -> dict[str, list]:
    out: dict[str, list] = {}
    for fam in exporter.collect():
        out.setdefault(fam.name, []).extend(fam.samples)
    return out


async def started(farm, timeout: str = "1s") -> Exporter:
    config = config_for(farm.root.path, **{"events.enabled": False, "collectors.full_node.timeout": timeout})
    exporter = Exporter(config)
    await exporter.start(background=False)
    return exporter


async def test_a_stalled_block_count_loses_only_its_own_families(fake_farm_factory):
    farm = await fake_farm_factory()
    farm.services["full_node"].faults["get_block_count_metrics"] = Fault(hang=True)
    exporter = await started(farm, timeout="1s")
    try:
        runner = exporter.runner("full_node")
        await runner.poll_once()
        assert runner.success, runner.last_error
        assert runner.duration < 1.0  # cut off within the poll, not by the poll's own timeout
        found = samples(exporter)
        assert found["chia_full_node_peak_height"][0].value == 6
        assert found["chia_full_node_synced"][0].value == 1
        assert "chia_full_node_fee_estimate_mojos_per_cost" in found and "chia_full_node_connections" in found
        assert not any(name in found for name in BLOCK_COUNT_FAMILIES)
        counts = exporter.stats.counts
        assert counts[("full_node", "get_block_count_metrics", "timeout")] == 1
        assert counts[("full_node", "get_blockchain_state", "ok")] == 1
    finally:
        await exporter.stop()


async def test_block_counts_are_asked_once_per_gap_and_a_failure_waits_too(fake_farm_factory):
    farm = await fake_farm_factory()
    node = farm.services["full_node"]
    exporter = await started(farm, timeout="2s")
    now = [1000.0]
    collector = FullNodeCollector(exporter.config.collectors["full_node"], clock=lambda: now[0])
    runner = CollectorRunner(collector, exporter.rpc_for(collector))

    def asked() -> int:
        return sum(1 for endpoint, _ in node.calls if endpoint == "get_block_count_metrics")

    try:
        await runner.poll_once()
        assert asked() == 1 and runner.snapshot.block_counts.uncompact_blocks == 7
        now[0] += BLOCK_COUNTS_GAP - 1
        await runner.poll_once()
        assert asked() == 1 and runner.snapshot.block_counts.uncompact_blocks == 7  # the last counts, kept
        now[0] += 1
        node.faults["get_block_count_metrics"] = Fault(status=500)
        await runner.poll_once()
        assert runner.success and asked() == 2 and runner.snapshot.block_counts is None
        del node.faults["get_block_count_metrics"]
        now[0] += BLOCK_COUNTS_GAP / 2
        await runner.poll_once()
        assert asked() == 2 and runner.snapshot.block_counts is None  # not asked again before the gap
        now[0] += BLOCK_COUNTS_GAP / 2
        await runner.poll_once()
        assert asked() == 3 and runner.snapshot.block_counts.uncompact_blocks == 7
    finally:
        await exporter.stop()


async def test_fee_rates_under_one_mojo_per_cost_are_kept(fake_farm_factory):
    farm = await fake_farm_factory()
    node = farm.services["full_node"]
    rates = {60: 5.9, 300: 1.2, 900: 0.25}  # mojos per cost, as Chia's estimator keeps them (floats)
    recorded = node.bodies["get_fee_estimate"]
    serve = node.body_for

    def fee_estimate(endpoint: str, params: dict):
        if endpoint != "get_fee_estimate":
            return serve(endpoint, params)
        # What full_node_rpc_api.py get_fee_estimate answers: uint64(rate * cost) per target.
        return {**recorded, "target_times": params["target_times"], "fee_rate_last_block": 0.75,
                "estimates": [int(rates[t] * params["cost"]) for t in params["target_times"]]}
    node.body_for = fee_estimate
    exporter = await started(farm)
    try:
        await exporter.runner("full_node").poll_once()
        [(_, params)] = [c for c in node.calls if c[0] == "get_fee_estimate"]
        assert params["cost"] == FEE_ESTIMATE_COST
        found = samples(exporter)
        got = {int(s.labels["target_seconds"]): s.value for s in found["chia_full_node_fee_estimate_mojos_per_cost"]}
        assert got == rates
        assert found["chia_full_node_last_block_fee_rate_mojos_per_cost"][0].value == 0.75
    finally:
        await exporter.stop()
