"""The command a user runs: the console script and ``python -m exporter`` against fake services,
its three pages, content negotiation, and a clean stop on SIGTERM and SIGINT within 2 s."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(kind: str) -> list[str]:
    if kind == "console script":
        return [str(Path(sys.executable).parent / "chia-prometheus-exporter")]
    return [sys.executable, "-m", "exporter"]


async def start(farm, kind: str, *flags: str, host: str = "127.0.0.1") -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
    env["CHIA_ROOT"] = str(farm.root.path)
    proc = await asyncio.create_subprocess_exec(*command(kind), "--web.listen-address", f"{host}:{port}", *flags,
                                                env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(url + "/metrics") as resp:
                    if 'collector="farmer"} 1.0' in await resp.text():
                        return proc, url
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError((await proc.stdout.read()).decode())


@pytest.mark.parametrize("kind,sig", [("console script", signal.SIGTERM), ("python -m exporter", signal.SIGINT)])
async def test_serves_and_stops_cleanly(fake_farm_factory, kind, sig):
    farm = await fake_farm_factory()
    proc, url = await start(farm, kind)
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        plain = {"Accept-Encoding": "identity"}
        async with http.get(url + "/metrics", headers=plain) as resp:
            text = await resp.text()
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert "chia_full_node_peak_height 6.0" in text and "chia_farmer_harvesters 1.0" in text
        async with http.get(url + "/metrics", headers={**plain, "Accept": "application/openmetrics-text; version=1.0.0"}) as resp:
            assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
            assert (await resp.text()).endswith("# EOF\n")
        async with http.get(url + "/metrics", headers={"Accept-Encoding": "gzip"}) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert b"chia_full_node_peak_height" in gzip.decompress(await resp.read())
        async with http.get(url + "/healthz", headers=plain) as resp:
            health = json.loads(await resp.text())
            assert resp.status == 200 and health["healthy"] is True
            assert health["collectors"]["farmer"]["state"] == "ok"
            assert set(health["collectors"]) >= {"full_node", "farmer", "harvester", "wallet", "daemon"}
        async with http.get(url + "/", headers=plain) as resp:
            page = await resp.text()
            assert 'href="metrics"' in page and 'href="healthz"' in page
    t = time.monotonic()
    proc.send_signal(sig)
    code = await asyncio.wait_for(proc.wait(), 5)
    assert time.monotonic() - t < 2.0
    assert code == 0
    log = (await proc.stdout.read()).decode()
    assert "shutting down" in log and "Traceback" not in log
    assert "docs/security.md" not in log and " off: its " not in log  # loopback; every certificate there


@pytest.mark.parametrize("flags,state", [(("--collector.full_node",), "failing"), ((), "absent")],
                         ids=["enabled-by-the-user", "on-by-default"])
async def test_healthz_tells_which_collector_fails(fake_farm_factory, flags, state):
    """A full node the user asked for is failing when its port refuses; one that is only on by
    default and has never answered is "absent" (not installed on this host) and not judged."""
    farm = await fake_farm_factory("full-node-down")
    proc, url = await start(farm, "python -m exporter", *flags)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/healthz") as resp:
                health = json.loads(await resp.text())
                assert resp.status == 200
            async with http.get(url + "/metrics") as resp:
                text = await resp.text()
        assert health["collectors"]["full_node"]["state"] == state
        assert "refused" in health["collectors"]["full_node"]["last_error"]
        assert health["collectors"]["farmer"]["state"] == "ok"
        assert ('chia_exporter_collector_success{collector="full_node"} 0.0' in text) == (state == "failing")
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


async def test_listen_address_in_use_is_a_clear_error(fake_farm_factory):
    farm = await fake_farm_factory()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "exporter", "--chia-root", str(farm.root.path),
                                                    "--web.listen-address", f"127.0.0.1:{port}", env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 1
    assert "cannot listen on" in out.decode() and "Traceback" not in out.decode()


def run(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, env=env, timeout=30)


@pytest.mark.parametrize("args,says", [
    (["--log.level", "loud"], "--log.level: log_level: expected one of debug, info, warn, warning, error"),
    (["--bogus"], "error: unrecognized arguments: --bogus"),
    (["--transport", "pigeon"], "argument --transport: invalid choice"),
    (["--web.listen", "127.0.0.1:1"], "unrecognized arguments: --web.listen"),  # no abbreviations
    (["--collector.farmer.port"], "argument --collector.farmer.port: expected one argument"),
    (["--collector.farmer.interval", "30s1m"], "collectors.farmer.interval: expected a duration"),
])
def test_flag_errors_are_one_line_and_exit_2(chia_root, args, says):
    chia_root.write_config({})
    proc = run("--chia-root", str(chia_root.path), *args)
    assert proc.returncode == 2 and proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("chia-prometheus-exporter: ") and says in line and "usage:" not in line


def test_node_exporter_spellings(chia_root):
    chia_root.write_config({})
    proc = run("--chia-root", str(chia_root.path), "--log.level", "warn", "--collector.farmer.interval", "1m30s",
               "--events.watchdog", "1h30m", "--check-config")
    assert proc.returncode == 0, proc.stderr
    assert "log level: warning" in proc.stdout
    assert "collector farmer     on  127.0.0.1:1 every 90s" in proc.stdout and "watchdog 5400s" in proc.stdout


async def test_listening_beyond_loopback_without_access_control_warns_once(fake_farm_factory):
    farm = await fake_farm_factory()
    proc, url = await start(farm, "console script", host="0.0.0.0")
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), 5)
    log = (await proc.stdout.read()).decode().splitlines()
    address = "0.0.0.0:" + url.rsplit(":", 1)[1]
    [warning] = [line for line in log if "level=WARNING" in line]
    assert f"/metrics on {address} can be read from other machines" in warning
    assert "wallet balances" in warning and "docs/security.md" in warning


@pytest.mark.parametrize("address,web,warns", [
    ("127.0.0.1:9914", None, False), ("127.0.0.2:9914", None, False), ("[::1]:9914", None, False),
    ("localhost:9914", None, False), ("0.0.0.0:9914", None, True), (":9914", None, True),
    ("[::]:9914", None, True), ("192.168.1.20:9914", None, True), ("farm.lan:9914", None, True),
    ("0.0.0.0:9914", "basic auth", False), ("0.0.0.0:9914", "client certificates", False),
    ("0.0.0.0:9914", "TLS only", True),  # encrypted, but anyone who connects reads it
])
def test_exposure_warning(chia_root, address, web, warns):
    from exporter.cli import exposure_warning
    from exporter.config import load
    from exporter.server import WebConfig

    chia_root.write_config({})
    config = load({"chia_root": str(chia_root.path), "web.listen_address": address}, environ={})
    web_config = {None: None, "basic auth": WebConfig(users={"prometheus": b"$2b$12$x"}),
                  "client certificates": WebConfig(Path("tls.crt"), Path("tls.key"), Path("ca.crt"),
                                                   "RequireAndVerifyClientCert"),
                  "TLS only": WebConfig(Path("tls.crt"), Path("tls.key"))}[web]
    warning = exposure_warning(config, web_config)
    assert (warning is not None) == warns
    if warns:
        assert address in warning and "docs/security.md" in warning


def test_check_config_through_the_daemon_shows_the_addresses_in_use(chia_root):
    chia_root.write_config({"full_node": 18555, "farmer": 18559, "daemon": 55411})
    proc = run("--chia-root", str(chia_root.path), "--transport", "daemon", "--collector.daemon.host", "10.0.0.5",
               "--collector.daemon.port", "6000", "--collector.farmer.port", "7000", "--check-config")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "transport: daemon (every request through wss://10.0.0.5:6000/)" in lines
    assert any(line.startswith("collector farmer     on  through the daemon to chia_farmer every 30s") for line in lines)
    assert any(line.startswith("collector daemon     on  wss://10.0.0.5:6000/ every 60s") for line in lines)
    assert any(line.startswith("events on  wss://10.0.0.5:6000/") for line in lines)
    for unused in ("7000", "18555", "18559", "55411", "127.0.0.1"):  # ports and hosts the daemon transport ignores
        assert unused not in proc.stdout, unused
