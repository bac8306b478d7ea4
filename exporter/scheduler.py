"""Poll loops: each enabled collector on its own interval, one poll in flight at a time.

A poll runs under the collector's timeout, so a hung service costs that collector one interval and
nothing else; ``/metrics`` only reads the last snapshot and never waits on a poll. Within a poll,
:func:`optional_within` gives a secondary call a share of the time left, so that one slow call
costs its own families and not the data the poll already has.
"""

from __future__ import annotations

import asyncio
import logging
import time as _time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, TypeVar

from exporter.aio import cancel_and_wait
from exporter.collectors.base import Collector, optional
from exporter.rpc import NotAllowedError, RpcError

log = logging.getLogger(__name__)

# A refresh asked for by an event (coin_added bursts) waits at least this long after the last
# poll, so that a burst of events costs one poll: a wallet catching up on a long history sends
# coin_added for every coin, and each poll asks get_farmed_amount, which reads the whole history.
MIN_REFRESH_GAP = 10.0

T = TypeVar("T")

# The event loop time at which the running poll is cut off; set by poll_once for the fetch it runs
# (a task copies the context it starts in), unset outside a poll.
_poll_deadline: ContextVar[float | None] = ContextVar("poll_deadline", default=None)
# A call cut off at once would be cancelled before it starts and so never counted: it gets at least this.
MIN_CALL_TIME = 0.01


# Share of the poll's time left that a secondary call takes by default: one slow call leaves time
# for the rest.
SECONDARY_SHARE = 0.5


async def optional_within(call: Awaitable[T], share: float = SECONDARY_SHARE) -> T | None:
    """Like :func:`exporter.collectors.base.optional`, and cut off after ``share`` (0 to 1) of the
    time the poll has left: a call that takes longer is cancelled, which the RPC client counts as a
    ``timeout``, and the poll goes on without it. Outside a poll there is no bound."""
    deadline = _poll_deadline.get()
    if deadline is None:
        return await optional(call)
    left = max(MIN_CALL_TIME, share * (deadline - asyncio.get_running_loop().time()))
    try:
        return await asyncio.wait_for(optional(call), left)
    except asyncio.TimeoutError:
        return None


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
    last_outcome: str | None = None  # of the last failed poll: an RPC outcome, or "error"
    polls: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _last_poll_end: float = 0.0

    @property
    def name(self) -> str:
        return self.collector.name

    @property
    def absent(self) -> bool:
        """A service this host does not run: on by default only, it has refused every connection
        since the exporter started. Once it has answered, or when the user asked for it, a refused
        connection is a failure."""
        return (not self.collector.config.required and self.last_success is None
                and self.last_error is not None and self.last_outcome == "refused")

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
        timeout = self.collector.config.timeout
        deadline_token = _poll_deadline.set(asyncio.get_running_loop().time() + timeout)
        try:
            snapshot = await asyncio.wait_for(self.collector.fetch(self.rpc), timeout)
        except asyncio.TimeoutError:
            self._failed(f"poll took longer than {self.collector.config.timeout:g}s", "timeout")
        except RpcError as e:
            self._failed(str(e), e.outcome)
        except NotAllowedError as e:
            # A programming error, never a service's fault: say so loudly and stop this loop.
            log.critical("collector %s stopped: %s", self.name, e)
            self._failed(f"stopped: {e}", "error")
            raise
        except Exception as e:  # a bug must not end the loop; it is logged with its traceback
            log.exception("collector %s: unexpected error", self.name)
            self._failed(f"{type(e).__name__}: {e}", "error")
        else:
            self.snapshot = snapshot
            self.success = True
            self.last_error = None
            self.last_success = self.clock.time()
        finally:
            _poll_deadline.reset(deadline_token)
            self.duration = self.clock.monotonic() - start
            self.polls += 1
            self._last_poll_end = self.clock.monotonic()

    def _failed(self, reason: str, outcome: str) -> None:
        news = self.success or self.polls == 0 or reason != self.last_error  # log a change, not a repeat
        self.success = False
        self.last_error, self.last_outcome = reason, outcome
        if news:  # a service that is simply not installed here is expected on many hosts: info
            (log.info if self.absent else log.warning)("collector %s failed: %s", self.name, reason)

    async def run_forever(self) -> None:
        interval = self.collector.config.interval
        while True:
            started = self.clock.monotonic()
            # Cleared before the poll: a refresh asked for while it runs (a coin_added after the
            # balance was read) gets a poll of its own.
            self._wake.clear()
            await self.poll_once()
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
        self.started = False

    @property
    def running(self) -> bool:
        """Started, and no poll loop has ended (an events-only exporter has no loops at all)."""
        return self.started and not any(t.done() for t in self.tasks)

    def start(self) -> None:
        self.started = True
        self.tasks = [asyncio.create_task(r.run_forever(), name=f"poll-{r.name}") for r in self.runners]

    async def stop(self) -> None:
        self.started = False
        await cancel_and_wait(self.tasks)

    def runner(self, name: str) -> CollectorRunner | None:
        return next((r for r in self.runners if r.name == name), None)
