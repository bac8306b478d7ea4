"""The daemon's WebSocket: requests to the daemon, and the event stream that never goes silent.

The event stream registers as ``metrics`` and folds every pushed event into the collectors'
:class:`EventState` objects, which live as long as the exporter: a dropped link, a daemon that no
longer answers or a daemon restart costs a reconnect (1 s doubling to 30 s, with jitter; back to
1 s once a link has registered), never the counts. A link that is merely quiet is asked the
daemon's ``ping`` and stays up while the daemon answers.

Every message written to a daemon WebSocket goes through :func:`send_checked`, which refuses a
command outside the read-only allowlist.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import uuid
from collections import Counter
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import aiohttp
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exporter.aio import cancel_and_wait
from exporter.collectors.base import EventState
from exporter.rpc import SHAPE_ERRORS, ReplyTooLarge, RpcError, RpcStats, TlsFiles, check_allowed, counted

log = logging.getLogger(__name__)


BACKOFF_START, BACKOFF_MAX = 1.0, 30.0
GATE_RECHECK = 15.0  # how often a gated stream looks again whether it is wanted (closed or open)
REGISTER_TIMEOUT = 10.0
CONNECT_TIMEOUT = 10.0  # TCP connect, TLS handshake and WebSocket upgrade, before the watchdog applies
# A request routed to a service that is still unanswered after this long (or a quarter of its
# timeout, if shorter) asks the daemon whether the service runs: the daemon drops requests to a
# service that is not connected to it, so without asking they would only ever time out.
PROBE_AFTER = 2.0
# The keepalive: a registered link quiet this long (or half the watchdog, if shorter) is asked
# the daemon's ping, and is reconnected only if nothing at all arrives within PING_TIMEOUT (or a
# quarter of the watchdog) after it. A quiet daemon that answers keeps its link; a dead one is
# noticed within PING_AFTER + PING_TIMEOUT, or three quarters of the watchdog.
PING_AFTER = 30.0
PING_TIMEOUT = 10.0
# Distinct (origin, command) series of chia_exporter_events_total beyond the known events; past
# it, new ones are counted under command="other" (and origin="other" for an unknown origin).
MAX_UNKNOWN_EVENT_SERIES = 256
OTHER = "other"
# What a malformed event can raise while parsed or folded in: what a malformed RPC body can.
EVENT_ERRORS = SHAPE_ERRORS

# The events the daemon relays to metrics (and failed_partial, to wallet_ui), by sending service
# (reference/chia-rpc-and-events.md, section 2.1): each always has its own series.
KNOWN_EVENTS: dict[str, frozenset[str]] = {
    "chia_full_node": frozenset({"get_blockchain_state", "block", "signage_point"}),
    "chia_farmer": frozenset({"new_signage_point", "new_farming_info", "harvester_update", "harvester_removed",
                              "submitted_partial", "failed_partial", "proof", "add_connection", "close_connection"}),
    "chia_harvester": frozenset({"farming_info", "add_connection", "close_connection"}),
    "chia_wallet": frozenset({"sync_changed", "coin_added", "add_connection", "close_connection"}),
    "chia_crawler": frozenset({"crawl_batch_completed", "loaded_initial_peers"}),
    "chia_timelord": frozenset({"finished_pot", "new_compact_proof", "skipping_peak", "new_peak"}),
}


# The daemon's names of the services, for routing requests to them, and back: the key of each
# in the read-only allowlist.
DESTINATIONS = {"full_node": "chia_full_node", "farmer": "chia_farmer", "harvester": "chia_harvester",
                "wallet": "chia_wallet", "data_layer": "chia_data_layer", "crawler": "chia_crawler",
                "timelord": "chia_timelord", "daemon": "daemon"}
SERVICE_OF_DESTINATION = {destination: service for service, destination in DESTINATIONS.items()}


def _message(command: str, data: dict, destination: str = "daemon", origin: str = "metrics") -> dict:
    return {"command": command, "ack": False, "data": data, "request_id": uuid.uuid4().hex,
            "destination": destination, "origin": origin}


class MessageTooLarge(ConnectionError):
    """The link closed because a message from the daemon was over the exporter's own limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"a message over {limit} bytes (events.max_message_bytes) closed the daemon WebSocket "
                         "before the reply came; perhaps the reply itself")


