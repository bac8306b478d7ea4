"""What the exporter may reach and what it may say: read-only endpoints only, servers verified
against Chia's private CA, and no key or certificate content in any log line."""

from __future__ import annotations

import ast
import logging
import re
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme

from exporter.app import Exporter
from exporter.daemon_ws import DaemonRpc, StreamRpc, send_checked
from exporter.rpc import READ_ONLY_ENDPOINTS, NotAllowedError, RpcClient, RpcError, RpcStats, TlsFiles
from tests.harness import config_for, render_once, until

EXPORTER = Path(__file__).resolve().parents[1] / "exporter"
MUTATING = re.compile(r"^(set|add|delete|remove|send|create|push|farm|stop|close|open|start|cancel|take|make|sign|"
                      r"transfer|update|refresh|login|log_in|reset|dl_|batch|spend|clawback|mint|did_set|nft_set)")


def test_no_allowlisted_endpoint_can_change_anything():
    for service, endpoints in READ_ONLY_ENDPOINTS.items():
        for endpoint in endpoints:
            if endpoint == "register_service":  # subscribes this socket to events; changes no state
                continue
            assert not MUTATING.match(endpoint), f"{service}/{endpoint} looks like it changes state"


# What puts bytes on a socket to Chia: aiohttp's WebSocket writes, and HTTP requests (a session's
# or aiohttp's own). Names that other objects have too (a dict's get, an SSL context's options) are
# only counted on a session.
WS_WRITES = {"send_json", "send_str", "send_bytes", "send_frame", "ping", "pong"}
REQUESTS = {"post", "put", "patch", "request", "ws_connect", "urlopen", "open_connection", "create_connection"}
SESSION_ONLY = {"get", "delete", "head", "options"}
# Opening the daemon's WebSocket sends only the HTTP upgrade, no command; everything written on
# it afterwards is one of WS_WRITES.
CONNECTS = {"DaemonRpc.__aenter__", "EventStream._connect"}
# The answer to the daemon's WebSocket ping frame: a control frame, no command (autoping is off
# on the event stream so that ping frames cannot put its watchdog's deadlines off).
CONTROL_FRAMES = {("EventStream._session_once", "pong")}
# Calls of EventStream.request (self.request, self.stream.request): the stream's own wrapper,
# which checks first (tested below).
STREAM_REQUEST = {"self", "self.stream"}
# A write looked up by name (getattr); not "ping", which is also the daemon's command of that name.
BY_NAME = (WS_WRITES | REQUESTS) - {"ping", "pong"}


def _exporter_modules():
    for path in sorted(EXPORTER.rglob("*.py")):
        if path.parent.name == "demo":  # drives its own simulated farm (farm_block), never a user's node
            continue
        yield path, ast.parse(path.read_text(), str(path))


def _scopes(tree: ast.Module):
    """Every node with the chain of classes and functions around it, innermost last."""
    stack: list = [(tree, [])]
    while stack:
        node, chain = stack.pop()
        for child in ast.iter_child_nodes(node):
            inner = chain + [child] if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) else chain
            yield child, inner
            stack.append((child, inner))


def _qualname(chain: list) -> str:
    return ".".join(n.name for n in chain)


def _is_check(stmt: ast.stmt) -> bool:
    return (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id == "check_allowed")


def _checks_first(function: ast.AST, node: ast.AST) -> bool:
    """Whether ``function`` calls check_allowed in a top-level statement before the one holding ``node``."""
    for stmt in function.body:
        if any(n is node for n in ast.walk(stmt)):
            return False
        if _is_check(stmt):
            return True
    return False


def _socket_writes():
    """(module, qualname, what, node, innermost function) of every write to a socket."""
    for path, tree in _exporter_modules():
        for node, chain in _scopes(tree):
            name = None
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                receiver = ast.unparse(node.value)
                if node.attr in WS_WRITES or node.attr in REQUESTS:
                    name = node.attr
                elif node.attr in SESSION_ONLY and (receiver.endswith("session") or receiver == "aiohttp"):
                    name = node.attr
                if name == "request" and receiver in STREAM_REQUEST and path.name == "daemon_ws.py":
                    continue
            elif isinstance(node, ast.Constant) and node.value in BY_NAME:
                name = f"getattr {node.value!r}"
            if name is None:
                continue
            functions = [n for n in chain if not isinstance(n, ast.ClassDef)]
            yield path.name, _qualname(chain), name, node, functions[-1] if functions else None


