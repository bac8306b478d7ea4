"""The fault suite: each fault against fake mutual-TLS services, with the exporter's loops running.

Every case asserts that /metrics keeps answering fast while the fault lasts (p99 under 100 ms),
that the affected collector reports the failure (chia_exporter_collector_success and the RPC
outcome, or the WebSocket's own families), that every other collector carries on, that it
recovers within one interval once the fault ends, and that no task, file descriptor or memory is
left behind (counted before and after).
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import time
from dataclasses import dataclass, field

import aiohttp
import pytest
import trustme
from aiohttp import web

from exporter.app import Exporter
from exporter.server import create_app
from tests.fakes.services import Fault
from tests.harness import config_for

INTERVAL, TIMEOUT = 0.5, 0.3
COLLECTORS = ("full_node", "farmer", "harvester", "wallet", "daemon")
# What a case may leave: a fault that only counts a new RPC outcome adds a few small objects; a
# leaked session, task or response body is far more.
MAX_OBJECT_GROWTH = 2500
MAX_RSS_GROWTH = 4 * 2**20


@dataclass
class Running:
    farm: object
    exporter: Exporter
    url: str
    latencies: list[float] = field(default_factory=list)

    def runner(self, name: str):
        return self.exporter.runner(name)

    def outcomes(self, name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for (collector, _, outcome), n in self.exporter.stats.counts.items():
            if collector == name:
                out[outcome] = out.get(outcome, 0) + n
        return out

    def p99(self) -> float:
        latencies = sorted(self.latencies)
        assert latencies, "no scrape answered"
        return latencies[int(0.99 * (len(latencies) - 1))]


async def until(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def exporter_tasks() -> set[asyncio.Task]:
    """Tasks of the exporter: the fake services' request handlers share this loop and, for a
    service that hangs, stay until the fake stops; they are not the exporter's."""
    return {t for t in asyncio.all_tasks() if not t.get_coro().__qualname__.startswith("RequestHandler")}


async def lingering(before: set[asyncio.Task]) -> tuple[list[str], int]:
    """New tasks that outlive two polls (every task of a poll, its fetch, its request bodies, its
    wait for the next interval, ends within one, so what stays that long is left behind), and the
    fewest descriptors open meanwhile."""
    now = exporter_tasks() - before
    fds = await settled(open_fds, 2 * INTERVAL + TIMEOUT)
    return sorted(t.get_coro().__qualname__ for t in now if not t.done()), fds


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def live_objects() -> int:
    gc.collect()
    return len(gc.get_objects())


async def settled(count, span: float = 2 * INTERVAL) -> int:
    """The lowest reading over ``span``: a poll in flight holds a task and a socket for a moment,
    so one sample may catch it; what stays through every sample is what is held."""
    low = count()
    end = time.monotonic() + span
    while time.monotonic() < end:
        await asyncio.sleep(0.02)
        low = min(low, count())
    return low


@dataclass
class Baseline:
    tasks: set[asyncio.Task]
    fds: int
    objects: int
    rss: int

    @classmethod
    async def take(cls) -> Baseline:
        fds = await settled(open_fds, INTERVAL)  # over a whole interval: every pool connection open
        return cls(exporter_tasks(), fds, live_objects(), rss())

    async def check(self, new_fds: int = 0) -> None:
        """``new_fds``: descriptors the case opens for good (a service that came up for the
        first time: its listener, and the pooled connection's two ends in this one process)."""
        left, fds = await lingering(self.tasks)
        assert not left, f"tasks left behind: {left}"
        assert fds <= self.fds + 2 + new_fds, f"file descriptors left behind: {self.fds} -> {fds}"
        objects = live_objects()
        assert objects - self.objects < MAX_OBJECT_GROWTH, f"objects left behind: {self.objects} -> {objects}"
        assert rss() - self.rss < MAX_RSS_GROWTH, f"memory grew by {(rss() - self.rss) / 2**20:.1f} MB"


async def start_running(farm, down: tuple[str, ...] = (), **extra) -> tuple[Running, callable]:
    """The exporter with its loops and /metrics served, scraped every 20 ms from the start."""
    # The fake daemon pushes nothing unprompted; a short watchdog would reconnect it mid-case
    # (the watchdog has its own tests in test_event_stream).
    flags = {"events.watchdog": "60s", **extra}
    for name in COLLECTORS:
        flags[f"collectors.{name}.interval"] = f"{INTERVAL}s"
        flags[f"collectors.{name}.timeout"] = f"{TIMEOUT}s"
    flags["collectors.wallet.max_response_bytes"] = "4096"
    exporter = Exporter(config_for(farm.root.path, **flags))
    app = create_app(exporter)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state = Running(farm, exporter, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}")
    stop = asyncio.Event()

    async def scrape() -> None:
        async with aiohttp.ClientSession() as http:
            while not stop.is_set():
                t = time.perf_counter()
                async with http.get(state.url + "/metrics") as resp:
                    await resp.read()
                    assert resp.status == 200
                state.latencies.append(time.perf_counter() - t)
                await asyncio.sleep(0.02)

    up = [n for n in COLLECTORS if n not in down]
    await until(lambda: all(exporter.runner(n) and exporter.runner(n).success for n in up), 10, "collectors up")
    if "daemon" not in down:
        await until(lambda: exporter.events.connected, 10, "event stream up")
    scraper = asyncio.create_task(scrape())

    async def close() -> None:
        stop.set()
        await scraper
        await runner.cleanup()
    return state, close


