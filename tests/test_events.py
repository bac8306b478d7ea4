"""What daemon events become: goldens of the recorded event streams, and each state's rules."""

from __future__ import annotations

import json

import pytest
from prometheus_client.exposition import generate_latest

from exporter.collectors.base import LOOKUP_BUCKETS
from exporter.collectors.farmer import FarmerEvents
from exporter.collectors.full_node import FullNodeEvents
from exporter.collectors.harvester import HarvesterEvents
from exporter.collectors.timelord import TimelordEvents
from exporter.daemon_ws import EventDispatcher
from exporter.app import Exporter
from tests.fakes.services import SHARED_FIXTURES, TEST_FIXTURES
from tests.harness import assert_golden, config_for, exposition, frozen_clock, poll_all, render_once, until, wait_connected


def recorded(name: str) -> list[dict]:
    return [json.loads(line) for line in (SHARED_FIXTURES / "daemon" / f"events-{name}.jsonl").read_text().splitlines()]


def synthetic(name: str) -> list[dict]:
    return [json.loads(line) for line in (TEST_FIXTURES / "events" / f"{name}.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("stream", ["metrics", "node-reorg-timelord-crawler"])
async def test_event_golden(stream, fake_farm_factory, update_golden):
    """Every recorded event (or a synthetic stream) after one poll of everything, as the exporter's
    event stream reads them from the fake daemon over mutual TLS (the recorded register_service
    acknowledgement is the fake daemon's own, never counted as an event)."""
    farm = await fake_farm_factory()
    messages = recorded(stream) if stream == "metrics" else synthetic(stream)
    text = await render_once(config_for(farm.root.path), replay=messages, daemon=farm.services["daemon"])
    assert_golden(f"events-{stream}", text, update_golden)


async def test_partials_join_their_plot_nft(fake_farm_factory, update_golden):
    """submitted_partial (by launcher_id) and failed_partial (by p2 singleton, on the wallet_ui
    socket) count under the launcher_id and pool_url of get_pool_state, though Chia writes the
    ids without 0x; the copy of submitted_partial that wallet_ui also gets is not counted twice."""
    farm = await fake_farm_factory("farmer-big-farm")
    daemon = farm.services["daemon"]
    messages = synthetic("pool-partials")
    exporter = Exporter(config_for(farm.root.path), clock=frozen_clock(), process_metrics=False)
    await exporter.start(background=False)
    try:
        exporter.events.start()
        await wait_connected(exporter)
        await poll_all(exporter)
        assert exporter.wants_wallet_ui()  # failed_partials: auto, and the plot NFTs are on pools
        exporter.partials.start()
        await daemon.wait_registered("wallet_ui")
        await until(lambda: exporter.partials.connected)
        to_wallet_ui = sum(m["destination"] == "wallet_ui" for m in messages)
        for m in messages:
            assert await daemon.push(m, m["destination"]) == 1
        await until(lambda: exporter.partials.received >= to_wallet_ui and exporter.events.received >= len(messages) - to_wallet_ui)
        text = exposition(exporter)
    finally:
        await exporter.stop()
    assert_golden("events-pool-partials", text, update_golden)
    first = 'launcher_id="0x1111111111111111111111111111111111111111111111111111111111111111",pool_url="https://pool.example.org"'
    second = 'launcher_id="0x1212121212121212121212121212121212121212121212121212121212121212",pool_url="https://other-pool.example.net"'
    unknown = 'launcher_id="0x5151515151515151515151515151515151515151515151515151515151515151",pool_url=""'
    assert f"chia_farmer_partials_submitted_total{{{first}}} 1.0" in text
    assert f"chia_farmer_partials_failed_total{{{first}}} 0.0" in text
    assert f"chia_farmer_partials_failed_total{{{second}}} 2.0" in text
    assert f"chia_farmer_partials_failed_total{{{unknown}}} 1.0" in text
    assert f"chia_farmer_pool_current_points{{{second}}} 31.0" in text  # the same labels as the pool state


def render(state) -> str:
    class One:
        def collect(self):
            return state.render(1000.0)
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    registry.register(One())
    return generate_latest(registry).decode()


def farming_info(node_id: str, lookup_us: int, passed: int = 3, proofs: int = 0) -> dict:
    return {"farming_info": {"challenge_hash": "0x00", "lookup_time": lookup_us, "node_id": node_id,
                             "passed_filter": passed, "proofs": proofs, "signage_point": "0x01", "timestamp": 1,
                             "total_plots": 6}}


def test_lookup_time_is_converted_from_microseconds():
    state = FarmerEvents(harvester_expiry=600)
    state.handle("new_farming_info", farming_info("0xaa", 2_500_000), now=1000.0)  # 2.5 s
    h = state.activity["0xaa"].lookups
    buckets = dict(h.buckets())
    assert buckets["2.0"] == 0 and buckets["5.0"] == 1
    assert h.sum == pytest.approx(2.5)
    assert len(h.bounds) == len(LOOKUP_BUCKETS)


def test_missed_signage_points_add_the_reported_count():
    state = FarmerEvents(harvester_expiry=600)
    sp = {"signage_point": {"signage_point_index": 7}, "proofs": []}
    state.handle("new_signage_point", {**sp, "missing_signage_points": None}, now=1.0)
    state.handle("new_signage_point", {**sp, "missing_signage_points": [1795474000, 3]}, now=2.0)
    assert (state.signage_points, state.signage_points_missed, state.last_signage_point_index) == (2, 3, 7)


def test_harvester_removed_drops_its_rows_at_once():
    state = FarmerEvents(harvester_expiry=600)
    state.handle("new_farming_info", farming_info("0xaa", 1000), now=1000.0)
    state.handle("new_farming_info", farming_info("0xbb", 1000), now=1000.0)
    state.handle("harvester_removed", {"node_id": "0xaa"}, now=1001.0)
    text = render(state)
    assert 'node_id="0xaa"' not in text and 'node_id="0xbb"' in text


def test_a_harvester_back_after_a_disconnect_keeps_counting():
    state = FarmerEvents(harvester_expiry=600)
    for now in (900.0, 910.0):
        state.handle("new_farming_info", farming_info("0xaa", 1000, passed=3), now=now)
    state.handle("harvester_removed", {"node_id": "0xaa"}, now=920.0)
    assert 'node_id="0xaa"' not in render(state)
    state.handle("new_farming_info", farming_info("0xaa", 1000, passed=2), now=990.0)  # reconnected
    text = render(state)
    assert 'chia_farmer_harvester_responses_total{node_id="0xaa"} 3.0' in text
    assert 'chia_farmer_harvester_plots_passed_filter_total{node_id="0xaa"} 8.0' in text
    assert 'chia_farmer_harvester_lookup_duration_seconds_count{node_id="0xaa"} 3.0' in text


def test_a_removed_harvester_silent_past_the_expiry_starts_again_from_zero():
    state = FarmerEvents(harvester_expiry=60)
    state.handle("new_farming_info", farming_info("0xaa", 1000), now=900.0)
    state.handle("harvester_removed", {"node_id": "0xaa"}, now=901.0)
    render(state)  # at 1000: 100 s of silence, past the expiry
    assert "0xaa" not in state.activity and "0xaa" not in state.departed
    state.handle("new_farming_info", farming_info("0xaa", 1000), now=995.0)
    assert 'chia_farmer_harvester_responses_total{node_id="0xaa"} 1.0' in render(state)


def test_harvester_update_brings_a_removed_harvesters_rows_back():
    state = FarmerEvents(harvester_expiry=600)
    state.handle("new_farming_info", farming_info("0xaa", 1000), now=990.0)
    state.handle("harvester_removed", {"node_id": "0xaa"}, now=991.0)
    summary = json.loads((SHARED_FIXTURES / "farmer" / "get_harvesters_summary.json").read_text())["harvesters"][0]
    state.handle("harvester_update", {**summary, "connection": {**summary["connection"], "node_id": "0xAA"}}, now=992.0)
    assert 'chia_farmer_harvester_responses_total{node_id="0xaa"} 1.0' in render(state)


def test_silent_harvester_series_expire():
    state = FarmerEvents(harvester_expiry=60)
    state.handle("new_farming_info", farming_info("0xaa", 1000), now=900.0)  # 100 s before render
    state.handle("new_farming_info", farming_info("0xbb", 1000), now=990.0)
    text = render(state)
    assert 'node_id="0xaa"' not in text and 'node_id="0xbb"' in text


def test_malformed_events_are_counted_and_the_rest_carries_on():
    farmer = FarmerEvents(harvester_expiry=600)
    dispatcher = EventDispatcher([farmer, HarvesterEvents(), FullNodeEvents(), TimelordEvents()], clock=lambda: 1000.0)
    bad = [
        {"command": "new_farming_info", "origin": "chia_farmer", "data": {"farming_info": {"node_id": "0xaa"}}},
        {"command": "new_signage_point", "origin": "chia_farmer", "data": {"signage_point": {"signage_point_index": "x"}}},
        {"command": "farming_info", "origin": "chia_harvester", "data": {"time": None}},
        {"command": "block", "origin": "chia_full_node", "data": {"height": 3}},
        {"command": "new_compact_proof", "origin": "chia_timelord", "data": []},
    ]
    for msg in bad:
        dispatcher.dispatch(msg)
    dispatcher.dispatch({"command": "new_farming_info", "origin": "chia_farmer", "data": farming_info("0xaa", 1000)})
    assert dispatcher.errors["malformed"] == len(bad)
    assert farmer.activity["0xaa"].responses == 1  # the bad one changed nothing
    assert farmer.signage_points == 0
    assert sum(dispatcher.events.values()) == len(bad) + 1


def test_empty_block_event_after_a_long_sync_counts_nothing():
    state = FullNodeEvents()
    state.handle("block", {}, now=1.0)
    assert state.blocks == 0


def test_reorg_depth():
    state = FullNodeEvents()
    base = {"validation_time": 0.1, "pre_validation_time": 0.05, "transaction_block": False}
    state.handle("block", {**base, "height": 100, "fork_height": 99}, now=1.0)  # plain extension
    state.handle("block", {**base, "height": 101, "fork_height": 97}, now=2.0)  # replaced 3 blocks
    assert (state.blocks, state.reorgs, state.last_reorg_depth) == (2, 1, 3)


def test_harvester_events_fold_lookups_and_keep_the_last_plot_count():
    """farming_info only records the count: the harvester collector compares it with its list
    at its own pace (tests/test_harvester.py), never on every event."""
    state = HarvesterEvents()
    info = {"time": 0.01, "eligible_plots": 1, "found_proofs": 0, "total_plots": 6}
    state.handle("farming_info", info, now=1.0)
    state.handle("farming_info", {**info, "time": 6.0, "found_proofs": 2, "found_v2_partial_proofs": 3,
                                  "total_plots": 7}, now=2.0)
    assert (state.eligible, state.proofs, state.v2_partial_proofs, state.total_plots) == (2, 2, 3, 7)
    assert state.lookups.count == 2 and state.lookups.buckets()[-2] == ("30.0", 2)
    assert dict(state.lookups.buckets())["5.0"] == 1  # the 6 s lookup put its proof at risk
    assert dict(state.lookups.buckets())["8.0"] == 2


def test_numbers_too_large_and_json_too_deep_are_malformed():
    """int(1e999) raises OverflowError, "[" * 100000 RecursionError: counted, never raised."""
    full_node = FullNodeEvents()
    dispatcher = EventDispatcher([full_node], clock=lambda: 1000.0)
    block = {"height": float("inf"), "fork_height": 1, "validation_time": 0.1, "pre_validation_time": 0.1}
    dispatcher.dispatch({"command": "block", "origin": "chia_full_node", "data": block})
    dispatcher.dispatch_text('{"command": "block", "origin": "chia_full_node", "data": {"height": 1e999}}')
    dispatcher.dispatch_text("[" * 100_000)
    assert dispatcher.errors["malformed"] == 3
    assert full_node.blocks == 0
    assert dispatcher.events[("chia_full_node", "block")] == 2


def test_event_series_are_bounded():
    from exporter.daemon_ws import MAX_UNKNOWN_EVENT_SERIES

    dispatcher = EventDispatcher([FarmerEvents(harvester_expiry=600)], clock=lambda: 1000.0)
    for i in range(MAX_UNKNOWN_EVENT_SERIES + 500):
        dispatcher.dispatch({"command": f"odd_{i}", "origin": "chia_farmer", "data": {}})
        dispatcher.dispatch({"command": "odd", "origin": f"odd_service_{i}", "data": {}})
    # Known events always get their own series, whatever came before.
    dispatcher.dispatch({"command": "new_farming_info", "origin": "chia_farmer", "data": farming_info("0xaa", 1000)})
    dispatcher.dispatch({"command": "crawl_batch_completed", "origin": "chia_crawler", "data": {}})
    assert dispatcher.events[("chia_farmer", "new_farming_info")] == 1
    assert dispatcher.events[("chia_crawler", "crawl_batch_completed")] == 1
    assert len(dispatcher.events) == MAX_UNKNOWN_EVENT_SERIES + 2 + 2  # + other (known origin, unknown origin)
    assert sum(dispatcher.events.values()) == 2 * (MAX_UNKNOWN_EVENT_SERIES + 500) + 2  # nothing goes uncounted
    others = dispatcher.events[("chia_farmer", "other")] + dispatcher.events[("other", "other")]
    assert others == 2 * (MAX_UNKNOWN_EVENT_SERIES + 500) - MAX_UNKNOWN_EVENT_SERIES
    assert len(dispatcher.last_event) <= MAX_UNKNOWN_EVENT_SERIES + 3
    # A pair that already has its series keeps it.
    dispatcher.dispatch({"command": "odd_0", "origin": "chia_farmer", "data": {}})
    assert dispatcher.events[("chia_farmer", "odd_0")] == 2
