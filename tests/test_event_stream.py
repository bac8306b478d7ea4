"""The daemon WebSocket never goes silent: reconnects, re-registers, and keeps every count."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from exporter import daemon_ws
from exporter.app import Exporter
from exporter.daemon_ws import Backoff, EventStream, StreamRpc
from exporter.rpc import RpcError
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


@pytest.fixture
async def routed(fake_farm_factory):
    """Like ``stream``, with the default watchdog: nothing reconnects while a request waits."""
    farm = await fake_farm_factory()
    exporter = Exporter(config_for(farm.root.path))
    await exporter.start(background=False)
    exporter.events.start()
    daemon = farm.services["daemon"]
    await daemon.wait_registered()
    await until(lambda: exporter.events.connected)
    yield exporter, daemon, farm
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


def pings(daemon) -> int:
    return sum(r["command"] == "ping" for r in daemon.requests)


async def test_a_quiet_daemon_that_answers_ping_keeps_its_link(stream):
    """A wallet-only host or an idle node sends nothing for minutes: that is no reason to reconnect."""
    exporter, daemon = stream  # watchdog 1 s: ping after 0.5 s of silence, answer within 0.25 s
    events = exporter.events
    # While events flow, nothing is asked.
    for m in [m for m in EVENTS if m["origin"] != "daemon"][:15]:
        await daemon.push(m)
        await asyncio.sleep(0.1)
    assert pings(daemon) == 0 and events.pings == 0
    # Then nothing comes for three watchdog windows.
    await asyncio.sleep(3.0)
    assert events.reconnects == 0 and daemon.registrations == 1 and events.connected
    assert pings(daemon) >= 4 and events.pings == pings(daemon)
    assert [r["data"] for r in daemon.requests if r["command"] == "ping"][0] == {}
    # The answers are the transport's own: not events, not late replies, not RPC calls.
    assert total_events(exporter) == 15 and events.late_replies == 0
    assert not [k for k in exporter.stats.counts if k[1] == "ping"]
    assert "chia_exporter_websocket_reconnects_total 0.0" in exposition(exporter)


async def test_a_daemon_that_stops_answering_is_left_within_silence_and_ping_timeout(stream):
    exporter, daemon = stream  # watchdog 1 s: 0.5 s of silence, then 0.25 s for the answer
    events = exporter.events
    daemon.ping_frames(0.1)  # its WebSocket layer still pings, as the real daemon's does
    loop = asyncio.get_running_loop()
    asked = pings(daemon)
    daemon.silent = True  # ... and nothing it is asked is answered any more
    started = loop.time()
    await until(lambda: not events.connected, 3)
    assert loop.time() - started < 0.5 + 0.25 + 0.3  # silence + ping timeout, and some slack
    assert pings(daemon) == asked + 1
    assert "no answer to ping" in events.last_error
    daemon.silent = False
    await until(lambda: events.connected, 5)  # 1 s backoff, a new registration
    assert events.reconnects == 1


async def test_a_quiet_wallet_ui_socket_keeps_its_link(fake_farm_factory):
    """The wallet_ui socket reads only failed_partial; the answer to its ping still counts."""
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    exporter = Exporter(config_for(farm.root.path))
    await exporter.start(background=False)
    partials = EventStream(exporter.session, "127.0.0.1", daemon.port, exporter.events.tls, exporter.dispatcher,
                           watchdog=1, max_message_bytes=1 << 20, service="wallet_ui",
                           only_commands=frozenset({"failed_partial"}), gate=lambda: True)
    partials.start()
    try:
        await daemon.wait_registered("wallet_ui")
        await until(lambda: partials.connected)
        await asyncio.sleep(2.5)
        assert partials.pings >= 3 and partials.reconnects == 0 and daemon.registrations == 1
    finally:
        await partials.stop()
        await exporter.stop()


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
    exporter, daemon = stream
    daemon.delays["chia_farmer"] = math.inf  # runs, says the daemon, and never answers
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


async def test_request_to_a_service_not_running_is_refused_at_once_and_remembered(routed):
    """The daemon drops a request to a service that is not connected: its is_running says why."""
    exporter, daemon, farm = routed
    data_layer = daemon.routes.pop("chia_data_layer")  # this host runs no DataLayer
    rpc = StreamRpc(exporter.events, "data_layer", "data_layer", 4, exporter.stats)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RpcError) as err:
        await rpc.call("get_owned_stores")
    assert err.value.outcome == "refused"
    assert "chia_data_layer is not running under the daemon" in err.value.detail
    assert loop.time() - started < 3  # asked after a quarter of the timeout, not after the whole 4 s
    # The next poll asks is_running first, and sends the service nothing.
    before = len(daemon.requests)
    started = loop.time()
    with pytest.raises(RpcError) as err:
        await rpc.call("subscriptions")
    assert err.value.outcome == "refused" and loop.time() - started < 1
    assert [(r["command"], r["data"]) for r in daemon.requests[before:]] == [("is_running", {"service": "chia_data_layer"})]
    # The check is the transport's own: only the collector's calls are counted.
    assert exporter.stats.counts[("data_layer", "get_owned_stores", "refused")] == 1
    assert not [k for k in exporter.stats.counts if k[1] == "is_running"]
    # Once the service runs, it is asked again.
    daemon.routes["chia_data_layer"] = data_layer
    assert (await rpc.call("get_owned_stores"))["store_ids"]
    assert "chia_data_layer" not in exporter.events.not_running
    assert exporter.events._pending == {}


async def test_a_reply_after_its_request_gave_up_is_not_an_event(routed):
    exporter, daemon, _ = routed
    runner = exporter.runner("full_node")
    await runner.poll_once()  # over HTTPS: a snapshot that a pushed get_blockchain_state would update
    snapshot = runner.snapshot
    daemon.delays["chia_full_node"] = 0.6
    rpc = StreamRpc(exporter.events, "full_node", "full_node", 0.3, exporter.stats)
    with pytest.raises(RpcError) as err:
        await rpc.call("get_blockchain_state")
    assert err.value.outcome == "timeout"
    await until(lambda: exporter.events.late_replies == 1, 5)
    assert sum(exporter.dispatcher.events.values()) == 0  # not counted as an event ...
    assert runner.snapshot is snapshot  # ... nor folded into the node's state as if pushed
    assert exporter.events.connected and exporter.events.reconnects == 0


async def test_overflow_and_deep_nesting_are_malformed_not_a_reconnect(routed):
    exporter, daemon, _ = routed
    await daemon.send_raw("[" * 100_000)  # RecursionError in json.loads
    await daemon.send_raw('{"ack": false, "command": "block", "origin": "chia_full_node", "data": {"height": 1e999, '
                          '"fork_height": 1, "validation_time": 0.1, "pre_validation_time": 0.1}}')  # int(inf)
    sent = await daemon.replay(EVENTS[:5])
    await until(lambda: total_events(exporter) == sent + 1)
    assert exporter.dispatcher.errors["malformed"] == 2
    blocks = sum(m["command"] == "block" for m in EVENTS[:5])
    assert exporter.dispatcher.events[("chia_full_node", "block")] == blocks + 1  # the bad one is counted
    assert exporter.events.connected and exporter.events.reconnects == 0


async def test_pending_requests_fail_at_once_when_the_link_drops(stream):
    exporter, daemon = stream
    daemon.delays["chia_wallet"] = math.inf
    rpc = StreamRpc(exporter.events, "wallet", "wallet", 30, exporter.stats)
    call = asyncio.create_task(rpc.call("get_sync_status"))
    await asyncio.sleep(0.1)
    await daemon.drop_all()
    with pytest.raises(RpcError) as err:
        await asyncio.wait_for(call, 5)  # long before the 30 s timeout
    assert err.value.outcome == "refused"
    assert exporter.events._pending == {}


def test_backoff_doubles_to_a_cap_that_jitter_never_exceeds():
    high = Backoff(jitter=lambda: 1.2)
    delays = [high.next() for _ in range(8)]
    assert delays[:5] == pytest.approx([1.2, 2.4, 4.8, 9.6, 19.2])
    assert max(delays) == 30.0  # 30 s x 1.2 is cut to 30 s
    high.reset()
    assert high.next() == pytest.approx(1.2)
    low = Backoff(jitter=lambda: 0.8)
    assert [low.next() for _ in range(8)][-1] == pytest.approx(24.0)


async def test_backoff_starts_over_once_a_link_has_registered(fake_farm_factory, monkeypatch):
    monkeypatch.setattr(daemon_ws, "BACKOFF_START", 0.05)
    monkeypatch.setattr(daemon_ws, "BACKOFF_MAX", 0.4)
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    port = daemon.port
    await daemon.stop()
    exporter = Exporter(config_for(farm.root.path))
    await exporter.start(background=False)
    events = exporter.events
    events.start()
    try:
        await until(lambda: events.backoff.current == 0.4, 10)  # refused over and over: at the cap
        await daemon.start(port)
        await daemon.wait_registered(timeout=10)
        await until(lambda: events.connected)
        await daemon.drop_all()
        await until(lambda: not events.connected, 5)
        await daemon.wait_registered(timeout=10)
        await until(lambda: events.connected)
        assert events.reconnects == 1
        assert events.last_delay <= 0.05 * 1.2  # the drop of a link that was up waited 1 s-like, not the cap
    finally:
        await exporter.stop()


async def test_connect_and_tls_handshake_have_a_time_limit(fake_farm_factory, monkeypatch):
    monkeypatch.setattr(daemon_ws, "CONNECT_TIMEOUT", 0.3)
    farm = await fake_farm_factory()
    held = []
    server = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)  # accepts, never speaks TLS
    exporter = Exporter(config_for(farm.root.path))
    await exporter.start(background=False)
    silent = EventStream(exporter.session, "127.0.0.1", server.sockets[0].getsockname()[1], exporter.events.tls,
                         exporter.dispatcher, watchdog=300, max_message_bytes=1 << 20)
    silent.start()
    try:
        await until(lambda: "no connection within 0.3s" in (silent.last_error or ""), 5)
        assert not silent.connected
    finally:
        await silent.stop()
        await exporter.stop()
        server.close()
        for w in held:
            w.close()


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


async def test_wallet_ui_socket_closes_once_no_longer_wanted(fake_farm_factory, monkeypatch):
    """The gate is looked at while the socket is open too, however busy wallet_ui is."""
    monkeypatch.setattr(daemon_ws, "GATE_RECHECK", 0.1)
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    exporter = Exporter(config_for(farm.root.path))
    await exporter.start(background=False)
    wanted = [True]
    partials = EventStream(exporter.session, "127.0.0.1", daemon.port, exporter.events.tls, exporter.dispatcher,
                           watchdog=300, max_message_bytes=1 << 20, service="wallet_ui",
                           only_commands=frozenset({"failed_partial"}), gate=lambda: wanted[0])
    partials.start()

    async def busy() -> None:  # every wallet change goes to wallet_ui
        while True:
            await daemon.push({"ack": False, "command": "state_changed", "origin": "chia_wallet",
                               "data": {"state": "coin_added"}}, "wallet_ui")
            await asyncio.sleep(0.01)
    pusher = asyncio.create_task(busy())
    try:
        await daemon.wait_registered("wallet_ui")
        await until(lambda: partials.connected)
        wanted[0] = False  # e.g. the last plot NFT left its pool
        await until(lambda: not partials.connected and not daemon.registered.get("wallet_ui"), 3)
        wanted[0] = True
        await daemon.wait_registered("wallet_ui", timeout=5)
        await until(lambda: partials.connected)
        assert partials.reconnects == 0  # closed on purpose, not a drop
        assert total_events(exporter) == 0
    finally:
        pusher.cancel()
        await partials.stop()
        await exporter.stop()


def test_peek_command_reads_the_daemon_layout():
    from exporter.daemon_ws import peek_command

    assert peek_command('{"ack": false, "command": "failed_partial", "data": {}}') == "failed_partial"
    assert peek_command('{"data": {"command": "y"}, "command": "x"}') is None  # other layouts parse in full
    assert peek_command("garbage") is None