class Reply(NamedTuple):
    """A reply to a request on the event stream's WebSocket."""

    body: dict  # the whole message: command, data, origin, request_id, ...
    size: int  # its length as received (the daemon writes ASCII JSON: characters are bytes)


async def send_checked(ws: aiohttp.ClientWebSocketResponse, msg: dict) -> None:
    """The only write of a message to a daemon WebSocket: its command is checked against the
    read-only allowlist of the service it is for (NotAllowedError), whatever asked for it. An
    unknown destination has no allowlist and is refused too."""
    check_allowed(SERVICE_OF_DESTINATION.get(msg["destination"], ""), msg["command"])
    await ws.send_json(msg)


class DaemonRpc:
    """Requests to the daemon (``is_running``, ``get_version``): one short connection per poll.

    Used by the daemon collector; each request is checked against the read-only allowlist and
    counted like an HTTPS call.
    """

    def __init__(self, session: aiohttp.ClientSession, host: str, port: int, tls: TlsFiles,
                 timeout: float, max_response_bytes: int, stats: RpcStats, collector: str = "daemon") -> None:
        self.session, self.host, self.port, self.tls = session, host, port, tls
        self.timeout, self.max_bytes, self.stats, self.collector = timeout, max_response_bytes, stats, collector
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"wss://{host}:{self.port}/"

    async def __aenter__(self) -> DaemonRpc:
        try:
            self._ws = await asyncio.wait_for(self.session.ws_connect(
                self.url, ssl=self.tls.context(), max_msg_size=self.max_bytes, autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_receive=self.timeout, ws_close=2.0),
            ), min(CONNECT_TIMEOUT, self.timeout))
        except Exception as e:
            outcome, detail = classify(e, self.timeout)
            self.stats.record(self.collector, "connect", outcome)
            raise RpcError(outcome, "connect", detail) from None
        return self

    async def __aexit__(self, *exc) -> None:
        if self._ws is not None:
            await self._ws.close()
            self._ws = None

    async def call(self, command: str, data: dict | None = None, parse: Callable[[dict], Any] | None = None) -> Any:
        check_allowed("daemon", command)
        return await counted(self.stats, self.collector, command, self._request(command, data or {}), parse)

    async def _request(self, command: str, data: dict) -> dict:
        assert self._ws is not None, "use DaemonRpc as an async context manager"
        msg = _message(command, data, origin="chia_prometheus_exporter")
        try:
            await send_checked(self._ws, msg)
            body = await asyncio.wait_for(self._reply(command, msg["request_id"]), self.timeout)
        except RpcError:
            raise
        except asyncio.TimeoutError:
            raise RpcError("timeout", command, f"no answer within {self.timeout:g}s") from None
        except (ValueError, RecursionError):
            raise RpcError("bad_response", command, "not JSON") from None
        except (aiohttp.ClientError, ConnectionError) as e:
            raise RpcError("bad_response", command, f"connection broke: {type(e).__name__}") from None
        data_out = body.get("data")
        if not isinstance(data_out, dict):
            raise RpcError("bad_response", command, "reply has no data object")
        if data_out.get("success") is False:
            raise RpcError("error", command, str(data_out.get("error") or "success is false"))
        return data_out

    async def _reply(self, command: str, request_id: str) -> dict:
        """The reply with our request_id; events pushed meanwhile are not ours to read."""
        assert self._ws is not None
        while True:
            reply = await self._ws.receive()
            if reply.type != aiohttp.WSMsgType.TEXT:
                raise RpcError("bad_response", command, f"connection ended ({reply.type.name})")
            body = json.loads(reply.data)
            if isinstance(body, dict) and body.get("request_id") == request_id:
                return body


