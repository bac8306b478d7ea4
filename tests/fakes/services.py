"""Fake Chia services over real mutual TLS, serving recorded response bodies.

A fixture set is a folder per service of ``<endpoint>.json`` bodies (the layout of
``shared/fixtures/chia-2.7.5``). A request whose first parameter value is V is answered from
``<endpoint>-V.json`` when that file exists (``get_wallet_balance-2.json``, ``is_running-chia_farmer``),
else from ``<endpoint>.json``. Behaviour for fault tests is set per endpoint on ``FakeService.faults``.
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures" / "chia-2.7.5"
TEST_FIXTURES = REPO / "tests" / "fixtures"
SERVICES = ("full_node", "farmer", "harvester", "wallet", "daemon", "data_layer")


def load_set(name: str) -> dict[str, dict[str, Any]]:
    """Bodies of a fixture set: the recorded Chia 2.7.5 bodies, overlaid by tests/fixtures/NAME.

    In an overlay, ``<endpoint>.json`` replaces a body, ``<endpoint>.absent`` removes one (404), and
    a file named ``DOWN`` in a service's folder takes that service away (connection refused).
    """
    bodies: dict[str, dict[str, Any]] = {s: {} for s in SERVICES}
    # tests/fixtures/recorded: bodies from the same real stack that the shared set lacks.
    layers = [SHARED_FIXTURES, TEST_FIXTURES / "recorded"] + ([TEST_FIXTURES / name] if name != "chia-2.7.5" else [])
    if name != "chia-2.7.5" and not (TEST_FIXTURES / name).is_dir():
        raise FileNotFoundError(TEST_FIXTURES / name)
    for layer in layers:
        for service in SERVICES:
            folder = layer / service
            if not folder.is_dir():
                continue
            if (folder / "DOWN").exists():
                bodies[service] = {"__down__": True}
                continue
            for f in sorted(folder.glob("*.json")):
                bodies[service][f.stem] = json.loads(f.read_text())
            for f in sorted(folder.glob("*.jsonl")):
                bodies[service][f.stem] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
            for f in sorted(folder.glob("*.absent")):  # an endpoint this service does not have (404)
                bodies[service].pop(f.stem, None)
    return bodies


@dataclass
class Fault:
    """How an endpoint misbehaves: hang, delay, HTTP status, raw body (``chunked``: streamed with no
    Content-Length, so that only the bytes read can tell its size)."""

    hang: bool = False
    delay: float = 0.0
    status: int = 200
    raw: bytes | None = None
    chunked: bool = False


@dataclass
class FakeService:
    name: str
    bodies: dict[str, Any]
    ssl_context: ssl.SSLContext
    faults: dict[str, Fault] = field(default_factory=dict)
    calls: list[tuple[str, dict]] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0
    on_request: Callable[[str, dict], None] | None = None

    def body_for(self, endpoint: str, params: dict) -> Any:
        if params:
            first = next(iter(params.values()))
            if isinstance(first, (str, int)) and f"{endpoint}-{first}" in self.bodies:
                return self.bodies[f"{endpoint}-{first}"]
        return self.bodies.get(endpoint)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]
        try:
            params = await request.json()
        except ValueError:
            params = {}
        self.calls.append((endpoint, params))
        fault = self.faults.get(endpoint) or self.faults.get("*")
        if fault is not None:
            # A hung or late answer: once the client has given up, the handler ends (one would
            # otherwise stay per abandoned request, and count as memory held in the fault suite).
            if fault.hang or fault.delay:
                if await _client_leaves_within(request, math.inf if fault.hang else fault.delay):
                    return web.Response(status=503, text="nobody is waiting")
            if fault.status != 200:
                return web.Response(status=fault.status, text="fault")
            if fault.raw is not None and fault.chunked:
                resp = web.StreamResponse(headers={"Content-Type": "application/json"})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
                for i in range(0, len(fault.raw), 1024):
                    await resp.write(fault.raw[i:i + 1024])
                await resp.write_eof()
                return resp
            if fault.raw is not None:
                return web.Response(body=fault.raw, content_type="application/json")
        body = self.body_for(endpoint, params)
        if body is None:
            return web.Response(status=404, text="404: Not Found")
        return web.json_response(body)

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/{endpoint}", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", port, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def _client_leaves_within(request: web.Request, seconds: float) -> bool:
    """Wait ``seconds``, or until the client closes the connection first (then True)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while request.transport is not None and not request.transport.is_closing():
        if loop.time() >= end:
            return False
        await asyncio.sleep(min(0.02, max(0.0, end - loop.time())))
    return True
