"""The farmer's pool state, taken one plot NFT at a time, and the newer of event and poll
(the crawler's counts follow the same rule)."""

from __future__ import annotations

import copy
import json
import logging

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from exporter.collectors.crawler import CrawlerCollector, CrawlerEvents, PeerCounts
from exporter.collectors.farmer import DAY, FarmerCollector, FarmerEvents, hex_id, parse_pools
from tests.fakes.services import TEST_FIXTURES, load_set
from tests.harness import FROZEN_TIME, config_for

BODIES = load_set("chia-2.7.5")
BIG_FARM = json.loads((TEST_FIXTURES / "farmer-big-farm" / "farmer" / "get_pool_state.json").read_text())
NULL_DIFFICULTY = json.loads((TEST_FIXTURES / "farmer-pools-null-difficulty" / "farmer" / "get_pool_state.json").read_text())


def text_of(families) -> str:
    families = list(families)

    class One:
        def collect(self):
            return families
    registry = CollectorRegistry()
    registry.register(One())
    return generate_latest(registry).decode()


class BodiesRpc:
    """Answers each call with a fixed body, parsed the way the real client parses it."""

    def __init__(self, bodies: dict, before_call=None) -> None:
        self.bodies, self.before_call = bodies, before_call

    async def call(self, endpoint, params=None, parse=None):
        if self.before_call is not None:
            self.before_call(endpoint)
        body = self.bodies[endpoint]
        return parse(body) if parse else body


@pytest.fixture
def farmer_config(chia_root):
    chia_root.write_config({})
    return config_for(chia_root.path)


def farmer(config, pool_state: dict, events: FarmerEvents | None = None, before_call=None):
    events = events if events is not None else FarmerEvents(600, clock=lambda: FROZEN_TIME)
    collector = FarmerCollector(config.collectors["farmer"], events, events.clock)
    rpc = BodiesRpc({**BODIES["farmer"], "get_pool_state": pool_state}, before_call)
    return collector, rpc


@pytest.mark.parametrize("value, form", [("ABCDEF01", "0xabcdef01"), ("0xAbCd", "0xabcd"), (" 0x12 ", "0x12"),
                                         ("12" * 32, "0x" + "12" * 32)])
def test_hex_ids_take_one_form(value, form):
    assert hex_id(value) == form


@pytest.mark.parametrize("value", ["", "0x", "xyz", "0x12g4", None, 12])
def test_a_hex_id_that_is_not_hex_is_a_shape_error(value):
    with pytest.raises((TypeError, ValueError)):
        hex_id(value)


async def test_a_null_difficulty_loses_only_its_own_series(farmer_config):
    collector, rpc = farmer(farmer_config, NULL_DIFFICULTY)
    snap = await collector.fetch(rpc)
    assert [p.current_difficulty for p in snap.pools.pools] == [None, None]
    text = text_of(collector.render(snap))
    assert "chia_farmer_pool_current_difficulty{" not in text
    down = 'launcher_id="0x3131313131313131313131313131313131313131313131313131313131313131",pool_url="https://down-pool.example.org"'
    solo = 'launcher_id="0x3232323232323232323232323232323232323232323232323232323232323232",pool_url=""'
    assert f'chia_farmer_pool_partials_since_start{{{down},result="missing"}} 4.0' in text
    assert f'chia_farmer_pool_partials_since_start{{{solo},result="valid"}} 7.0' in text
    assert "chia_farmer_pool_states_unreadable 0.0" in text


async def test_a_malformed_plot_nft_entry_is_left_out_counted_and_logged(farmer_config, caplog):
    body = copy.deepcopy(BIG_FARM)
    body["pool_state"][0]["current_points"] = "lots"
    collector, rpc = farmer(farmer_config, body)
    with caplog.at_level(logging.WARNING, logger="exporter.collectors.farmer"):
        snap = await collector.fetch(rpc)
        await collector.fetch(rpc)  # the same fault again: logged once
    assert [p.launcher_id for p in snap.pools.pools] == ["0x" + "12" * 32]
    assert snap.pools.unreadable and "entry 0" in snap.pools.unreadable[0]
    assert len([r for r in caplog.records if "left out" in r.getMessage()]) == 1
    text = text_of(collector.render(snap))
    assert "chia_farmer_pool_states_unreadable 1.0" in text
    assert 'launcher_id="0x1111' not in text and 'chia_farmer_pool_current_points{launcher_id="0x1212' in text


