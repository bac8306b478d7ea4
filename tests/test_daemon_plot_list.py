"""The harvester's plot list through the daemon: never a reply over the daemon's message limit.

Chia's daemon refuses a WebSocket message over ``daemon_max_message_size`` and closes the link
of the service that sent it (chia/daemon/server.py); the fake daemon does the same with its
``max_message_size`` and records the link it dropped. The limit here is 20 kB, so that a few
dozen synthetic plots (benchmarks.synthetic_farm, Chia 2.7.5's get_plots shape) stand for 80k.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

import exporter.collectors.harvester as harvester
from benchmarks.synthetic_farm import plots_body
from exporter.app import Exporter
from exporter.config import ConfigError
from exporter.collectors.harvester import daemon_message_limit
from exporter.daemon_ws import StreamRpc
from exporter.rpc import RpcError
from tests.harness import config_for, exposition, until

LIMIT = 20_000
LOOKUP = {"time": 0.01, "eligible_plots": 1, "found_proofs": 0}


async def daemon_harvester(fake_farm_factory, **flags):
    farm = await fake_farm_factory()
    farm.root.write_config(farm.ports, daemon_max_message_size=LIMIT)
    daemon = farm.services["daemon"]
    daemon.max_message_size = LIMIT
    exporter = Exporter(config_for(farm.root.path, transport="daemon", **{"collectors.harvester.timeout": "2s", **flags}))
    await exporter.start(background=False)
    exporter.events.start()
    await until(lambda: exporter.events.connected)
    runner = exporter.runner("harvester")
    now = [1000.0]
    runner.collector._monotonic = lambda: now[0]
    fake = farm.services["harvester"]
    return exporter, runner, now, fake, daemon


def get_plots_sent(daemon) -> int:
    """Requests for the list that went to the daemon (routed ones reach the fake harvester's bodies directly)."""
    return sum(1 for r in daemon.requests if r["command"] == "get_plots" and r["destination"] == "chia_harvester")


def test_the_limit_is_the_daemons_or_the_exporters_whichever_is_smaller(chia_root, caplog):
    chia_root.write_config({})
    assert daemon_message_limit(config_for(chia_root.path)) is None  # https: no such limit
    assert daemon_message_limit(config_for(chia_root.path, transport="daemon")) == 50_000_000  # Chia's default
    chia_root.write_config({}, daemon_max_message_size=1_000_000)
    assert daemon_message_limit(config_for(chia_root.path, transport="daemon")) == 1_000_000
    assert daemon_message_limit(config_for(chia_root.path, transport="daemon",
                                           **{"events.max_message_bytes": 4096})) == 4096
    chia_root.write_config({}, daemon_max_message_size="big")  # strict, as every config.yaml key
    with pytest.raises(ConfigError) as err:
        config_for(chia_root.path, transport="daemon")
    assert err.value.key == "daemon_max_message_size" and "positive integer" in err.value.message


async def test_a_plot_list_too_large_for_the_daemon_is_not_asked_for(fake_farm_factory, caplog):
    exporter, runner, now, fake, daemon = await daemon_harvester(fake_farm_factory)
    collector = runner.collector
    assert collector.message_limit == LIMIT
    try:
        # At start no count is known: the list (6 plots) is asked for, and its size measured.
        await runner.poll_once()
        assert runner.success and get_plots_sent(daemon) == 1
        assert 500 < collector._plot_bytes < 800
        # The harvester reports 40 plots: a reply of ~25 kB, over the limit. Not asked for.
        collector.events.handle("farming_info", {**LOOKUP, "total_plots": 40}, now=1.0)
        caplog.set_level(logging.INFO)
        for _ in range(3):
            now[0] += harvester.PLOTS_MAX_AGE + 1
            await runner.poll_once()
        assert runner.success and get_plots_sent(daemon) == 1
        assert daemon.dropped_links == []  # the harvester's own link to the daemon never dropped
        text = exposition(exporter)
        assert "\nchia_harvester_plot_list_skipped 1.0" in text
        assert "chia_harvester_plots{" not in text and "chia_harvester_plots_failed_to_open" not in text
        assert "\nchia_harvester_total_plots 40.0" in text  # the count itself stays
        assert 'chia_harvester_connections{node_type="farmer"} 1.0' in text
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "plot list" in r.getMessage()]
        assert len(warnings) == 1 and "--transport https" in warnings[0].getMessage()
        assert exporter.events.connected and exporter.events.reconnects == 0
        # Back under the limit: asked for at the next poll, the gauge goes.
        collector.events.handle("farming_info", {**LOOKUP, "total_plots": 6}, now=2.0)
        await runner.poll_once()
        assert get_plots_sent(daemon) == 2
        text = exposition(exporter)
        assert "chia_harvester_plot_list_skipped" not in text and "chia_harvester_plots{" in text
    finally:
        await exporter.stop()


