"""The fault suite: each fault against fake mutual-TLS services, with the exporter's loops running.

Every case asserts that /metrics keeps answering fast while the fault lasts (several clients
scrape on a fixed schedule; each scrape is timed from when it was due, p99 and maximum bounded),
that the affected collector reports the failure (chia_exporter_collector_success and the RPC
outcome, or the WebSocket's own families), that every other collector carries on and succeeds,
that /metrics shows it succeeding again within one interval once the fault ends, and that nothing
is left behind: tasks and file descriptors counted before and after, and, while the fault is held
for HOLD_POLLS failed polls, no memory held per failed poll (bytes in Python's small objects,
objects the garbage collector tracks, bytes from malloc).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import heapq
import os
import re
import shutil
import ssl
import sys
import tempfile
import time
from array import array
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass

import aiohttp
import pytest
import trustme
from aiohttp import web

from exporter.app import Exporter
from exporter.daemon_ws import Backoff
from exporter.server import create_app
from tests.fakes.services import Fault
from tests.harness import config_for

# The collector under fault polls every INTERVAL, so that a fault held for HOLD_POLLS failed polls
# keeps a case to a few seconds; the others every OTHERS_INTERVAL, which keeps the loop's load (a
# render of /metrics after every poll) near that of one fast collector.
INTERVAL, TIMEOUT = 0.15, 0.12
OTHERS_INTERVAL, OTHERS_TIMEOUT = 0.5, 0.4
COLLECTORS = ("full_node", "farmer", "harvester", "wallet", "daemon")
HOLD_POLLS = 20

# /metrics is scraped by SCRAPERS clients, each every SCRAPE_EVERY seconds on a fixed schedule,
# and a scrape counts from when it was due: a loop that stalls for a second makes some 120
# scrapes late, not one. Measured on this 2-core machine with other test runs beside it (load
# 0.7-2.5; 400-900 scrapes a case): p99 11-61 ms, maximum 14-68 ms, a render of /metrics after
# each poll taking ~10 ms of it; with two CPU-bound processes added, one case of 19 reached a
# p99 of 105 ms. P99_SCRAPE is the issue's; MAX_SCRAPE catches any stall of the loop longer than
# a quarter second (test_a_stall_of_metrics_is_caught).
SCRAPERS, SCRAPE_EVERY = 3, 0.025
P99_SCRAPE, MAX_SCRAPE = 0.1, 0.25

# Once a fault ends, the next poll starts within one interval and a healthy poll ends within the
# timeout, or it fails; the margin is for reading /metrics after it. Measured: 0.02-0.24 s.
RECOVERY_MARGIN = 0.05
RECOVERY = INTERVAL + TIMEOUT + RECOVERY_MARGIN

# Memory held per failed poll, read at the start, middle and end of the held fault, each time at
# a quiet moment after a full collection (memory_held; Hold says how). Measured without a leak,
# per poll: -240 to +50 bytes in small objects, -0.25 to +0.1 tracked objects, -830 to +500
# bytes from malloc (OpenSSL's buffers come and go with connections). A leak of a list holding
# 100 bytes (224 bytes) reads as 246-290 bytes and 0.9-1.05 objects
# (test_the_leak_check_catches_a_small_leak).
LEAK_BYTES_PER_POLL = 100
LEAK_OBJECTS_PER_POLL = 0.5
LEAK_MALLOC_PER_POLL = 4096

MAX_RSS_GROWTH = 4 * 2**20  # before against after a whole case


class Scrapes:
    """/metrics scraped on a fixed schedule, every scrape's lateness kept (from when it was due
    to when its body was read). Moments when the test itself holds the loop (a full garbage
    collection before memory is read) are left out: a scrape due or running then is not counted."""

    CAPACITY = 60_000

    def __init__(self, url: str) -> None:
        self.url = url
        # Preallocated: a list growing by a float per scrape would read as memory held.
        self.lateness = array("d", bytes(8 * self.CAPACITY))
        self.count = 0
        self.in_flight = 0
        self.failures = 0
        self.first_failure: str | None = None
        self.held = (0.0, 0.0)  # the latest: a list of them would read as memory held
        self._holding_since: float | None = None
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._client(i * SCRAPE_EVERY / SCRAPERS)) for i in range(SCRAPERS)]

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    @contextmanager
    def test_holds_the_loop(self):
        loop = asyncio.get_running_loop()
        self._holding_since = loop.time()
        try:
            yield
        finally:
            self.held = (self._holding_since, loop.time())
            self._holding_since = None

    def _overlaps_a_hold(self, start: float, end: float) -> bool:
        return self._holding_since is not None or (self.held[0] <= end and start <= self.held[1])

    async def _client(self, offset: float) -> None:
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http:
            due = loop.time() + offset
            while not self._stop.is_set():
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.in_flight += 1
                try:
                    async with http.get(self.url + "/metrics") as resp:
                        await resp.read()
                        if resp.status != 200:
                            self._failed(f"HTTP {resp.status}")
                except aiohttp.ClientError as e:
                    self._failed(f"{type(e).__name__}: {e}")
                finally:
                    self.in_flight -= 1
                done = loop.time()
                if self._overlaps_a_hold(due, done):
                    due = done  # skip what fell due meanwhile: the test held the loop, not the exporter
                    continue
                if self.count < self.CAPACITY:
                    self.lateness[self.count] = done - due
                    self.count += 1
                due += SCRAPE_EVERY  # late scrapes stay due when they were: a backlog shows as lateness

    def _failed(self, why: str) -> None:
        self.failures += 1
        self.first_failure = self.first_failure or why

    def summary(self) -> tuple[float, float, int]:
        late = sorted(self.lateness[: self.count])
        assert late, "no scrape was timed"
        return late[int(0.99 * (len(late) - 1))], late[-1], len(late)

    def assert_fast(self, seconds: float) -> None:
        """Every scrape answered 200, nearly every one on time, none very late."""
        assert self.failures == 0, f"{self.failures} scrapes failed, the first: {self.first_failure}"
        p99, worst, n = self.summary()
        # The schedule really ran: at least half the scrapes that fell due were made and timed.
        assert n >= 0.5 * seconds * SCRAPERS / SCRAPE_EVERY, f"only {n} scrapes in {seconds:.1f}s"
        assert p99 < P99_SCRAPE, f"p99 of /metrics {p99 * 1000:.0f} ms late ({n} scrapes)"
        assert worst < MAX_SCRAPE, f"a /metrics scrape {worst * 1000:.0f} ms late ({n} scrapes)"


@dataclass
class Running:
    farm: object
    exporter: Exporter
    url: str
    scrapes: Scrapes
    http: aiohttp.ClientSession
    started: float
    polls_in_flight: int = 0

    def count_polls_in_flight(self) -> None:
        """Wrap each runner's poll to count the polls under way (for ``quiet``)."""
        for runner in self.exporter.runners:
            def counting(poll=runner.poll_once):
                async def poll_once() -> None:
                    self.polls_in_flight += 1
                    try:
                        await poll()
                    finally:
                        self.polls_in_flight -= 1
                return poll_once
            runner.poll_once = counting()

    def runner(self, name: str):
        return self.exporter.runner(name)

    def outcomes(self, name: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for (collector, _, outcome), n in self.exporter.stats.counts.items():
            if collector == name:
                out[outcome] = out.get(outcome, 0) + n
        return out

    def failed_calls(self, name: str) -> int:
        return sum(n for outcome, n in self.outcomes(name).items() if outcome != "ok")

    async def metrics(self) -> str:
        async with self.http.get(self.url + "/metrics") as resp:
            assert resp.status == 200
            return await resp.text()

    def assert_scrapes_fast(self) -> None:
        self.scrapes.assert_fast(time.monotonic() - self.started)


async def until(predicate, timeout: float, what: str, every: float = 0.02) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        await asyncio.sleep(every)
    return time.monotonic() - start


def exporter_tasks() -> set[asyncio.Task]:
    """Tasks of the exporter: the fake services' request handlers share this loop and, for a
    service that hangs, stay until the client leaves; they are not the exporter's."""
    return {t for t in asyncio.all_tasks() if not name_of(t).startswith("RequestHandler")}


def awaited(task: asyncio.Task) -> list[str]:
    """The coroutines a task is suspended in, outermost first."""
    chain, coro = [], task.get_coro()
    while coro is not None:
        chain.append(getattr(coro, "__qualname__", type(coro).__qualname__))
        coro = getattr(coro, "cr_await", None)
    return chain


def name_of(task: asyncio.Task) -> str:
    coro = task.get_coro()
    return getattr(coro, "__qualname__", type(coro).__qualname__)


async def lingering(before: set[asyncio.Task]) -> tuple[list[str], int]:
    """New tasks that outlive every collector's interval (every task of a poll, its fetch, its
    request bodies, its wait for the next interval, ends within it, so what stays that long is
    left behind), and the fewest descriptors open meanwhile."""
    now = exporter_tasks() - before
    fds = await settled(open_fds, max(2 * INTERVAL + TIMEOUT, OTHERS_INTERVAL + 0.1))
    return sorted(name_of(t) for t in now if not t.done()), fds


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def settled(count, span: float) -> int:
    """The lowest reading over ``span``: a poll in flight holds a task and a socket for a moment,
    so one sample may catch it; what stays through every sample is what is held."""
    low = count()
    end = time.monotonic() + span
    while time.monotonic() < end:
        await asyncio.sleep(0.01)
        low = min(low, count())
    return low


@dataclass
class Baseline:
    tasks: set[asyncio.Task]
    fds: int
    rss: int

    @classmethod
    async def take(cls) -> Baseline:
        return cls(exporter_tasks(), await settled(open_fds, 0.2), rss())

    async def check(self, new_fds: int = 0) -> None:
        """``new_fds``: descriptors the case opens for good (a service that came up for the
        first time: its listener, and the pooled connection's two ends in this one process)."""
        left, fds = await lingering(self.tasks)
        assert not left, f"tasks left behind: {left}"
        assert fds <= self.fds + new_fds, f"file descriptors left behind: {self.fds} -> {fds}"
        assert rss() - self.rss < MAX_RSS_GROWTH, f"memory grew by {(rss() - self.rss) / 2**20:.1f} MB"


async def quiet(state: Running) -> None:
    """Until nothing is in flight for a few milliseconds: no poll, no scrape, no request a fake is
    handling (a poll's or a scrape's objects are held only while it runs)."""
    streams = [s for s in (state.exporter.events, state.exporter.partials) if s is not None]

    def busy() -> bool:
        if state.polls_in_flight > 0 or state.scrapes.in_flight > 0:
            return True
        handling = [awaited(t) for t in asyncio.all_tasks() if name_of(t) == "RequestHandler._handle_request"]
        # The fake daemon's handler of each event stream's socket lasts as long as the socket.
        sockets = sum("FakeDaemon.handle" in chain for chain in handling)
        return len(handling) > sockets or sockets > sum(s.connected for s in streams)
    streak, deadline = 0, time.monotonic() + 5
    while streak < 5:
        assert time.monotonic() < deadline, "never quiet"
        await asyncio.sleep(0.002)
        streak = 0 if busy() else streak + 1


def drop_cancelled_timers() -> None:
    """Take cancelled timers out of the loop's queue, as the loop itself does once they are many:
    each poll cancels a few (its timeouts), which wait there until they would have fired."""
    loop = asyncio.get_running_loop()
    loop._scheduled = [h for h in loop._scheduled if not h.cancelled()]
    heapq.heapify(loop._scheduled)
    loop._timer_cancelled_count = 0


def pymalloc_bytes() -> int:
    """Bytes in Python's small-object blocks in use (every object of up to 512 bytes, which is
    nearly every object and every small leak): the allocator's own count, which it prints."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode()
    return int(re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text).group(1).replace(",", ""))


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


_mallinfo2 = getattr(ctypes.CDLL(None), "mallinfo2", None)  # glibc 2.33 and later
if _mallinfo2 is not None:
    _mallinfo2.restype = _Mallinfo2


def malloc_bytes() -> int:
    """Bytes malloc has handed out and not had back (0 where the C library cannot say)."""
    if _mallinfo2 is None:
        return 0
    info = _mallinfo2()
    return info.uordblks + info.hblkhd


async def memory_held(state: Running) -> tuple[int, int, int]:
    """What the process holds, read at a quiet moment right after a full garbage collection
    (which frees objects in reference cycles, such as an exception and its traceback, and empties
    the free lists): bytes in small-object blocks, bytes from malloc, tracked objects."""
    await quiet(state)
    with state.scrapes.test_holds_the_loop():
        drop_cancelled_timers()
        gc.collect()
        held = pymalloc_bytes(), malloc_bytes()
        return held[0], held[1], len(gc.get_objects())


@dataclass
class Hold:
    """What the held fault measured, per failed poll. Small objects and tracked objects count in
    both halves of the hold, the lesser kept: a leak grows by as much in each, while what a new
    exporter fills in its first seconds (some 5 KB: caches, buffers) falls mostly in the first,
    and what one reading happens to catch in passing (a connection the timed-out poll dropped,
    still closing: some 20 objects once in 30 polls) falls in one half only."""

    polls: int  # failed polls between the first and the last reading
    bytes: float  # bytes in small-object blocks still held, the lesser half
    malloc: float  # bytes from malloc (larger objects, what C libraries allocate), whole hold
    objects: float  # objects the garbage collector tracks still held, the lesser half

    @classmethod
    def between(cls, first: tuple, middle: tuple, last: tuple, polls: tuple[int, int, int]) -> Hold:
        start, half, end = polls

        def lesser_half(i: int) -> float:
            return min((middle[i] - first[i]) / (half - start), (last[i] - middle[i]) / (end - half))
        whole = end - start
        return cls(whole, lesser_half(0), (last[1] - first[1]) / whole, lesser_half(2))

    def assert_no_leak(self) -> None:
        if (self.bytes < LEAK_BYTES_PER_POLL and self.objects < LEAK_OBJECTS_PER_POLL
                and self.malloc < LEAK_MALLOC_PER_POLL):
            return
        raise AssertionError(f"held per failed poll over {self.polls} polls: {self.bytes:.0f} bytes in small "
                             f"objects, {self.objects:.2f} objects, {self.malloc:.0f} bytes from malloc "
                             "(tracemalloc can tell where they were allocated)")


async def hold(state: Running, collector: str, failed_polls: int = HOLD_POLLS) -> Hold:
    """Keep the fault on for ``failed_polls`` more failed polls: every poll of the collector fails, the
    others poll on with no failed call, and the memory held is read at the start, in the middle
    and at the end."""
    runner = state.runner(collector)
    others = [n for n in COLLECTORS if n != collector]
    last_success = runner.last_success
    failed_calls = state.failed_calls(collector)
    await polls_of(state, collector, 1)  # state replaced on each poll (its last error) is in place
    polls = {n: state.runner(n).polls for n in others}
    fails = {n: state.failed_calls(n) for n in others}
    await memory_held(state)  # the first full collection of the case frees what start-up left
    readings, at = [], []
    for n in (0, failed_polls // 2, failed_polls - failed_polls // 2):
        await polls_of(state, collector, n)
        readings.append(await memory_held(state))
        at.append(runner.polls)
    measured = Hold.between(*readings, tuple(at))
    assert runner.last_success == last_success and not runner.success, f"{collector} succeeded during the fault"
    assert state.failed_calls(collector) >= failed_calls + failed_polls, f"{collector}: a poll failed no call"
    least = int(failed_polls * INTERVAL / OTHERS_INTERVAL) - 1
    for n in others:  # every other collector carries on, every call of theirs answered
        assert state.runner(n).polls >= polls[n] + least, f"{n} stopped polling"
        assert state.failed_calls(n) == fails[n], f"{n} had failed calls: {state.outcomes(n)}"
        assert state.runner(n).success, f"{n} is failing: {state.runner(n).last_error}"
    return measured


async def polls_of(state: Running, collector: str, n: int) -> None:
    runner = state.runner(collector)
    target = runner.polls + n
    await until(lambda: runner.polls >= target, n * INTERVAL + TIMEOUT + 2, f"{n} polls of {collector}")


async def recovers(state: Running, collector: str, ended: float) -> float:
    """Seconds from the fault's end until /metrics shows the collector succeeding."""
    line = f'chia_exporter_collector_success{{collector="{collector}"}} 1.0'
    while line not in await state.metrics():
        assert time.monotonic() - ended <= RECOVERY, f"{collector} not back within {RECOVERY:g}s"
        await asyncio.sleep(0.005)
    took = time.monotonic() - ended
    assert took <= RECOVERY, f"{collector} back after {took:.2f}s, over {RECOVERY:g}s"
    return took


def quiet_fakes(farm) -> None:
    """The fakes record every request; here they keep only the last, so that a held fault reads
    only what the exporter holds."""
    for svc in farm.services.values():
        if hasattr(svc, "calls"):
            svc.calls = deque(maxlen=1)
        if hasattr(svc, "requests"):
            svc.requests = deque(maxlen=1)


async def start_running(farm, fast: str | None = None, down: tuple[str, ...] = (), **extra) -> tuple[Running, callable]:
    """The exporter with its loops and /metrics served, scraped on schedule from the start;
    ``fast``: the collector under fault, which polls every INTERVAL."""
    # The fake daemon pushes nothing unprompted; a short watchdog would reconnect it mid-case
    # (the watchdog has its own tests in test_event_stream).
    flags = {"events.watchdog": "60s", **extra}
    for name in COLLECTORS:
        interval, timeout = (INTERVAL, TIMEOUT) if name == fast else (OTHERS_INTERVAL, OTHERS_TIMEOUT)
        flags[f"collectors.{name}.interval"] = f"{interval}s"
        flags[f"collectors.{name}.timeout"] = f"{timeout}s"
    flags["collectors.wallet.max_response_bytes"] = "4096"
    quiet_fakes(farm)
    exporter = Exporter(config_for(farm.root.path, **flags))
    app = create_app(exporter)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
    http = aiohttp.ClientSession()
    up = [n for n in COLLECTORS if n not in down]
    await until(lambda: all(exporter.runner(n) and exporter.runner(n).success for n in up), 10, "collectors up")
    if "daemon" not in down:
        await until(lambda: exporter.events.connected, 10, "event stream up")
    scrapes = Scrapes(url)
    scrapes.start()
    state = Running(farm, exporter, url, scrapes, http, time.monotonic())
    state.count_polls_in_flight()
    await state.metrics()  # every client's connection open before any baseline is taken
    await until(lambda: scrapes.count >= 2 * SCRAPERS, 5, "scrapers under way")

    async def close() -> None:
        await scrapes.stop()
        await http.close()
        await runner.cleanup()
    return state, close


@pytest.fixture
async def run(fake_farm_factory):
    """``await run(collector)``: the exporter running against a fresh fake farm."""
    closers = []

    async def start(fast: str | None = None) -> Running:
        state, close = await start_running(await fake_farm_factory(), fast)
        closers.append(close)
        return state
    yield start
    for close in closers:
        await close()


async def check_fault(state: Running, collector: str, outcome: str, start_fault, end_fault, after_recovery=None) -> None:
    baseline = await Baseline.take()
    before = state.outcomes(collector).get(outcome, 0)
    await start_fault()
    await until(lambda: not state.runner(collector).success, 2 * INTERVAL + TIMEOUT + 1, f"{collector} reports failure")
    await until(lambda: state.outcomes(collector).get(outcome, 0) > before, 2, f"{collector} outcome {outcome}")
    text = await state.metrics()
    assert f'chia_exporter_collector_success{{collector="{collector}"}} 0.0' in text
    assert f'collector="{collector}",endpoint=' in text and f'outcome="{outcome}"' in text
    (await hold(state, collector)).assert_no_leak()
    await end_fault()
    await recovers(state, collector, time.monotonic())
    if after_recovery is not None:
        await after_recovery()
    state.assert_scrapes_fast()
    await baseline.check()


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
    state, close = await start_running(farm, "farmer", down=("farmer",),
                                       **({"collectors.farmer.enabled": True} if expected else {}))
    try:
        baseline = await Baseline.take()
        await until(lambda: state.runner("farmer").polls >= 1, 3, "first poll")
        assert not state.runner("farmer").success
        assert state.exporter.stats.counts[("farmer", "get_harvesters_summary", "refused")] >= 1
        text = await state.metrics()
        if expected:
            assert 'chia_exporter_collector_success{collector="farmer"} 0.0' in text
            assert 'chia_exporter_collector_last_success_timestamp_seconds{collector="farmer"} 0.0' in text
            assert 'collector="farmer",endpoint="get_harvesters_summary",outcome="refused"' in text
            assert state.exporter.health()["collectors"]["farmer"]["state"] == "failing"
        else:
            assert 'collector="farmer"' not in text
            assert state.exporter.health()["collectors"]["farmer"]["state"] == "absent"
        assert "chia_farmer_harvesters " not in text  # nothing known, nothing shown
        (await hold(state, "farmer")).assert_no_leak()
        await svc.start(port)
        await recovers(state, "farmer", time.monotonic())
        assert "chia_farmer_harvesters " in await state.metrics()
        state.assert_scrapes_fast()
        await baseline.check(new_fds=3)
    finally:
        await close()


async def test_2_service_dies_mid_run_and_comes_back(run):
    state = await run("wallet")
    await check_fault(state, "wallet", "refused", *restart(state, "wallet"))


async def test_3_daemon_restarts(run):
    """With the HTTPS transport nothing but the daemon collector and the event stream talks to the
    daemon: every other collector succeeds throughout (hold checks it). The stream is back, and
    says so on /metrics, within the longest wait of its backoff after the daemon is."""
    state = await run("daemon")
    events = state.exporter.events
    # The backoff's own schedule (1 s doubling to 30 s) is tested in test_event_stream; here it is
    # kept under two intervals, so that the daemon's whole downtime fits in the case.
    events.backoff = Backoff(start=INTERVAL, cap=2 * INTERVAL)
    reconnects = events.reconnects

    async def stream_back() -> None:
        await until(lambda: events.connected and events.reconnects > reconnects,
                    events.backoff.cap + 0.5, "event stream back within its backoff", every=0.005)
        assert "chia_exporter_websocket_connected 1.0" in await state.metrics()

    await check_fault(state, "daemon", "refused", *restart(state, "daemon", wait=0.5), after_recovery=stream_back)


async def test_4_websocket_dropped_mid_message(run):
    state = await run()
    events = state.exporter.events
    baseline = await Baseline.take()
    reconnects = events.reconnects
    polls = {n: state.runner(n).polls for n in COLLECTORS}
    fails = {n: state.failed_calls(n) for n in COLLECTORS}
    daemon = state.farm.services["daemon"]
    for ws in list(daemon.registered.get("metrics", ())):
        transport = ws._writer.transport  # half a text frame announcing 1000 bytes, then the link dies
        transport.write(b"\x81\x7e\x03\xe8" + b'{"ack": false, "command": "new_signage_point", "da')
        transport.abort()
    await until(lambda: not events.connected, 2, "the drop is noticed")
    assert "chia_exporter_websocket_connected 0.0" in await state.metrics()
    took = await until(lambda: events.reconnects > reconnects and events.connected, 3, "reconnected and registered")
    assert took < 3  # the first retry comes after about a second
    text = await state.metrics()
    assert "chia_exporter_websocket_connected 1.0" in text
    assert f"chia_exporter_websocket_reconnects_total {float(reconnects + 1)}" in text
    # The half message was never an event: nothing was counted for it.
    assert 'command="new_signage_point"' not in text
    for n in COLLECTORS:  # the collectors poll over HTTPS: the drop costs them nothing
        assert state.runner(n).polls >= polls[n] + 2, f"{n} stopped polling"
        assert state.failed_calls(n) == fails[n] and state.runner(n).success, f"{n} failed"
    state.assert_scrapes_fast()
    await baseline.check()


async def test_5_service_accepts_and_never_answers(run):
    state = await run("farmer")
    await check_fault(state, "farmer", "timeout", *fault(state, "farmer", "*", Fault(hang=True)))


async def test_6_service_slower_than_the_timeout(run):
    state = await run("harvester")
    await check_fault(state, "harvester", "timeout", *fault(state, "harvester", "*", Fault(delay=TIMEOUT + 0.3)))


@pytest.mark.parametrize("raw", [b'{"blockchain_state": {"peak": ', b"\x00\xff garbage", b'{"success": true}'])
async def test_7_garbage_or_truncated_json(run, raw):
    state = await run("full_node")
    await check_fault(state, "full_node", "bad_response", *fault(state, "full_node", "get_blockchain_state", Fault(raw=raw)))


async def test_8_success_false(run):
    state = await run("full_node")
    body = Fault(raw=b'{"success": false, "error": "Blockchain is not yet initialized"}')
    await check_fault(state, "full_node", "error", *fault(state, "full_node", "get_blockchain_state", body))
    assert "not yet initialized" not in (state.runner("full_node").last_error or "")  # recovered: cleared


@pytest.mark.parametrize("status", [500, 404])
async def test_9_http_errors(run, status):
    state = await run("wallet")
    await check_fault(state, "wallet", "error", *fault(state, "wallet", "get_wallets", Fault(status=status)))


async def test_10_server_certificate_from_another_ca(run):
    state = await run("farmer")
    other = trustme.CA(organization_name="Not Chia's CA")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.issue_cert("chia.net").configure_cert(ctx)
    state.farm.root.ca.configure_trust(ctx)  # it still accepts our client certificate
    ctx.verify_mode = ssl.CERT_REQUIRED
    await check_fault(state, "farmer", "tls", *restart(state, "farmer", ssl_context=ctx))


async def test_11_certificate_file_vanishes_and_returns(run):
    state = await run("harvester")
    cert = state.farm.root.path / "config" / "ssl" / "harvester" / "private_harvester.crt"
    hidden = cert.with_suffix(".hidden")

    async def start() -> None:
        shutil.move(cert, hidden)

    async def end() -> None:
        shutil.move(hidden, cert)
    await check_fault(state, "harvester", "tls", start, end)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "streamed"])
