"""Poll loops: each enabled collector on its own interval, one poll in flight at a time.

A poll runs under the collector's timeout, so a hung service costs that collector one interval and
nothing else; ``/metrics`` only reads the last snapshot and never waits on a poll.
"""

from __future__ import annotations

import asyncio
import logging
import time as _time
from dataclasses import dataclass, field
from typing import Any, Callable

from exporter.collectors.base import Collector
from exporter.rpc import NotAllowedError, RpcError

log = logging.getLogger(__name__)

# A refresh asked for by an event (coin_added bursts) waits at least this long after the last
# poll, so that a burst of events costs one poll.
MIN_REFRESH_GAP = 2.0


@dataclass
class Clock:
    """Wall time for timestamps, monotonic time for durations; tests pass fixed ones."""

    time: Callable[[], float] = _time.time
    monotonic: Callable[[], float] = _time.monotonic


@dataclass
class CollectorRunner:
    collector: Collector
    rpc: Any
    clock: Clock = field(default_factory=Clock)
    snapshot: Any = None
    success: bool = False
    duration: float | None = None
    last_success: float | None = None  # wall time
    last_error: str | None = None
    polls: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _last_poll_end: float = 0.0

    @property
    def name(self) -> str:
        return self.collector.name

    @property
    def absent(self) -> bool:
        """A service this host does not run: never answered, and refuses connections."""
        return (self.collector.shown_once_seen and self.last_success is None
                and self.last_error is not None and "refused" in self.last_error)

    @property
    def state(self) -> str:
        if self.polls == 0:
            return "starting"
        if self.absent:
            return "absent"
        return "ok" if self.success else "failing"

    def fresh(self) -> bool:
        """Whether the last snapshot may still be shown."""
        if self.snapshot is None or self.last_success is None:
            return False
        return self.clock.time() - self.last_success <= self.collector.config.stale_after

    def request_refresh(self) -> None:
        """Poll soon (used by events such as a wallet's coin_added); bursts coalesce."""
        self._wake.set()

    async def poll_once(self) -> None:
        start = self.clock.monotonic()
        try:
            snapshot = await asyncio.wait_for(self.collector.fetch(self.rpc), self.collector.config.timeout)
        except asyncio.TimeoutError:
            self._failed(f"poll took longer than {self.collector.config.timeout:g}s")
        except RpcError as e:
            self._failed(str(e), quiet=e.outcome == "refused")
        except NotAllowedError:
            raise
        except Exception as e:  # a bug must not end the loop; it is logged with its traceback
            log.exception("collector %s: unexpected error", self.name)
            self._failed(f"{type(e).__name__}: {e}")
        else:
            self.snapshot = snapshot
            self.success = True
            self.last_error = None
            self.last_success = self.clock.time()
        finally:
            self.duration = self.clock.monotonic() - start
            self.polls += 1
            self._last_poll_end = self.clock.monotonic()

    def _failed(self, reason: str, quiet: bool = False) -> None:
        # A service that is simply not running is expected on many hosts: say it once at info.
        if self.success or self.polls == 0 or reason != self.last_error:
            (log.info if quiet else log.warning)("collector %s failed: %s", self.name, reason)
        self.success = False
        self.last_error = reason

    async def run_forever(self) -> None:
        interval = self.collector.config.interval
        while True:
            started = self.clock.monotonic()
            await self.poll_once()
            self._wake.clear()
            delay = max(0.0, started + interval - self.clock.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except asyncio.TimeoutError:
                continue
            # Woken by an event: give the burst a moment to finish, then poll.
            gap = MIN_REFRESH_GAP - (self.clock.monotonic() - self._last_poll_end)
            if gap > 0:
                await asyncio.sleep(gap)


class Scheduler:
    def __init__(self, runners: list[CollectorRunner]) -> None:
        self.runners = runners
        self.tasks: list[asyncio.Task] = []

    @property
    def running(self) -> bool:
        return bool(self.tasks) and not any(t.done() for t in self.tasks)

    def start(self) -> None:
        self.tasks = [asyncio.create_task(r.run_forever(), name=f"poll-{r.name}") for r in self.runners]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def runner(self, name: str) -> CollectorRunner | None:
        return next((r for r in self.runners if r.name == name), None)
