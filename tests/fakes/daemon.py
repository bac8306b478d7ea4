"""A fake Chia daemon: the WebSocket on daemon_port over mutual TLS.

It answers requests from recorded replies (``<command>.json``), ``is_running`` from which fake
services are up (as the real daemon does: a process it launched, or a socket registered under the
name), acknowledges ``register_service``, routes requests to the fake services and their replies
back, and pushes events to the sockets registered under a name, as the real daemon forwards them.
Tests drive it: ``push``, ``replay``, ``drop_all``, ``send_raw``, ``delays`` (a service that runs
and answers late, or never), ``silent`` (a daemon that reads and answers nothing), ``ping_frames``
(WebSocket pings, as the real daemon sends every registered socket every 30 s),
``max_message_size`` (the real daemon's ``daemon_max_message_size``), ``stop``/``start`` for a
restart on the same port.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class FakeDaemon:
    name: str
    bodies: dict[str, Any]
    ssl_context: ssl.SSLContext
    port: int = 0
    runner: web.AppRunner | None = None
    registered: dict[str, set] = field(default_factory=dict)  # service name -> sockets
    requests: list[dict] = field(default_factory=list)
    ignore_register: bool = False  # a daemon that accepts the socket and then says nothing
    registrations: int = 0
    _later: set = field(default_factory=set)  # late replies on their way
    # Services that requests with another destination reach, as the real daemon routes them:
    # daemon name (chia_full_node) -> an object with body_for(endpoint, params).
    routes: dict[str, Any] = field(default_factory=dict)
    # Routed services that run but answer this many seconds late (math.inf: never).
    delays: dict[str, float] = field(default_factory=dict)
    # A daemon that still reads (and records) every request but answers none, routes none.
    silent: bool = False
    # The real daemon refuses a WebSocket message over daemon_max_message_size (50,000,000 bytes by
    # default): a service's reply that large drops that service's own link to the daemon
    # (chia/daemon/server.py, incoming_connection) and is never relayed. 0: no limit.
    max_message_size: int = 0
    dropped_links: list[str] = field(default_factory=list)  # services whose link a reply dropped

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                req = json.loads(msg.data)
                self.requests.append(req)
                if not self.silent:
                    await self.answer(ws, req)
        finally:
            for sockets in self.registered.values():
                sockets.discard(ws)
        return ws

    async def answer(self, ws: web.WebSocketResponse, req: dict) -> None:
        command, data = req.get("command"), req.get("data") or {}
        destination = req.get("destination", "daemon")
        if destination != "daemon":
            await self.route(req, destination)
            return
        if command == "register_service":
            if self.ignore_register:
                return
            self.registered.setdefault(data.get("service"), set()).add(ws)
            self.registrations += 1
            reply = {"ack": True, "command": command, "data": {"success": True},
                     "destination": data.get("service"), "origin": "daemon"}
        elif command == "is_running":
            reply = {"ack": True, "command": command, "destination": req.get("origin"), "origin": "daemon",
                     "data": self.is_running(data.get("service")) if data else
                     {"success": False, "error": 'is_running requires "data"'}}
        else:
            key = f"{command}-{data.get('service')}" if "service" in data else command
            recorded = self.bodies.get(key) or self.bodies.get(command)
            if recorded is None:
                reply = {"ack": True, "command": command, "origin": "daemon",
                         "data": {"success": False, "error": f"unknown command {command}"}}
            else:
                reply = dict(recorded)
        reply["request_id"] = req.get("request_id")
        await ws.send_json(reply)

    def is_running(self, name: str | None) -> dict:
        """The daemon's answer: true for a service that is up. The recorded stack ran the
        simulator, launched as chia_full_node_simulator and registered as chia_full_node: the
        real daemon says true for both, and so does this one while the full node is up."""
        up = name in self.routes or (name == "chia_full_node_simulator" and "chia_full_node" in self.routes)
        return {"is_running": up, "service_name": name, "success": True}

    async def route(self, req: dict, destination: str) -> None:
        """Forward a request to a service and its reply back to the sender's registered name.

        Like the real daemon, a request to a service that is not connected gets no reply at all.
        """
        service = self.routes.get(destination)
        if service is None:
            return
        delay = self.delays.get(destination, 0.0)
        if delay == math.inf:
            return
        if delay:
            async def later() -> None:
                await asyncio.sleep(delay)
                await self.route_now(service, req, destination)
            task = asyncio.get_running_loop().create_task(later())
            self._later.add(task)
            task.add_done_callback(self._later.discard)
            return
        await self.route_now(service, req, destination)

    async def route_now(self, service: Any, req: dict, destination: str) -> None:
        body = service.body_for(req.get("command"), req.get("data") or {})
        if body is None:
            body = {"success": False, "error": f"unknown_command {req.get('command')}"}
        reply = {"command": req.get("command"), "ack": True, "data": body, "request_id": req.get("request_id"),
                 "destination": req.get("origin"), "origin": destination}
        if self.max_message_size and len(json.dumps(reply, sort_keys=True)) > self.max_message_size:
            self.dropped_links.append(destination)
            return
        await self.push(reply, req.get("origin"))

    def ping_frames(self, every: float) -> None:
        """WebSocket ping frames to every registered socket, as the real daemon's ping_task sends."""
        async def loop() -> None:
            while True:
                await asyncio.sleep(every)
                for sockets in list(self.registered.values()):
                    for ws in list(sockets):
                        if not ws.closed:
                            await ws.ping()
        task = asyncio.get_running_loop().create_task(loop())
        self._later.add(task)
        task.add_done_callback(self._later.discard)

    async def push(self, message: dict, destination: str | None = None) -> int:
        """Send one event to every socket registered under its destination; returns how many."""
        dest = destination or message.get("destination") or "metrics"
        sent = 0
        for ws in list(self.registered.get(dest, ())):
            if not ws.closed:
                await ws.send_str(json.dumps(message))
                sent += 1
        return sent

    async def replay(self, messages: list[dict], destination: str = "metrics") -> int:
        """Push recorded events in order (skipping the recorded register_service ack)."""
        n = 0
        for m in messages:
            if m.get("origin") == "daemon":
                continue
            n += await self.push(m, destination)
        return n

    async def send_raw(self, text: str, destination: str = "metrics") -> None:
        for ws in list(self.registered.get(destination, ())):
            await ws.send_str(text)

    async def drop_all(self) -> None:
        for sockets in self.registered.values():
            for ws in list(sockets):
                await ws.close()
        self.registered.clear()

    async def wait_registered(self, destination: str = "metrics", count: int = 1, timeout: float = 10) -> None:
        async def until() -> None:
            while len(self.registered.get(destination, ())) < count:
                await asyncio.sleep(0.02)
        await asyncio.wait_for(until(), timeout)

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_get("/", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port or self.port, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        for task in list(self._later):
            task.cancel()
        await self.drop_all()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