async def test_wallet_ui_is_wanted_only_for_a_plot_nft_on_a_pool(farmer_config):
    """A self-pooling plot NFT submits no partials (farmer_api.py returns first), so none fail."""
    solo_only = {"pool_state": [e for e in NULL_DIFFICULTY["pool_state"] if not e["pool_config"]["pool_url"]]}
    for body, wanted in ((NULL_DIFFICULTY, True), (solo_only, False), ({"pool_state": []}, False), (BIG_FARM, True)):
        collector, rpc = farmer(farmer_config, body)
        assert collector.wants_wallet_ui_events(await collector.fetch(rpc)) is wanted


async def test_a_self_pooling_plot_nft_gets_no_zero_partial_counters(farmer_config):
    collector, rpc = farmer(farmer_config, NULL_DIFFICULTY)
    await collector.fetch(rpc)
    text = text_of(collector.events.render(FROZEN_TIME))
    assert 'chia_farmer_partials_failed_total{launcher_id="0x3131' in text
    assert 'launcher_id="0x3232' not in text


async def test_the_24h_families_count_only_the_last_day_before_the_poll(farmer_config):
    """The farmer keeps an old entry until it adds a new one of the same kind."""
    body = copy.deepcopy(BIG_FARM)
    entry = body["pool_state"][1]
    entry["points_found_24h"] = [[FROZEN_TIME - DAY - 1, 100], [FROZEN_TIME - DAY, 6], [FROZEN_TIME - 1, 7]]
    entry["pool_errors_24h"] = [[FROZEN_TIME - 2 * DAY, {"error_code": 8, "error_message": "Partial too late"}]]
    collector, rpc = farmer(farmer_config, body)
    snap = await collector.fetch(rpc)
    assert snap.taken_at == FROZEN_TIME
    labels = 'launcher_id="0x1212121212121212121212121212121212121212121212121212121212121212",pool_url="https://other-pool.example.net"'
    text = text_of(collector.render(snap))
    assert f"chia_farmer_pool_points_found_24h{{{labels}}} 13.0" in text
    assert f"chia_farmer_pool_errors_24h{{{labels}}} 0.0" in text
    # A day later, with no new entry, nothing is left of that window.
    later = FarmerCollector(farmer_config.collectors["farmer"], collector.events, lambda: FROZEN_TIME + DAY)
    text = text_of(later.render(await later.fetch(rpc)))
    assert f"chia_farmer_pool_points_found_24h{{{labels}}} 0.0" in text


def signage_point(index: int) -> dict:
    return {"signage_point": {"signage_point_index": index}, "proofs": [], "missing_signage_points": None}


def last_index(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("chia_farmer_last_signage_point_index "))


async def test_a_poll_newer_than_the_last_signage_point_event_wins(farmer_config):
    """An event from before the WebSocket went down must not hide what the farmer says now."""
    events = FarmerEvents(600, clock=lambda: FROZEN_TIME)
    events.handle("new_signage_point", signage_point(5), now=FROZEN_TIME - 600)
    collector, rpc = farmer(farmer_config, BIG_FARM, events)
    polled = BODIES["farmer"]["get_signage_points"]["signage_points"][-1]["signage_point"]["signage_point_index"]
    assert polled != 5
    snap = await collector.fetch(rpc)
    assert last_index(text_of(collector.render(snap))) == f"chia_farmer_last_signage_point_index {float(polled)}"
    events.handle("new_signage_point", signage_point(polled + 1 if polled < 63 else 0), now=FROZEN_TIME + 1)
    assert last_index(text_of(collector.render(snap))).endswith(f" {float(polled + 1 if polled < 63 else 0)}")


async def test_a_signage_point_event_during_the_poll_is_newer_than_its_answer(farmer_config):
    events = FarmerEvents(600, clock=lambda: FROZEN_TIME)

    def event_while_asking(endpoint):
        if endpoint == "get_signage_points":
            events.handle("new_signage_point", signage_point(33), now=FROZEN_TIME)
    collector, rpc = farmer(farmer_config, BIG_FARM, events, before_call=event_while_asking)
    snap = await collector.fetch(rpc)
    assert last_index(text_of(collector.render(snap))) == "chia_farmer_last_signage_point_index 33.0"