def classify(e: BaseException, timeout: float) -> tuple[str, str]:
    """Map a connection error to an outcome, without ever echoing certificate contents."""
    if isinstance(e, (asyncio.TimeoutError, TimeoutError, aiohttp.ServerTimeoutError)):
        return "timeout", f"no answer within {timeout:g}s"
    if isinstance(e, (ssl.SSLError, aiohttp.ClientSSLError)):
        inner = getattr(e, "certificate_error", None) or getattr(e, "os_error", None) or e
        return "tls", f"TLS handshake failed: {getattr(inner, 'verify_message', None) or getattr(inner, 'reason', None) or inner}"
    if isinstance(e, aiohttp.ClientConnectorError):
        return "refused", f"cannot connect: {e.os_error}"
    if isinstance(e, aiohttp.WSServerHandshakeError):
        return "error", f"WebSocket handshake refused: HTTP {e.status}"
    return "error", f"{type(e).__name__}: {e}"


class EventDispatcher:
    """Routes each event to the states of its origin and counts what came.

    The count's series are bounded: the known events (and those the states consume) always have
    their own; up to :data:`MAX_UNKNOWN_EVENT_SERIES` other (origin, command) pairs get theirs, and
    any further one is counted under ``command="other"``, so an odd daemon cannot grow the series
    without end.
    """

    def __init__(self, states: Iterable[EventState], clock: Callable[[], float]) -> None:
        self.by_origin: dict[str, list[EventState]] = {}
        for s in states:
            self.by_origin.setdefault(s.origin, []).append(s)
        self.states = list(states)
        self.clock = clock
        self.known: dict[str, frozenset[str]] = dict(KNOWN_EVENTS)
        for s in self.states:
            self.known[s.origin] = self.known.get(s.origin, frozenset()) | s.commands
        self.events: Counter[tuple[str, str]] = Counter()
        self.last_event: dict[str, float] = {}
        self.errors: Counter[str] = Counter()  # reason -> count of events that could not be used
        self.unknown_series = 0  # distinct (origin, command) pairs outside the known events

    def dispatch_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            self.reject("malformed", "not JSON")
            return
        self.dispatch(msg)

    def dispatch(self, msg: Any) -> None:
        if not isinstance(msg, dict) or not isinstance(msg.get("command"), str):
            self.reject("malformed", "no command")
            return
        origin = msg.get("origin") if isinstance(msg.get("origin"), str) else "unknown"
        command = msg["command"]
        now = self.clock()
        key = self.series(origin, command)
        self.events[key] += 1
        self.last_event[key[0]] = now
        data = msg.get("data")
        for state in self.by_origin.get(origin, ()):
            if command not in state.commands:
                continue
            try:
                if not isinstance(data, dict):
                    raise TypeError("data is not an object")
                state.handle(command, data, now)
            except EVENT_ERRORS as e:
                self.reject("malformed", f"{origin} {command}: {type(e).__name__}: {str(e)[:200]}")

    def series(self, origin: str, command: str) -> tuple[str, str]:
        """The (origin, command) labels an event is counted under."""
        key = (origin, command)
        if key in self.events or command in self.known.get(origin, ()):
            return key
        if self.unknown_series < MAX_UNKNOWN_EVENT_SERIES:
            self.unknown_series += 1
            return key
        return (origin if origin in self.known else OTHER, OTHER)

    def reject(self, reason: str, detail: str) -> None:
        self.errors[reason] += 1
        # A flood of bad events must not flood the log: the first few, then every 1000th.
        n = self.errors[reason]
        if n <= 5 or n % 1000 == 0:
            log.warning("event rejected (%s, %d so far): %s", reason, n, detail)

    def render(self) -> Iterator[Metric]:
        now = self.clock()
        events = CounterMetricFamily("chia_exporter_events", "chia_exporter: daemon events received, by sending service and command.",
                                     labels=["origin", "command"])
        for (origin, command), n in sorted(self.events.items()):
            events.add_metric([origin, command], n)
        yield events
        last = GaugeMetricFamily("chia_exporter_last_event_timestamp_seconds",
                                 "chia_exporter: Unix time of the last daemon event from each service.", labels=["origin"])
        for origin, ts in sorted(self.last_event.items()):
            last.add_metric([origin], ts)
        yield last
        errors = CounterMetricFamily("chia_exporter_event_errors",
                                     "chia_exporter: daemon messages that could not be used (malformed, oversized).",
                                     labels=["reason"])
        for reason in ("malformed", "oversized"):
            errors.add_metric([reason], self.errors.get(reason, 0))
        yield errors

    def render_states(self, shown: Callable[[EventState], bool]) -> Iterator[Metric]:
        """The families of the states for which ``shown`` holds."""
        now = self.clock()
        for state in self.states:
            if shown(state):
                yield from state.render(now)