@pytest.fixture
async def running(fake_farm_factory):
    state, close = await start_running(await fake_farm_factory())
    yield state
    await close()


async def check_fault(state: Running, collector: str, outcome: str, start_fault, end_fault) -> None:
    others = [n for n in COLLECTORS if n != collector]
    baseline = await Baseline.take()
    before = state.outcomes(collector).get(outcome, 0)
    polls = {n: state.runner(n).polls for n in others}

    await start_fault()
    await until(lambda: not state.runner(collector).success, 3 * INTERVAL + TIMEOUT + 1, f"{collector} reports failure")
    await until(lambda: state.outcomes(collector).get(outcome, 0) > before, 2, f"{collector} outcome {outcome}")
    text = await metrics(state)
    assert f'chia_exporter_collector_success{{collector="{collector}"}} 0.0' in text
    assert f'collector="{collector}",endpoint=' in text and f'outcome="{outcome}"' in text
    await others_carry_on(state, others, polls, all_succeed=collector != "daemon")

    await end_fault()
    took = await until(lambda: state.runner(collector).success, INTERVAL + TIMEOUT + 1.0, f"{collector} recovers")
    assert took <= INTERVAL + TIMEOUT + 1.0

    assert state.p99() < 0.1, "p99 of /metrics over 100 ms"
    await baseline.check()


async def others_carry_on(state: Running, others, polls: dict[str, int], all_succeed: bool = True) -> None:
    await until(lambda: all(state.runner(n).polls >= polls[n] + 2 for n in others), 4 * INTERVAL + 1, "others poll on")
    if all_succeed:
        assert all(state.runner(n).success for n in others)


async def metrics(state: Running) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(state.url + "/metrics") as resp:
            return await resp.text()


def fault(state: Running, service: str, endpoint: str, f: Fault):
    svc = state.farm.services[service]

    async def start() -> None:
        svc.faults[endpoint] = f

    async def end() -> None:
        svc.faults.pop(endpoint, None)
    return start, end


def restart(state: Running, service: str, ssl_context=None, wait: float = 0.0):
    svc = state.farm.services[service]
    port = svc.port

    async def start() -> None:
        await svc.stop()
        if ssl_context is not None:
            svc.ssl_context = ssl_context
            await svc.start(port)

    async def end() -> None:
        await svc.stop()
        svc.ssl_context = state.farm.root.server_context()
        await asyncio.sleep(wait)
        await svc.start(port)
    return start, end


@pytest.mark.parametrize("expected", [True, False], ids=["enabled-by-the-user", "on-by-default"])
async def test_1_service_down_at_start_then_up(fake_farm_factory, expected):
    """A collector the user enabled reports a refused service as failing from the start; one that
    is only on by default treats a service that never answered as not installed here ("absent",
    out of the self-metrics) until it first answers."""
    farm = await fake_farm_factory()
    svc = farm.services["farmer"]
    port = svc.port
    await svc.stop()
    state, close = await start_running(farm, down=("farmer",), **({"collectors.farmer.enabled": True} if expected else {}))
    try:
        others = [n for n in COLLECTORS if n != "farmer"]
        baseline = await Baseline.take()
        await until(lambda: state.runner("farmer").polls >= 1, 3, "first poll")
        assert not state.runner("farmer").success
        assert state.exporter.stats.counts[("farmer", "get_harvesters_summary", "refused")] >= 1
        text = await metrics(state)
        if expected:
            assert 'chia_exporter_collector_success{collector="farmer"} 0.0' in text
            assert 'chia_exporter_collector_last_success_timestamp_seconds{collector="farmer"} 0.0' in text
            assert 'collector="farmer",endpoint="get_harvesters_summary",outcome="refused"' in text
            assert state.exporter.health()["collectors"]["farmer"]["state"] == "failing"
        else:
            assert 'collector="farmer"' not in text
            assert state.exporter.health()["collectors"]["farmer"]["state"] == "absent"
        assert "chia_farmer_harvesters " not in text  # nothing known, nothing shown
        await others_carry_on(state, others, {n: state.runner(n).polls for n in others})
        await svc.start(port)
        took = await until(lambda: state.runner("farmer").success, INTERVAL + TIMEOUT + 1, "farmer recovers")
        assert took <= INTERVAL + TIMEOUT + 1
        assert "chia_farmer_harvesters " in await metrics(state)
        assert state.p99() < 0.1, "p99 of /metrics over 100 ms"
        await baseline.check(new_fds=3)
    finally:
        await close()