async def test_what_the_skip_avoids(fake_farm_factory):
    """The fake daemon models the real one: asked for anyway, the list never comes and the
    harvester's link to the daemon drops."""
    exporter, runner, now, fake, daemon = await daemon_harvester(fake_farm_factory)
    try:
        fake.bodies["get_plots"] = json.loads(plots_body(40))
        rpc = StreamRpc(exporter.events, "harvester", "harvester", 1, exporter.stats)
        with pytest.raises(RpcError) as err:
            await rpc.call("get_plots")
        assert err.value.outcome == "timeout" and daemon.dropped_links == ["chia_harvester"]
    finally:
        await exporter.stop()


async def test_a_list_asked_for_blind_that_never_comes_is_not_asked_for_blind_again(fake_farm_factory):
    exporter, runner, now, fake, daemon = await daemon_harvester(fake_farm_factory)
    collector = runner.collector
    try:
        fake.bodies["get_plots"] = json.loads(plots_body(40))  # no farming_info yet: nothing tells its size
        await runner.poll_once()
        assert get_plots_sent(daemon) == 1 and daemon.dropped_links == ["chia_harvester"]
        assert not runner.success  # no list yet, and the attempt failed
        for _ in range(3):
            now[0] += harvester.PLOTS_MAX_AGE + 1
            await runner.poll_once()
            assert runner.success  # the rest of the harvester's families, without the list
            assert "chia_harvester_plot_list_skipped 1.0" in exposition(exporter)  # and saying so
        assert get_plots_sent(daemon) == 1 and daemon.dropped_links == ["chia_harvester"]
        # A count that tells: 40 plots are too many, with the guess of a plot's size.
        collector.events.handle("farming_info", {**LOOKUP, "total_plots": 40}, now=1.0)
        await runner.poll_once()
        assert get_plots_sent(daemon) == 1 and "chia_harvester_plot_list_skipped 1.0" in exposition(exporter)
    finally:
        await exporter.stop()


async def test_a_blind_list_over_the_exporters_own_limit_is_not_asked_for_again(fake_farm_factory):
    """The daemon relays it, but it is over events.max_message_bytes: the exporter's one socket
    closes (every collector's calls with it), so asking again at each gap would do that again."""
    exporter, runner, now, fake, daemon = await daemon_harvester(fake_farm_factory, **{"events.max_message_bytes": 8192})
    try:
        fake.bodies["get_plots"] = json.loads(plots_body(15))  # about 10 kB: under the daemon's 20 kB
        await runner.poll_once()
        assert get_plots_sent(daemon) == 1 and daemon.dropped_links == []
        assert not runner.success and runner.last_outcome == "bad_response"
        assert "events.max_message_bytes" in runner.last_error
        await until(lambda: exporter.events.connected and exporter.events.reconnects == 1, 10)
        for _ in range(2):
            now[0] += harvester.PLOTS_MAX_AGE + 1
            await runner.poll_once()
            assert runner.success and "chia_harvester_plot_list_skipped 1.0" in exposition(exporter)
        assert get_plots_sent(daemon) == 1 and exporter.events.reconnects == 1
    finally:
        await exporter.stop()


async def test_at_start_a_farmed_harvester_gets_a_moment_to_tell_its_count(fake_farm_factory):
    exporter, runner, now, fake, daemon = await daemon_harvester(fake_farm_factory)
    try:
        fake.bodies["get_plots"] = json.loads(plots_body(40))
        # Its farming_info arrives through the daemon while the first poll waits (the fake
        # harvester has a farmer connection): the too large list is never asked for.
        async def lookup_soon() -> None:
            await until(lambda: any(r["command"] == "get_connections" for r in daemon.requests))
            await daemon.push({"ack": False, "command": "farming_info", "origin": "chia_harvester",
                               "destination": "metrics", "data": {**LOOKUP, "total_plots": 40}})
        pusher = asyncio.create_task(lookup_soon())
        await runner.poll_once()
        await pusher
        assert runner.success and get_plots_sent(daemon) == 0 and daemon.dropped_links == []
        assert "chia_harvester_plot_list_skipped 1.0" in exposition(exporter)
    finally:
        await exporter.stop()