def crawl_batch(reliable: int) -> dict:
    return {"peer_counts": {"total_last_5_days": reliable * 2, "reliable_nodes": reliable, "ipv4_last_5_days": reliable,
                            "ipv6_last_5_days": 0, "versions": {"2.7.5": reliable}}}


async def test_the_crawler_shows_the_newer_of_its_poll_and_its_last_batch(farmer_config):
    events = CrawlerEvents()
    events.handle("crawl_batch_completed", crawl_batch(10), now=1.0)  # before the WebSocket went down
    collector = CrawlerCollector(farmer_config.collectors["crawler"], events)
    snap = await collector.fetch(BodiesRpc({"get_peer_counts": crawl_batch(500)}))
    assert 'chia_crawler_peers{kind="reliable"} 500.0' in text_of(collector.render(snap))
    events.handle("crawl_batch_completed", crawl_batch(700), now=2.0)
    assert 'chia_crawler_peers{kind="reliable"} 700.0' in text_of(collector.render(snap))
    assert PeerCounts.parse(crawl_batch(1)).kinds  # the same parser reads both


def test_pool_entries_parse_one_by_one():
    body = copy.deepcopy(BIG_FARM)
    body["pool_state"].insert(1, "not an object")
    states = parse_pools(body)
    assert len(states.pools) == 2 and len(states.unreadable) == 1
    with pytest.raises(TypeError):
        parse_pools({"pool_state": {"not": "a list"}})


def harvester_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("chia_farmer_harvester_plots{")]


async def test_a_removal_stays_on_show_until_a_poll_after_it_returns(farmer_config):
    """While a poll runs, and when it fails after get_harvesters_summary, /metrics shows the last
    snapshot: a harvester removed since then must stay removed, not come back with old counts."""
    events = FarmerEvents(600, clock=lambda: FROZEN_TIME)
    collector, rpc = farmer(farmer_config, BIG_FARM, events)
    shown = await collector.fetch(rpc)
    node_id = shown.harvesters[0].node_id
    assert harvester_rows(text_of(collector.render(shown)))
    events.handle("harvester_removed", {"node_id": node_id}, now=FROZEN_TIME)
    assert not harvester_rows(text_of(collector.render(shown)))

    seen_mid_poll = []

    def fail_after_the_summary(endpoint):
        if endpoint == "get_connections":
            seen_mid_poll.append(harvester_rows(text_of(collector.render(shown))))
        if endpoint == "get_version":
            raise RuntimeError("the poll dies here")
    failing = BodiesRpc(rpc.bodies, fail_after_the_summary)
    with pytest.raises(RuntimeError):
        await collector.fetch(failing)
    assert seen_mid_poll == [[]]
    assert not harvester_rows(text_of(collector.render(shown)))  # the failed poll changed nothing on show
    # A poll asked after the removal is the truth: the harvester listed again is shown again.
    newer = await collector.fetch(rpc)
    assert harvester_rows(text_of(collector.render(newer)))
    await collector.fetch(rpc)  # and the removal, caught up with, is forgotten
    assert node_id not in events.removed


async def test_failed_partials_stay_with_the_pool_they_failed_on(farmer_config):
    collector, rpc = farmer(farmer_config, NULL_DIFFICULTY)
    await collector.fetch(rpc)
    events = collector.events
    p2, (launcher_id, pool_url) = next((p2, names) for p2, names in events.pool_names.items() if names[1])
    for _ in range(3):
        events.handle("failed_partial", {"p2_singleton_puzzle_hash": p2}, now=FROZEN_TIME)
    moved = copy.deepcopy(NULL_DIFFICULTY)
    for entry in moved["pool_state"]:
        if entry["pool_config"]["pool_url"] == pool_url:
            entry["pool_config"]["pool_url"] = "https://new-pool.example.com"
    collector2, rpc2 = farmer(farmer_config, moved, events)
    await collector2.fetch(rpc2)
    text = text_of(events.render(FROZEN_TIME))
    assert f'chia_farmer_partials_failed_total{{launcher_id="{launcher_id}",pool_url="{pool_url}"}} 3.0' in text
    assert f'chia_farmer_partials_failed_total{{launcher_id="{launcher_id}",pool_url="https://new-pool.example.com"}} 0.0' in text