def test_every_write_to_a_socket_is_checked_against_the_allowlist_first():
    """Statically: each write to a socket sits in a function that calls check_allowed before it
    (or opens the daemon's WebSocket, or answers its ping frame: neither sends a command), so no
    code path can reach Chia with an endpoint outside the allowlist, whoever calls it. The
    behaviour is tested below."""
    writers, connects = set(), set()
    for module, qualname, what, node, function in _socket_writes():
        where = f"{module}: {qualname or '<module>'}: {what}"
        if what == "ws_connect":
            assert qualname in CONNECTS, f"{where}: a WebSocket opened outside the two clients"
            connects.add(qualname)
            continue
        if (qualname, what) in CONTROL_FRAMES:
            continue
        assert function is not None and _checks_first(function, node), \
            f"{where} is not preceded by check_allowed in the same function"
        writers.add((module, qualname, what))
    # Not vacuous: the two lowest-level senders are found, and nothing else writes.
    assert writers == {("daemon_ws.py", "send_checked", "send_json"), ("rpc.py", "RpcClient._post", "post")}
    assert connects == CONNECTS


def test_the_stream_request_and_every_public_call_check_first():
    methods = {"EventStream.request", "RpcClient.call", "RpcClient.call_raw", "RpcClient._post",
               "DaemonRpc.call", "StreamRpc.call", "EventStream.is_running", "send_checked"}
    found = set()
    for _, tree in _exporter_modules():
        for node, chain in _scopes(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _qualname(chain) in methods:
                body = node.body[1:] if ast.get_docstring(node) is not None else node.body
                assert _is_check(body[0]), f"{_qualname(chain)} does not start with check_allowed"
                found.add(_qualname(chain))
    assert found == methods


def test_only_the_cli_imports_the_demo():
    for path, tree in _exporter_modules():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if any(n.startswith("exporter.demo") for n in names):
                    assert path.name == "cli.py", f"{path.name} imports the demo"


# One endpoint each service really has that changes something (and is not in the allowlist).
MUTATING_CALLS = {"full_node": "close_connection", "farmer": "set_reward_targets", "harvester": "delete_plot",
                  "wallet": "send_transaction", "daemon": "stop_service"}


async def test_https_client_refuses_before_sending_anything(fake_farm_factory):
    farm = await fake_farm_factory()
    config = config_for(farm.root.path)
    async with aiohttp.ClientSession() as session:
        for service, endpoint in MUTATING_CALLS.items():
            if service == "daemon":
                continue
            fake = farm.services[service]
            c = config.collectors[service]
            client = RpcClient(session, service, service, c.host, c.port, TlsFiles(config.ca_cert, c.cert, c.key),
                               5, 1 << 20, RpcStats())
            for attempt in (client.call(endpoint), client.call_raw(endpoint, parse=_never), client._post(endpoint, {})):
                with pytest.raises(NotAllowedError):
                    await attempt
            assert fake.calls == [], f"{service} was sent {fake.calls}"
            assert not client.stats.counts  # refused outright, not counted as an outcome
            await client.call("get_version")  # the same client does reach the fake
            assert [e for e, _ in fake.calls] == ["get_version"]


async def test_daemon_rpc_refuses_before_sending_anything(fake_farm_factory):
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    config = config_for(farm.root.path)
    c = config.collectors["daemon"]
    async with aiohttp.ClientSession() as session:
        async with DaemonRpc(session, c.host, c.port, TlsFiles(config.ca_cert, c.cert, c.key), 5, 1 << 20,
                             RpcStats()) as rpc:
            for attempt in (rpc.call("stop_service", {"service": "chia_farmer"}), rpc.call("exit"),
                            rpc._request("start_service", {"service": "chia_wallet"})):
                with pytest.raises(NotAllowedError):
                    await attempt
            assert daemon.requests == []
            await rpc.call("get_version")
            assert [r["command"] for r in daemon.requests] == ["get_version"]


async def test_the_event_stream_refuses_before_sending_anything(fake_farm_factory):
    farm = await fake_farm_factory()
    daemon = farm.services["daemon"]
    exporter = Exporter(config_for(farm.root.path, transport="daemon"))
    await exporter.start(background=False)
    stream = exporter.events
    stream.start()
    try:
        await until(lambda: stream.connected)
        sent = len(daemon.requests)  # register_service
        stream.not_running.add("chia_wallet")  # a request to it would ask is_running first: not even that
        for destination, command in [("chia_farmer", "set_reward_targets"), ("chia_wallet", "send_transaction"),
                                     ("daemon", "stop_service"), ("daemon", "exit"),
                                     ("chia_plotter", "get_version"),  # a destination with no allowlist
                                     ("chia_harvester", "register_service")]:  # a daemon command, not the harvester's
            with pytest.raises(NotAllowedError):
                await stream.request(destination, command, {}, 2)
        with pytest.raises(NotAllowedError):
            await send_checked(stream._ws, {"command": "delete_plot", "destination": "chia_harvester", "data": {}})
        for service, endpoint in MUTATING_CALLS.items():
            rpc = StreamRpc(stream, service, service, 2, exporter.stats)
            for attempt in (rpc.call(endpoint), rpc.call_raw(endpoint, parse_body=_never)):
                with pytest.raises(NotAllowedError):
                    await attempt
        assert daemon.requests[sent:] == []  # the daemon routes nothing it was not sent
        assert (await StreamRpc(stream, "farmer", "farmer", 2, exporter.stats).call("get_version"))["success"]
        assert [r["command"] for r in daemon.requests[sent:]] == ["get_version"]
    finally:
        await exporter.stop()


async def _never(_body):
    raise AssertionError("a body that must never have been asked for")


async def test_a_server_certificate_from_another_ca_is_refused(chia_root):
    from aiohttp import web

    other = trustme.CA(organization_name="Somebody else")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other.issue_cert("chia.net").configure_cert(server_ctx)
    app = web.Application()
    async def version(request: web.Request) -> web.Response:
        return web.json_response({"success": True, "version": "x"})

    app.router.add_post("/get_version", version)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    chia_root.write_config({})
    ssl_dir = chia_root.path / "config" / "ssl"
    tls = TlsFiles(ssl_dir / "ca" / "private_ca.crt", ssl_dir / "farmer" / "private_farmer.crt",
                   ssl_dir / "farmer" / "private_farmer.key")
    stats = RpcStats()
    try:
        async with aiohttp.ClientSession() as session:
            client = RpcClient(session, "farmer", "farmer", "127.0.0.1", port, tls, 2, 1024, stats)
            with pytest.raises(RpcError) as err:
                await client.call("get_version")
        assert err.value.outcome == "tls"
        assert "certificate verify failed" in err.value.detail.lower() or "unable to get local issuer" in err.value.detail.lower()
        assert stats.counts[("farmer", "get_version", "tls")] == 1
    finally:
        await runner.cleanup()


async def test_no_key_or_certificate_content_is_ever_logged(fake_farm_factory, caplog):
    farm = await fake_farm_factory()
    ssl_dir = farm.root.path / "config" / "ssl"
    secrets = []
    for f in ssl_dir.rglob("*"):
        if f.is_file():
            lines = [line for line in f.read_text().splitlines() if line and not line.startswith("-----")]
            secrets += lines  # every base64 line of every key and certificate
    # Failures that talk about certificates: a vanished key, a service with the wrong CA.
    (ssl_dir / "wallet" / "private_wallet.key").write_text("not a key\n")
    farm.services["farmer"].ssl_context = _other_ca_context()
    port = farm.services["farmer"].port
    await farm.services["farmer"].stop()
    await farm.services["farmer"].start(port)
    caplog.set_level(logging.DEBUG)
    await render_once(config_for(farm.root.path, **{"events.enabled": False}))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "failed" in logged  # the failures were logged...
    assert "BEGIN" not in logged and "PRIVATE KEY" not in logged  # ...without any PEM
    for secret in secrets:
        assert secret not in logged


def _other_ca_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("chia.net").configure_cert(ctx)
    return ctx
