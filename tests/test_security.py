"""What the exporter may reach and what it may say: read-only endpoints only, servers verified
against Chia's private CA, and no key or certificate content in any log line."""

from __future__ import annotations

import logging
import re
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme

from exporter.daemon_ws import DaemonRpc, StreamRpc
from exporter.rpc import READ_ONLY_ENDPOINTS, NotAllowedError, RpcClient, RpcError, RpcStats, TlsFiles
from tests.harness import config_for, render_once

EXPORTER = Path(__file__).resolve().parents[1] / "exporter"
MUTATING = re.compile(r"^(set|add|delete|remove|send|create|push|farm|stop|close|open|start|cancel|take|make|sign|"
                      r"transfer|update|refresh|login|log_in|reset|dl_|batch|spend|clawback|mint|did_set|nft_set)")


def test_no_allowlisted_endpoint_can_change_anything():
    for service, endpoints in READ_ONLY_ENDPOINTS.items():
        for endpoint in endpoints:
            if endpoint == "register_service":  # subscribes this socket to events; changes no state
                continue
            assert not MUTATING.match(endpoint), f"{service}/{endpoint} looks like it changes state"


def test_only_the_two_clients_open_connections():
    for path in EXPORTER.rglob("*.py"):
        if path.parent.name == "demo":  # drives its own simulated farm (farm_block), never a user's node
            continue
        text = path.read_text()
        for call in (".post(", ".ws_connect(", ".request(", "urlopen("):
            if call in text and path.name not in ("rpc.py", "daemon_ws.py"):
                raise AssertionError(f"{path.relative_to(EXPORTER.parent)} calls {call}: only rpc.py and daemon_ws.py may")


async def test_every_client_refuses_endpoints_outside_the_allowlist(chia_root):
    chia_root.write_config({})
    ssl_dir = chia_root.path / "config" / "ssl"
    tls = TlsFiles(ssl_dir / "ca" / "private_ca.crt", ssl_dir / "farmer" / "private_farmer.crt",
                   ssl_dir / "farmer" / "private_farmer.key")
    async with aiohttp.ClientSession() as session:
        clients = [
            RpcClient(session, "full_node", "full_node", "127.0.0.1", 1, tls, 1, 1024, RpcStats()),
            DaemonRpc(session, "127.0.0.1", 1, tls, 1, 1024, RpcStats()),
            StreamRpc(stream=None, service="wallet", collector="wallet", timeout=1, stats=RpcStats()),  # type: ignore[arg-type]
        ]
        for client, endpoint in zip(clients, ("farm_block", "stop_service", "send_transaction")):
            with pytest.raises(NotAllowedError):
                await client.call(endpoint)


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
