"""The fault suite: each fault against fake mutual-TLS services, with the exporter's loops running.

Every case asserts that /metrics keeps answering fast while the fault lasts, that the affected
collector reports the failure (chia_exporter_collector_success and the RPC outcome), that every
other collector carries on, that it recovers within one interval once the fault ends, and that
no task or file descriptor is left behind.
"""

from __future__ import annotations

import asyncio
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


async def until(predicate, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def exporter_tasks() -> int:
    """Tasks of the exporter: the fake services' request handlers share this loop and, for a
    service that hangs, stay until the fake stops; they are not the exporter's."""
    return sum(1 for t in asyncio.all_tasks() if not t.get_coro().__qualname__.startswith("RequestHandler"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def running(fake_farm_factory):
    farm = await fake_farm_factory()
    # The fake daemon pushes nothing unprompted; a short watchdog would reconnect it mid-case
    # (the watchdog has its own tests in test_event_stream).
    flags = {"events.watchdog": "60s"}
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

    await until(lambda: all(exporter.runner(n) and exporter.runner(n).success for n in COLLECTORS), 10, "all collectors up")
    await until(lambda: exporter.events.connected, 10, "event stream up")
    scraper = asyncio.create_task(scrape())
    yield state
    stop.set()
    await scraper
    await runner.cleanup()


async def check_fault(state: Running, collector: str, outcome: str, start_fault, end_fault) -> None:
    others = [n for n in COLLECTORS if n != collector]
    await asyncio.sleep(INTERVAL)  # a settled baseline: every pool connection open
    tasks, fds = exporter_tasks(), open_fds()
    before = state.outcomes(collector).get(outcome, 0)
    polls = {n: state.runner(n).polls for n in others}

    await start_fault()
    await until(lambda: not state.runner(collector).success, 3 * INTERVAL + TIMEOUT + 1, f"{collector} reports failure")
    await until(lambda: state.outcomes(collector).get(outcome, 0) > before, 2, f"{collector} outcome {outcome}")
    text = await metrics(state)
    assert f'chia_exporter_collector_success{{collector="{collector}"}} 0.0' in text
    # every other collector carries on
    await until(lambda: all(state.runner(n).polls >= polls[n] + 2 for n in others), 4 * INTERVAL + 1, "others poll on")
    assert all(state.runner(n).success for n in others if n != "daemon" or collector != "daemon")

    await end_fault()
    took = await until(lambda: state.runner(collector).success, INTERVAL + TIMEOUT + 1.0, f"{collector} recovers")
    assert took <= INTERVAL + TIMEOUT + 1.0

    latencies = sorted(state.latencies)
    assert latencies and latencies[int(0.99 * (len(latencies) - 1))] < 0.1, "p99 of /metrics over 100 ms"
    # A poll in flight holds a task and a socket for a moment: a leak is what stays.
    await until(lambda: exporter_tasks() <= tasks, 4 * INTERVAL, f"tasks left behind: {tasks} -> {exporter_tasks()}")
    await until(lambda: open_fds() <= fds + 2, 4 * INTERVAL, f"file descriptors left behind: {fds} -> {open_fds()}")


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


async def test_1_service_down_at_start_then_up(fake_farm_factory):
    farm = await fake_farm_factory()
    svc = farm.services["farmer"]
    port = svc.port
    await svc.stop()
    exporter = Exporter(config_for(farm.root.path, **{"collectors.farmer.interval": "0.5s", "collectors.farmer.timeout": "0.3s",
                                                      "events.enabled": False}))
    await exporter.start()
    try:
        await until(lambda: exporter.runner("farmer").polls >= 1, 3, "first poll")
        assert not exporter.runner("farmer").success
        assert exporter.stats.counts[("farmer", "get_harvesters_summary", "refused")] >= 1
        await until(lambda: exporter.runner("full_node").success, 3, "full node unaffected")
        await svc.start(port)
        await until(lambda: exporter.runner("farmer").success, INTERVAL + TIMEOUT + 1, "farmer recovers")
    finally:
        await exporter.stop()


async def test_2_service_dies_mid_run_and_comes_back(running):
    await check_fault(running, "wallet", "refused", *restart(running, "wallet"))


async def test_3_daemon_restarts(running):
    events = running.exporter.events
    reconnects = events.reconnects
    await check_fault(running, "daemon", "refused", *restart(running, "daemon", wait=0.5))
    await until(lambda: events.connected and events.reconnects > reconnects, 10, "event stream back")


async def test_4_websocket_dropped_mid_message(running):
    events = running.exporter.events
    reconnects = events.reconnects
    daemon = running.farm.services["daemon"]
    for ws in list(daemon.registered.get("metrics", ())):
        transport = ws._writer.transport  # half a text frame announcing 1000 bytes, then the link dies
        transport.write(b"\x81\x7e\x03\xe8" + b'{"ack": false, "command": "new_signage_point", "da')
        transport.abort()
    await until(lambda: events.reconnects > reconnects and events.connected, 10, "reconnected and registered")
    await asyncio.sleep(INTERVAL)
    assert all(running.runner(n).success for n in COLLECTORS)


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
    await check_fault(running, "wallet", "error", *fault(running, "wallet", "get_sync_status", Fault(status=status)))


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


async def test_12_response_over_the_size_cap(running):
    big = b'{"success": true, "synced": true, "syncing": false, "pad": "' + b"x" * 8192 + b'"}'
    await check_fault(running, "wallet", "bad_response", *fault(running, "wallet", "get_sync_status", Fault(raw=big)))
