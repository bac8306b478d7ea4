"""Daemon events from the real stack: signage points, lookups and blocks grow, and survive a full
stack restart (only an exporter restart resets them)."""

from __future__ import annotations

from tests.live.conftest import promtool_check, samples


def _sum(got: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in got.items() if k == prefix or k.startswith(prefix + "{"))


def test_events_grow_and_survive_a_stack_restart(chia_stack, run_exporter):
    exporter = run_exporter("--events.watchdog", "20s")
    text = exporter.wait_for(lambda t: "chia_exporter_websocket_connected 1.0" in t, timeout=30)

    # sp_pump sends the farmer a signage point every few seconds; the harvester really looks up.
    text = exporter.wait_for(lambda t: _sum(samples(t), "chia_farmer_signage_points_total") >= 2, timeout=40)
    text = exporter.wait_for(lambda t: _sum(samples(t), "chia_farmer_harvester_lookup_duration_seconds_count") >= 1
                             and _sum(samples(t), "chia_harvester_lookup_duration_seconds_count") >= 1, timeout=40)
    got = samples(text)
    assert _sum(got, "chia_farmer_harvester_responses_total") >= 1
    assert _sum(got, "chia_harvester_plots_eligible_total") > 0  # the 3 v1 plots pass every signage point
    assert got["chia_harvester_total_plots"] == 6

    blocks_before = _sum(got, "chia_full_node_blocks_total")
    chia_stack.farm_blocks(1)
    text = exporter.wait_for(lambda t: _sum(samples(t), "chia_full_node_blocks_total") >= blocks_before + 1, timeout=30)
    promtool_check(text)
    before = samples(text)
    sp_before = _sum(before, "chia_farmer_signage_points_total")
    blocks_before = _sum(before, "chia_full_node_blocks_total")

    # The whole stack goes away and comes back; the exporter keeps running.
    chia_stack.stop()
    exporter.wait_for(lambda t: "chia_exporter_websocket_connected 0.0" in t, timeout=30)
    chia_stack.start()
    text = exporter.wait_for(lambda t: "chia_exporter_websocket_connected 1.0" in t
                             and _sum(samples(t), "chia_farmer_signage_points_total") > sp_before, timeout=90)
    after = samples(text)
    assert _sum(after, "chia_full_node_blocks_total") >= blocks_before  # went on from where it was
    assert after["chia_exporter_websocket_reconnects_total"] >= 1
