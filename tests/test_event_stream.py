"""The daemon WebSocket never goes silent: reconnects, re-registers, and keeps every count."""

from __future__ import annotations

import asyncio
import json

import pytest

from exporter.app import Exporter
from tests.fakes.services import SHARED_FIXTURES
from tests.harness import config_for

EVENTS = [json.loads(line) for line in (SHARED_FIXTURES / "daemon" / "events-metrics.jsonl").read_text().splitlines()]


@pytest.fixture
async def stream(fake_farm_factory):
    """An exporter whose only running part is the event stream, against the fake daemon."""
    farm = await fake_farm_factory()
    config = config_for(farm.root.path, **{"events.watchdog": "1s"})
    exporter = Exporter(config)
    await exporter.start(background=False)
    exporter.events.start()
    daemon = farm.services["daemon"]
    await daemon.wait_registered()
    await until(lambda: exporter.events.connected)
    yield exporter, daemon
    await exporter.stop()


async def until(predicate, timeout: float = 10.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(loop(), timeout)


def total_events(exporter: Exporter) -> int:
    return sum(exporter.dispatcher.events.values())


async def test_registers_as_metrics_and_counts_every_event(stream):
    exporter, daemon = stream
    register = [r for r in daemon.requests if r["command"] == "register_service"]
    assert register and register[0]["data"] == {"service": "metrics"}
    sent = await daemon.replay(EVENTS)
    await until(lambda: total_events(exporter) == sent)
    assert exporter.dispatcher.events[("chia_farmer", "new_signage_point")] == 39
    assert exporter.dispatcher.events[("chia_harvester", "farming_info")] == 38
    assert exporter.dispatcher.events[("chia_full_node", "block")] == 11


async def test_reconnects_after_a_drop_and_keeps_counting(stream):
    exporter, daemon = stream
    first = await daemon.replay(EVENTS[:20])
    await until(lambda: total_events(exporter) == first)
    await daemon.drop_all()
    await until(lambda: not exporter.events.connected, 5)
    await daemon.wait_registered(timeout=10)  # 1 s backoff, then a new registration
    await until(lambda: exporter.events.connected)
    assert exporter.events.reconnects == 1
    second = await daemon.replay(EVENTS[20:])
    await until(lambda: total_events(exporter) == first + second)
    text = exposition(exporter)
    assert "chia_exporter_websocket_reconnects_total 1.0" in text
    assert "chia_exporter_websocket_connected 1.0" in text


async def test_daemon_restart_keeps_counters(stream):
    exporter, daemon = stream
    first = await daemon.replay(EVENTS[:30])
    await until(lambda: total_events(exporter) == first)
    port = daemon.port
    await daemon.stop()
    await until(lambda: not exporter.events.connected, 5)
    await asyncio.sleep(1.5)  # down long enough for at least one refused reconnect
    await daemon.start(port)
    await daemon.wait_registered(timeout=15)
    await until(lambda: exporter.events.connected)
    second = await daemon.replay(EVENTS[30:])
    await until(lambda: total_events(exporter) == first + second)
    assert exporter.events.reconnects >= 1


async def test_watchdog_reconnects_a_silent_link(stream):
    exporter, daemon = stream
    registrations = daemon.registrations
    # Nothing arrives for longer than the 1 s watchdog: the exporter drops and registers anew.
    await until(lambda: daemon.registrations > registrations, 8)
    assert exporter.events.reconnects >= 1


async def test_a_daemon_that_never_acknowledges_is_retried(fake_farm_factory):
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    daemon.ignore_register = True
    exporter = Exporter(config_for(farm.root.path, **{"events.watchdog": "0.5s"}))
    await exporter.start(background=False)
    exporter.events.start()
    try:
        await until(lambda: sum(r["command"] == "register_service" for r in daemon.requests) >= 2, 8)
        assert not exporter.events.connected
        assert "register_service" in (exporter.events.last_error or "")
    finally:
        await exporter.stop()


async def test_garbage_is_counted_and_the_stream_carries_on(stream):
    exporter, daemon = stream
    await daemon.send_raw("{not json")
    await daemon.send_raw(json.dumps(["a", "list"]))
    await daemon.send_raw(json.dumps({"command": "new_farming_info", "origin": "chia_farmer", "data": "nope"}))
    await daemon.send_raw(json.dumps({"command": "brand_new_command", "origin": "chia_farmer", "data": {}}))
    sent = await daemon.replay(EVENTS[:5])
    await until(lambda: exporter.dispatcher.events[("chia_farmer", "brand_new_command")] == 1)
    await until(lambda: total_events(exporter) >= sent + 2)
    assert exporter.dispatcher.errors["malformed"] >= 2
    assert exporter.events.connected and exporter.events.reconnects == 0


async def test_oversized_message_is_counted_and_the_link_comes_back(fake_farm_factory):
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    exporter = Exporter(config_for(farm.root.path, **{"events.max_message_bytes": 4096}))
    await exporter.start(background=False)
    exporter.events.start()
    try:
        await daemon.wait_registered()
        await until(lambda: exporter.events.connected)
        await daemon.send_raw(json.dumps({"command": "get_plots", "origin": "chia_harvester", "data": {"x": "y" * 10000}}))
        await until(lambda: exporter.dispatcher.errors["oversized"] == 1)
        await daemon.wait_registered(timeout=10)
        await until(lambda: exporter.events.connected)
        sent = await daemon.replay(EVENTS[:3])
        await until(lambda: total_events(exporter) == sent)
    finally:
        await exporter.stop()


def exposition(exporter: Exporter) -> str:
    from prometheus_client.exposition import generate_latest

    return generate_latest(exporter.registry).decode()


async def test_routed_request_without_reply_times_out_and_leaves_nothing(stream):
    from exporter.daemon_ws import StreamRpc
    from exporter.rpc import RpcError

    exporter, daemon = stream
    daemon.routes.pop("chia_farmer")  # the daemon drops requests to a service it does not know
    rpc = StreamRpc(exporter.events, "farmer", "farmer", 0.3, exporter.stats)
    with pytest.raises(RpcError) as err:
        await rpc.call("get_connections")
    assert err.value.outcome == "timeout"
    assert exporter.events._pending == {}
    assert exporter.stats.counts[("farmer", "get_connections", "timeout")] == 1
    # A routed request that is answered is matched by its request_id, among pushed events.
    full_node = StreamRpc(exporter.events, "full_node", "full_node", 2, exporter.stats)
    replay = asyncio.create_task(daemon.replay(EVENTS[:50]))
    state = await full_node.call("get_blockchain_state")
    await replay
    assert state["blockchain_state"]["peak"]["height"] == 6
    assert exporter.events._pending == {}


async def test_pending_requests_fail_at_once_when_the_link_drops(stream):
    from exporter.daemon_ws import StreamRpc
    from exporter.rpc import RpcError

    exporter, daemon = stream
    daemon.routes.pop("chia_wallet")
    rpc = StreamRpc(exporter.events, "wallet", "wallet", 30, exporter.stats)
    call = asyncio.create_task(rpc.call("get_sync_status"))
    await asyncio.sleep(0.1)
    await daemon.drop_all()
    with pytest.raises(RpcError) as err:
        await asyncio.wait_for(call, 5)  # long before the 30 s timeout
    assert err.value.outcome == "refused"
    assert exporter.events._pending == {}


async def test_wallet_ui_socket_takes_only_failed_partial(fake_farm_factory):
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    exporter = Exporter(config_for(farm.root.path, **{"events.failed_partials": "on"}))
    await exporter.start(background=False)
    exporter.events.start()
    exporter.partials.start()
    try:
        await daemon.wait_registered("metrics")
        await daemon.wait_registered("wallet_ui")
        await until(lambda: exporter.events.connected and exporter.partials.connected)
        signage = next(m for m in EVENTS if m["command"] == "new_signage_point")
        # The daemon sends farmer events to both names: they must be counted once.
        await daemon.push(signage, "metrics")
        await daemon.push({**signage, "destination": "wallet_ui"}, "wallet_ui")
        await daemon.push({"ack": False, "command": "get_plots", "data": {"plots": [{"x": 1}] * 1000},
                           "destination": "wallet_ui", "origin": "chia_harvester", "request_id": "1"}, "wallet_ui")
        await daemon.push({"ack": False, "command": "failed_partial", "origin": "chia_farmer",
                           "data": {"p2_singleton_puzzle_hash": "0x" + "ab" * 32},
                           "destination": "wallet_ui", "request_id": "2"}, "wallet_ui")
        await until(lambda: exporter.dispatcher.events[("chia_farmer", "failed_partial")] == 1)
        await asyncio.sleep(0.1)
        assert exporter.dispatcher.events[("chia_farmer", "new_signage_point")] == 1
        assert ("chia_harvester", "get_plots") not in exporter.dispatcher.events
    finally:
        await exporter.stop()


async def test_wallet_ui_socket_stays_closed_without_plot_nfts(fake_farm_factory):
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    exporter = Exporter(config_for(farm.root.path))  # failed_partials: auto
    await exporter.start(background=False)
    exporter.events.start()
    exporter.partials.start()
    try:
        await daemon.wait_registered("metrics")
        await asyncio.sleep(0.5)
        assert not daemon.registered.get("wallet_ui")
        assert not exporter.wants_wallet_ui()
    finally:
        await exporter.stop()


def test_peek_command_reads_the_daemon_layout():
    from exporter.daemon_ws import peek_command

    assert peek_command('{"ack": false, "command": "failed_partial", "data": {}}') == "failed_partial"
    assert peek_command('{"data": {"command": "y"}, "command": "x"}') is None  # other layouts parse in full
    assert peek_command("garbage") is None
