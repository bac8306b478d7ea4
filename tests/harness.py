"""Run the exporter against fake services once, deterministically, and compare with goldens."""

from __future__ import annotations

import asyncio
import difflib
from pathlib import Path

from prometheus_client.exposition import generate_latest

from exporter import self_metrics
from exporter.app import Exporter
from exporter.config import Config, load
from exporter.scheduler import Clock
from tests.fakes.daemon import FakeDaemon

GOLDEN = Path(__file__).parent / "golden"
FROZEN_TIME = 1_800_000_000.0


def frozen_clock() -> Clock:
    return Clock(time=lambda: FROZEN_TIME, monotonic=lambda: 0.0)


def config_for(root: Path, **flags) -> Config:
    """The Config the exporter builds from a CHIA_ROOT alone, plus dotted-key flags."""
    return load({"chia_root": str(root), **flags}, environ={})


async def poll_all(exporter: Exporter) -> None:
    for runner in exporter.runners:
        await runner.poll_once()


async def render_once(config: Config, replay: list[dict] | None = None, daemon: FakeDaemon | None = None) -> str:
    """Start without background loops, poll every collector once, replay events, render.

    Events go the way the real daemon sends them: ``daemon`` (the fake daemon, over mutual TLS)
    pushes each message of ``replay`` to the exporter's own event stream, registered as
    ``metrics``; the render waits until the stream has read every one.
    """
    exporter = Exporter(config, clock=frozen_clock(), process_metrics=False)  # those vary from run to run
    await exporter.start(background=False)
    try:
        # Requests over the daemon transport, and replayed events, need the stream up first; it is
        # brought up whenever events are on, so that its own families show as they would live.
        if exporter.events is not None:
            exporter.events.start()
            await wait_connected(exporter)
        else:
            assert not replay, "events.enabled is off"
        await poll_all(exporter)
        if replay:
            assert daemon is not None, "events are replayed through the fake daemon"
            await replay_through(exporter, daemon, replay)
        return exposition(exporter)
    finally:
        await exporter.stop()


async def replay_through(exporter: Exporter, daemon: FakeDaemon, messages: list[dict], timeout: float = 10.0) -> int:
    """Push recorded messages through the fake daemon and wait until the stream has read them all."""
    stream = exporter.events
    assert stream is not None
    before = stream.received
    sent = await daemon.replay(messages)
    await until(lambda: stream.received >= before + sent, timeout)
    return sent


async def wait_connected(exporter: Exporter, timeout: float = 10.0) -> None:
    await until(lambda: exporter.events.connected, timeout)


async def until(predicate, timeout: float = 10.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.01)
    await asyncio.wait_for(loop(), timeout)


def exposition(exporter: Exporter) -> str:
    saved = self_metrics.PYTHON_VERSION
    self_metrics.PYTHON_VERSION = "3.x"  # goldens are the same on every Python
    try:
        return generate_latest(exporter.registry).decode()
    finally:
        self_metrics.PYTHON_VERSION = saved


def assert_golden(name: str, text: str, update: bool, variant: str = "") -> None:
    """Compare with tests/golden/NAME.prom, or NAME.VARIANT.prom where a variant's output differs."""
    path = GOLDEN / f"{name}.prom"
    if variant and (GOLDEN / f"{name}.{variant}.prom").exists():
        path = GOLDEN / f"{name}.{variant}.prom"
    if update or not path.exists():
        path.write_text(text)
        if not update:
            raise AssertionError(f"{path} did not exist: written, review it and run again")
        return
    want = path.read_text()
    if text != want:
        diff = "".join(difflib.unified_diff(want.splitlines(True), text.splitlines(True), str(path), "got"))
        raise AssertionError(f"/metrics differs from {path} (pytest --update-golden rewrites it):\n{diff}")
