"""Poll loops: refreshes asked for by events, staleness, absent services, programming errors."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from exporter.app import Exporter
from exporter.collectors.base import Collector, gauge
from exporter.rpc import NotAllowedError, RpcError
from exporter.scheduler import Clock, CollectorRunner, Scheduler
from tests.harness import config_for


class Recorder(Collector[int]):
    """A collector whose poll takes ``poll_time`` and records when each one started."""

    name = "recorder"
    service = "full_node"

    def __init__(self, config, poll_time: float = 0.0, fail: Exception | None = None) -> None:
        super().__init__(config)
        self.poll_time, self.fail = poll_time, fail
        self.started: list[float] = []

    async def fetch(self, rpc) -> int:
        self.started.append(asyncio.get_running_loop().time())
        await asyncio.sleep(self.poll_time)
        if self.fail is not None:
            raise self.fail
        return len(self.started)

    def render(self, snapshot: int):
        yield gauge("recorder_polls", "Polls so far.", snapshot)


@pytest.fixture
def root(chia_root):
    chia_root.write_config({})
    return chia_root


@pytest.fixture
def settings(root):
    return config_for(root.path).collectors["full_node"]


def runner(settings, clock=None, **kw) -> CollectorRunner:
    return CollectorRunner(Recorder(replace(settings, **{k: v for k, v in kw.items() if k in ("interval", "timeout")}),
                                    **{k: v for k, v in kw.items() if k in ("poll_time", "fail")}),
                           rpc=None, clock=clock or Clock())


async def test_a_refresh_asked_for_during_a_poll_gets_a_poll_of_its_own(settings, monkeypatch):
    monkeypatch.setattr("exporter.scheduler.MIN_REFRESH_GAP", 0.1)
    r = runner(settings, interval=60.0, timeout=10.0, poll_time=0.3)
    task = asyncio.create_task(r.run_forever())
    await asyncio.sleep(0.1)
    r.request_refresh()  # a coin_added while the balance is being read
    await asyncio.sleep(0.8)
    task.cancel()
    assert len(r.collector.started) == 2


async def test_a_burst_of_refreshes_costs_one_poll(settings, monkeypatch):
    monkeypatch.setattr("exporter.scheduler.MIN_REFRESH_GAP", 0.2)
    r = runner(settings, interval=60.0, timeout=10.0)
    task = asyncio.create_task(r.run_forever())
    await asyncio.sleep(0.05)
    for _ in range(33):  # the coin_added events of a farmed block, within milliseconds
        r.request_refresh()
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.6)
    task.cancel()
    assert len(r.collector.started) == 2  # the first poll, then one for the whole burst


async def test_data_leaves_metrics_once_stale_and_the_self_metrics_stay(root):
    now = [1000.0]
    clock = Clock(time=lambda: now[0], monotonic=lambda: 0.0)
    config = config_for(root.path, **{"collectors.full_node.interval": "30s", "events.enabled": False})
    exporter = Exporter(config, clock=clock, process_metrics=False)
    collector = Recorder(config.collectors["full_node"])
    exporter.collectors = [collector]
    await exporter.start(background=False)
    try:
        run = exporter.runners[0]
        await run.poll_once()
        text = lambda: "\n".join(f.name for f in exporter.collect())  # noqa: E731
        assert "recorder_polls" in text()
        now[0] += 3 * 30  # exactly the staleness bound: still shown
        assert "recorder_polls" in text()
        now[0] += 0.5
        assert "recorder_polls" not in text()
        assert "chia_exporter_collector_last_success_timestamp_seconds" in text()
        assert "chia_exporter_collector_success" in text()
    finally:
        await exporter.stop()


async def test_a_refused_service_is_absent_until_it_answers_unless_required(settings):
    refused = RpcError("refused", "get_blockchain_state", "cannot connect")
    default = runner(settings, fail=refused)
    await default.poll_once()
    assert default.absent and default.state == "absent"
    default.collector.fail = None
    await default.poll_once()
    default.collector.fail = refused
    await default.poll_once()
    assert not default.absent and default.state == "failing"  # seen once: now a failure

    required = CollectorRunner(Recorder(replace(settings, required=True), fail=refused), rpc=None)
    await required.poll_once()
    assert not required.absent and required.state == "failing"

    timeout = runner(settings, fail=RpcError("timeout", "get_blockchain_state", "no answer"))
    await timeout.poll_once()
    assert timeout.state == "failing"  # something listens there: not "not installed"


async def test_an_endpoint_outside_the_allowlist_stops_the_loop_loudly(settings, caplog):
    r = runner(settings, fail=NotAllowedError("full_node/farm_block is not a read-only endpoint"))
    scheduler = Scheduler([r])
    scheduler.start()
    with caplog.at_level(logging.CRITICAL, logger="exporter.scheduler"):
        with pytest.raises(NotAllowedError):
            await asyncio.wait_for(scheduler.tasks[0], 2)
    assert not scheduler.running
    assert "farm_block" in r.last_error and r.state == "failing"
    assert any("stopped" in rec.getMessage() and rec.levelno == logging.CRITICAL for rec in caplog.records)


async def test_an_exporter_with_no_polled_collector_is_healthy(root):
    off = {f"collectors.{n}.enabled": False for n in ("full_node", "farmer", "harvester", "wallet", "data_layer")}
    exporter = Exporter(config_for(root.path, **off, **{"collectors.daemon.enabled": False, "events.enabled": False}),
                        process_metrics=False)
    await exporter.start()
    try:
        assert exporter.runners == [] and exporter.health()["healthy"] is True
    finally:
        await exporter.stop()
    assert exporter.health()["healthy"] is False


async def test_a_task_that_swallows_a_cancellation_is_still_stopped():
    """asyncio.wait_for on Python 3.10/3.11 can lose a cancellation that lands as its awaitable
    completes; stopping must not hang on a loop that carried on."""
    from exporter.aio import cancel_and_wait

    swallowed = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(True)  # as wait_for does when its inner future just finished

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0.02)
    await asyncio.wait_for(cancel_and_wait([task], each=0.05), 2)
    assert task.cancelled() and swallowed