async def test_2_service_dies_mid_run_and_comes_back(running):
    await check_fault(running, "wallet", "refused", *restart(running, "wallet"))


async def test_3_daemon_restarts(running):
    events = running.exporter.events
    reconnects = events.reconnects
    await check_fault(running, "daemon", "refused", *restart(running, "daemon", wait=0.5))
    await until(lambda: events.connected and events.reconnects > reconnects, 10, "event stream back")


async def test_4_websocket_dropped_mid_message(running):
    events = running.exporter.events
    baseline = await Baseline.take()
    reconnects = events.reconnects
    polls = {n: running.runner(n).polls for n in COLLECTORS}
    daemon = running.farm.services["daemon"]
    for ws in list(daemon.registered.get("metrics", ())):
        transport = ws._writer.transport  # half a text frame announcing 1000 bytes, then the link dies
        transport.write(b"\x81\x7e\x03\xe8" + b'{"ack": false, "command": "new_signage_point", "da')
        transport.abort()
    await until(lambda: not events.connected, 2, "the drop is noticed")
    assert "chia_exporter_websocket_connected 0.0" in await metrics(running)
    took = await until(lambda: events.reconnects > reconnects and events.connected, 3, "reconnected and registered")
    assert took < 3  # the first retry comes after about a second
    text = await metrics(running)
    assert "chia_exporter_websocket_connected 1.0" in text
    assert f"chia_exporter_websocket_reconnects_total {float(reconnects + 1)}" in text
    # The half message was never an event: nothing was counted for it.
    assert 'command="new_signage_point"' not in text
    await others_carry_on(running, COLLECTORS, polls)
    assert running.p99() < 0.1, "p99 of /metrics over 100 ms"
    await baseline.check()


async def test_5_service_accepts_and_never_answers(running):
    await check_fault(running, "farmer", "timeout", *fault(running, "farmer", "*", Fault(hang=True)))


async def test_6_service_slower_than_the_timeout(running):
    await check_fault(running, "harvester", "timeout", *fault(running, "harvester", "*", Fault(delay=TIMEOUT + 0.3)))


@pytest.mark.parametrize("raw", [b'{"blockchain_state": {"peak": ', b"\x00\xff garbage", b'{"success": true}'])
async def test_7_garbage_or_truncated_json(running, raw):
    await check_fault(running, "full_node", "bad_response", *fault(running, "full_node", "get_blockchain_state", Fault(raw=raw)))


async def test_8_success_false(running):
    body = Fault(raw=b'{"success": false, "error": "Blockchain is not yet initialized"}')
    await check_fault(running, "full_node", "error", *fault(running, "full_node", "get_blockchain_state", body))
    assert "not yet initialized" not in (running.runner("full_node").last_error or "")  # recovered: cleared


@pytest.mark.parametrize("status", [500, 404])
async def test_9_http_errors(running, status):
    await check_fault(running, "wallet", "error", *fault(running, "wallet", "get_wallets", Fault(status=status)))


async def test_10_server_certificate_from_another_ca(running):
    other = trustme.CA(organization_name="Not Chia's CA")
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.issue_cert("chia.net").configure_cert(ctx)
    running.farm.root.ca.configure_trust(ctx)  # it still accepts our client certificate
    ctx.verify_mode = ssl.CERT_REQUIRED
    await check_fault(running, "farmer", "tls", *restart(running, "farmer", ssl_context=ctx))


async def test_11_certificate_file_vanishes_and_returns(running):
    cert = running.farm.root.path / "config" / "ssl" / "harvester" / "private_harvester.crt"
    hidden = cert.with_suffix(".hidden")

    async def start() -> None:
        shutil.move(cert, hidden)

    async def end() -> None:
        shutil.move(hidden, cert)
    await check_fault(running, "harvester", "tls", start, end)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "streamed"])
async def test_12_response_over_the_size_cap(running, chunked):
    # The cap is 4096 bytes here: one body declares its length, the other only streams past it.
    big = b'{"success": true, "fingerprint": 1, "wallets": [], "pad": "' + b"x" * 8192 + b'"}'
    await check_fault(running, "wallet", "bad_response",
                      *fault(running, "wallet", "get_wallets", Fault(raw=big, chunked=chunked)))
