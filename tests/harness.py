"""Run the exporter against fake services once, deterministically, and compare with goldens."""

from __future__ import annotations

import difflib
from pathlib import Path

from prometheus_client.exposition import generate_latest

from exporter import self_metrics
from exporter.app import Exporter
from exporter.config import Config, load
from exporter.scheduler import Clock

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


async def render_once(config: Config, replay: list[dict] | None = None) -> str:
    """Start without background loops, poll every collector once, feed events, render."""
    exporter = Exporter(config, clock=frozen_clock())
    await exporter.start(background=False)
    try:
        if config.transport == "daemon":  # requests travel over the event stream: bring it up first
            exporter.events.start()
            await wait_connected(exporter)
        await poll_all(exporter)
        for message in replay or ():
            exporter.dispatcher.dispatch(message)
        return exposition(exporter)
    finally:
        await exporter.stop()


async def wait_connected(exporter: Exporter, timeout: float = 10.0) -> None:
    import asyncio

    async def until() -> None:
        while not exporter.events.connected:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(until(), timeout)


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