async def test_12_response_over_the_size_cap(run, chunked):
    # The cap is 4096 bytes here: one body declares its length, the other only streams past it.
    state = await run("wallet")
    big = b'{"success": true, "fingerprint": 1, "wallets": [], "pad": "' + b"x" * 8192 + b'"}'
    await check_fault(state, "wallet", "bad_response",
                      *fault(state, "wallet", "get_wallets", Fault(raw=big, chunked=chunked)))


# The checks themselves: each must fail on what it is there to catch.

LEAKED: list[list[bytes]] = []


async def test_the_leak_check_catches_a_small_leak(run):
    """A collector that keeps about 220 bytes for every failed poll (a list holding 100 bytes)
    fails the leak check, on its bytes and on its objects alike."""
    state = await run("wallet")
    runner = state.runner("wallet")
    failed = runner._failed

    def leaky_failed(reason: str, outcome: str) -> None:
        LEAKED.append([bytes(100)])
        failed(reason, outcome)

    runner._failed = leaky_failed
    start, end = fault(state, "wallet", "get_wallets", Fault(status=500))
    await start()
    await until(lambda: not state.runner("wallet").success, 2, "wallet fails")
    try:
        # Twice the polls of a fault case: a half of 10 polls reads a leak of 10 objects give or
        # take 3 (0.7 a poll once), which is too near the 0.5 that fails a case.
        measured = await hold(state, "wallet", 2 * HOLD_POLLS)
    finally:
        await end()
        LEAKED.clear()
    # The list with its GC header (64 bytes), its one slot (a 16-byte block), the bytes (133,
    # a 144-byte block): 224 bytes, one tracked object.
    assert 180 < measured.bytes < 320, f"read {measured.bytes:.0f} bytes per poll for a leak of 224"
    assert 0.7 < measured.objects < 1.5, f"read {measured.objects:.2f} objects per poll for a leak of one"
    for alone in (Hold(measured.polls, measured.bytes, 0, 0), Hold(measured.polls, 0, 0, measured.objects)):
        with pytest.raises(AssertionError, match="per failed poll"):
            alone.assert_no_leak()


async def test_a_stall_of_metrics_is_caught(run):
    """A /metrics that blocks the loop for 0.4 s once makes every scrape due meanwhile late: the
    p99 and the maximum both catch it, though it is one slow render."""
    state = await run("full_node")
    collect = state.exporter.collect
    stalled = []

    def stalling_collect():
        if not stalled:
            stalled.append(True)
            time.sleep(0.4)  # a render that blocks the loop
        return collect()

    await asyncio.sleep(0.5)
    state.exporter.collect = stalling_collect
    await polls_of(state, "full_node", 1)  # a new generation: the next scrape renders
    await until(lambda: stalled, 2, "the stalled render")
    await asyncio.sleep(0.5)
    p99, worst, n = state.scrapes.summary()
    assert worst >= 0.35 and p99 >= P99_SCRAPE, (p99, worst)
    late = sum(1 for x in state.scrapes.lateness[:n] if x > MAX_SCRAPE)
    assert late >= 0.1 / SCRAPE_EVERY * SCRAPERS, f"only {late} scrapes late of {n}"  # many, not one
    with pytest.raises(AssertionError, match="late"):
        state.assert_scrapes_fast()