class Backoff:
    """Delays between reconnects: 1 s doubling to 30 s, each jittered by ×0.8–1.2 and never over
    the cap; :meth:`reset` once a link is up again."""

    def __init__(self, start: float | None = None, cap: float | None = None,
                 jitter: Callable[[], float] | None = None) -> None:
        self.start = BACKOFF_START if start is None else start
        self.cap = BACKOFF_MAX if cap is None else cap
        self.jitter = jitter or (lambda: random.uniform(0.8, 1.2))
        self.current = self.start

    def next(self) -> float:
        delay = min(self.current * self.jitter(), self.cap)
        self.current = min(self.current * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.current = self.start


class EventStream:
    """A long-lived daemon WebSocket: connect, register, read, and reconnect forever.

    The main stream registers as ``metrics``. A second one may register as ``wallet_ui`` for the
    one event the daemon sends nowhere else (the farmer's ``failed_partial``): ``only_commands``
    then drops every other message by a look at its first bytes, before any JSON parsing, since
    ``wallet_ui`` also receives every wallet change and whole ``get_plots`` bodies; and ``gate``
    keeps it closed while it has nothing to listen for (a farmer without plot NFTs), looked at
    every :data:`GATE_RECHECK` seconds, also while the socket is open.
    """

    def __init__(self, session: aiohttp.ClientSession, host: str, port: int, tls: TlsFiles,
                 dispatcher: EventDispatcher, watchdog: float, max_message_bytes: int,
                 service: str = "metrics", only_commands: frozenset[str] | None = None,
                 gate: Callable[[], bool] | None = None) -> None:
        self.session, self.host, self.port, self.tls = session, host, port, tls
        self.dispatcher = dispatcher
        self.watchdog = watchdog
        self.max_message_bytes = max_message_bytes
        self.service = service
        self.only_commands = only_commands
        self.gate = gate
        self.connected = False
        self.reconnects = 0
        self.connections = 0
        self.last_error: str | None = None
        self.backoff = Backoff()
        self.last_delay: float | None = None  # the wait before the latest reconnect attempt
        self.received = 0  # text messages read and handled (events, replies, dropped ones)
        self.late_replies = 0  # replies whose request had already given up: dropped
        self.not_running: set[str] = set()  # destinations the daemon last said are not running
        self.answered: set[str] = set()  # destinations that replied on this link: slow is not absent
        self._closed_by_gate = False
        self._task: asyncio.Task | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future] = {}  # request_id -> reply, for routed RPC
        self._up = asyncio.Event()  # set while connected and registered
        self.pings = 0  # keepalive pings sent on quiet links
        self._ping_id: str | None = None  # request_id of the ping awaiting its answer

    async def request(self, destination: str, command: str, data: dict, timeout: float) -> Reply:
        """Send a request through the daemon and wait, within ``timeout``, for the reply with its id.

        The daemon drops a request to a service that is not connected to it. So a request to a
        service that has not replied yet on this link and does not answer within
        :data:`PROBE_AFTER` asks the daemon's ``is_running``,
        and fails at once as ``refused`` when the daemon says the service is not running; that is
        remembered, and the next request to it asks ``is_running`` first instead of waiting again.
        A service that runs and does not answer ends in a timeout. The pending entry is always
        removed. A command outside the allowlist is refused before anything is sent, the
        ``is_running`` probe included.
        """
        check_allowed(SERVICE_OF_DESTINATION.get(destination, ""), command)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        routed = destination != "daemon"
        if routed and destination in self.not_running:
            await self._refuse_if_not_running(destination, command, deadline)
        if not self.connected:  # at start or during a reconnect: wait for the link, within the timeout
            try:
                await asyncio.wait_for(self._up.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise RpcError("refused", command, "the daemon WebSocket is not connected") from None
        ws = self._ws
        if ws is None:
            raise RpcError("refused", command, "the daemon WebSocket is not connected")
        msg = _message(command, data, destination=destination)
        future: asyncio.Future = loop.create_future()
        self._pending[msg["request_id"]] = future
        try:
            await send_checked(ws, msg)
            if routed and destination not in self.answered:
                await asyncio.wait({future}, timeout=min(PROBE_AFTER, timeout / 4))
                if not future.done():
                    await self._refuse_if_not_running(destination, command, deadline, future)
            reply = await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            self.answered.discard(destination)  # stopped since? the next request asks the daemon
            raise RpcError("timeout", command, f"no reply from {destination} within {timeout:g}s") from None
        except MessageTooLarge as e:
            raise ReplyTooLarge(command, str(e)) from None
        except (aiohttp.ClientError, ConnectionError) as e:
            raise RpcError("refused", command, f"the daemon WebSocket broke: {type(e).__name__}") from None
        finally:
            self._pending.pop(msg["request_id"], None)
        self.not_running.discard(destination)
        self.answered.add(destination)
        return reply

    async def _refuse_if_not_running(self, destination: str, command: str, deadline: float,
                                     answered: asyncio.Future | None = None) -> None:
        running = await self.is_running(destination, deadline - asyncio.get_running_loop().time())
        if running is False and not (answered is not None and answered.done()):
            self.not_running.add(destination)
            raise RpcError("refused", command, f"{destination} is not running under the daemon")
        if running:
            self.not_running.discard(destination)

    async def is_running(self, service: str, timeout: float) -> bool | None:
        """The daemon's ``is_running`` for a service (its process, or its socket registered under
        that name: the simulator runs as chia_full_node_simulator and registers as chia_full_node,
        and both answer true); None when the daemon gave no usable answer in time.

        The transport's own check, like the WebSocket's registration: not counted as a call of
        the collector that asked.
        """
        check_allowed("daemon", "is_running")
        if timeout <= 0:
            return None
        try:
            reply = await self.request("daemon", "is_running", {"service": service}, timeout)
        except RpcError as e:
            log.debug("is_running %s: %s", service, e)
            return None
        data = reply.body.get("data")
        if isinstance(data, dict) and data.get("success") is True and isinstance(data.get("is_running"), bool):
            log.debug("is_running %s: %s", service, data["is_running"])
            return data["is_running"]
        return None

    def _fail_pending(self, reason: str | ConnectionError) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(reason if isinstance(reason, ConnectionError) else ConnectionError(reason))
        self._pending.clear()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"wss://{host}:{self.port}/"

    def start(self) -> None:
        self._task = asyncio.create_task(self.run_forever(), name=f"daemon-events-{self.service}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        self.connected = False

    async def run_forever(self) -> None:
        while True:
            if self.gate is not None and not self.gate():
                await asyncio.sleep(GATE_RECHECK)
                continue
            try:
                await self._session_once()  # returns only when the gate closed the socket
            except asyncio.CancelledError:
                raise
            except Exception as e:  # every failure ends in a reconnect, never in silence
                outcome, detail = classify(e, REGISTER_TIMEOUT)
                if detail != self.last_error:
                    log.warning("daemon WebSocket %s: %s; reconnecting", self.url, detail)
                self.last_error = detail
            finally:
                self.connected = False
                self._up.clear()
                self._ws = None
                self.answered.clear()  # a new link, perhaps a new daemon: services may be gone
                self._fail_pending("the daemon WebSocket closed")
            if self._closed_by_gate:
                continue
            # The backoff started over when this session registered (_session_once).
            self.last_delay = self.backoff.next()
            await asyncio.sleep(self.last_delay)

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        try:
            return await asyncio.wait_for(self.session.ws_connect(
                self.url, ssl=self.tls.context(), max_msg_size=self.max_message_bytes,
                # Ping frames are answered below, not inside receive(), which would start its
                # timeout over at each one (the daemon sends one every 30 s) and put the
                # watchdog's deadlines off.
                autoping=False,
                heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
            ), CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            raise ConnectionError(f"no connection within {CONNECT_TIMEOUT:g}s "
                                  "(TCP connect, TLS or WebSocket handshake)") from None

    async def _session_once(self) -> None:
        was_up = self.connections > 0 and not self._closed_by_gate
        self._closed_by_gate = False
        loop = asyncio.get_running_loop()
        async with await self._connect() as ws:
            self._ws = ws
            await send_checked(ws, _message("register_service", {"service": self.service}))
            self.connections += 1
            if was_up:
                self.reconnects += 1
            registered = False
            quiet_after, answer_within = min(PING_AFTER, self.watchdog / 2), min(PING_TIMEOUT, self.watchdog / 4)
            last = loop.time()  # of the last message
            pinged_at: float | None = None  # when the quiet link was asked ping, until anything arrives
            next_gate = loop.time() + GATE_RECHECK
            while True:
                now = loop.time()
                if registered and self.gate is not None and now >= next_gate:
                    next_gate = now + GATE_RECHECK
                    if not self.gate():
                        log.info("daemon WebSocket %s: %s no longer wanted, closing", self.url, self.service)
                        self._closed_by_gate = True
                        return
                # The watchdog. A quiet host (a wallet alone, an idle node, a harvester without a
                # farmer) sends nothing for minutes, so silence proves nothing: a quiet link is
                # asked the daemon's ping, and only one that leaves it unanswered is dead.
                if not registered:
                    deadline = last + min(REGISTER_TIMEOUT, self.watchdog)
                elif pinged_at is None:
                    deadline = last + quiet_after
                else:
                    deadline = pinged_at + answer_within
                wake = min(deadline, next_gate) if registered and self.gate is not None else deadline
                try:
                    msg = await ws.receive(timeout=max(wake - now, 0.001))
                except asyncio.TimeoutError:
                    now = loop.time()
                    if now < deadline:
                        continue  # only the gate's turn
                    if not registered:
                        raise ConnectionError("watchdog: no reply to register_service") from None
                    if pinged_at is not None:
                        raise ConnectionError(f"watchdog: nothing for {quiet_after:g}s, and no answer to ping "
                                              f"within {answer_within:g}s") from None
                    pinged_at = now
                    await self._ping(ws, answer_within)
                    continue
                if msg.type == aiohttp.WSMsgType.PING:
                    # A control frame with no command. It shows the daemon's socket is open, not
                    # that its message path works: the watchdog goes on as it was.
                    await ws.pong(msg.data)
                    continue
                if msg.type == aiohttp.WSMsgType.PONG:
                    continue
                pinged_at = None
                last = loop.time()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    try:
                        if self._handle_text(msg.data, registered):
                            registered = True
                    finally:
                        self.received += 1
                elif msg.type == aiohttp.WSMsgType.BINARY:
                    self.dispatcher.reject("malformed", "binary message")
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    if isinstance(msg.data, aiohttp.WebSocketError) and msg.data.code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                        self.dispatcher.reject("oversized", f"message over {self.max_message_bytes} bytes")
                        # Perhaps the reply a request waits for: it fails as too large, not as a
                        # refused link, so that the asker can tell (the harvester's plot list).
                        self._fail_pending(MessageTooLarge(self.max_message_bytes))
                    raise ConnectionError(f"WebSocket error: {type(msg.data).__name__}")
                else:  # CLOSE, CLOSING, CLOSED
                    raise ConnectionError(f"daemon closed the connection ({msg.type.name})")

    async def _ping(self, ws: aiohttp.ClientWebSocketResponse, within: float) -> None:
        """Ask the daemon's ``ping`` (it answers ``pong`` and changes nothing): whatever arrives
        next proves the link alive. A send that cannot even be written in time is a dead link."""
        msg = _message("ping", {})
        self._ping_id = msg["request_id"]
        self.pings += 1
        log.debug("daemon WebSocket %s: %s quiet, asking ping", self.url, self.service)
        try:
            await asyncio.wait_for(send_checked(ws, msg), within)
        except asyncio.TimeoutError:
            raise ConnectionError(f"watchdog: ping not sent within {within:g}s") from None

    def _handle_text(self, text: str, registered: bool) -> bool:
        """One text message: the registration's ack (returns True), a reply, or an event."""
        if registered and self.only_commands is not None:
            command = peek_command(text)
            if command is not None and command not in self.only_commands:
                return False
        try:
            body = json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
            self.dispatcher.reject("malformed", "not JSON")
            return False
        if not registered and _is_register_ack(body):
            self.connected = True
            self._up.set()
            self.last_error = None
            self.backoff.reset()  # a link that came up: the next drop waits 1 s again
            log.info("daemon WebSocket %s: registered as %s", self.url, self.service)
            return True
        if isinstance(body, dict) and body.get("ack") is True:
            # A reply. The daemon pushes its events with ack false (every recorded one), so one
            # with ack true is ours: the pending request's, or a late one whose request gave up,
            # which must not be counted or folded in as an event. The answer to the keepalive's
            # ping only had to arrive.
            if self._ping_id is not None and body.get("request_id") == self._ping_id:
                self._ping_id = None
                return False
            future = self._pending.pop(body.get("request_id"), None) if isinstance(body.get("request_id"), str) else None
            if future is not None:
                if not future.done():
                    future.set_result(Reply(body, len(text)))
            else:
                self.late_replies += 1
                log.debug("daemon WebSocket %s: dropped a reply to %s from %s that came after its request gave up "
                          "(%d so far)", self.url, body.get("command"), body.get("origin"), self.late_replies)
            return False
        if self.only_commands is not None and (
                not isinstance(body, dict) or body.get("command") not in self.only_commands):
            return False  # the main stream counts everything else
        self.dispatcher.dispatch(body)
        return False


def peek_command(text: str) -> str | None:
    """The command of a daemon message from its first bytes, without parsing the rest.

    The daemon writes messages with sorted keys (``{"ack": ..., "command": "...", "data": ...``),
    so the command is near the start; anything else reads as None and is parsed in full.
    """
    if not text.startswith('{"ack": '):
        return None
    start = text.find('"command": "', 0, 32)
    if start < 0:
        return None
    start += len('"command": "')
    end = text.find('"', start, start + 64)
    return text[start:end] if end > 0 else None


def _is_register_ack(msg: Any) -> bool:
    return isinstance(msg, dict) and msg.get("command") == "register_service" and msg.get("origin") == "daemon"



class StreamRpc:
    """A service's RPC routed through the daemon, over the event stream's one WebSocket.

    Same interface and outcomes as :class:`exporter.rpc.RpcClient`, so collectors, snapshots and
    goldens are the same whichever transport is configured.
    """

    def __init__(self, stream: EventStream, service: str, collector: str, timeout: float, stats: RpcStats) -> None:
        self.stream, self.service, self.collector = stream, service, collector
        self.destination = DESTINATIONS[service]
        self.timeout, self.stats = timeout, stats
        # The size of the last reply, in bytes: the harvester's plot list must stay under the
        # largest message the daemon relays, and learns from this how large a plot's entry is.
        self.last_reply_bytes: int | None = None

    async def __aenter__(self) -> StreamRpc:  # the daemon collector's interface: nothing to open
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    async def call(self, endpoint: str, params: dict | None = None, parse: Callable[[dict], Any] | None = None) -> Any:
        check_allowed(self.service, endpoint)

        async def body() -> dict:
            reply = await self.stream.request(self.destination, endpoint, params or {}, self.timeout)
            self.last_reply_bytes = reply.size
            data = reply.body.get("data")
            if not isinstance(data, dict):
                raise RpcError("bad_response", endpoint, "reply has no data object")
            if data.get("success") is not True:
                raise RpcError("error", endpoint, str(data.get("error") or "success is not true"))
            return data
        return await counted(self.stats, self.collector, endpoint, body(), parse)

    async def call_raw(self, endpoint: str, params: dict | None = None, parse=None, parse_body=None) -> Any:
        """A large body arrives as one WebSocket message, already decoded by the reader: it is
        reduced by ``parse_body`` (the same result ``parse`` gets from the raw bytes over HTTPS),
        never written back out to be parsed again."""
        if parse_body is None:
            data = await self.call(endpoint, params)
            return await parse(json.dumps(data).encode()) if parse is not None else data
        return await self.call(endpoint, params, parse=parse_body)


def render_stream(stream: EventStream | None) -> Iterator[Metric]:
    yield GaugeMetricFamily("chia_exporter_websocket_connected",
                            "chia_exporter: 1 while the daemon WebSocket is up and registered as metrics.",
                            value=float(bool(stream and stream.connected)))
    yield CounterMetricFamily("chia_exporter_websocket_reconnects",
                              "chia_exporter: reconnections of the daemon WebSocket after a drop.",
                              value=stream.reconnects if stream else 0)
