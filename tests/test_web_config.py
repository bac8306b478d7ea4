"""/metrics behind TLS and basic auth (--web.config.file, exporter-toolkit's format), with a
real client and a real Prometheus scraping over TLS with basic auth."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import bcrypt
import pytest
import trustme

PASSWORD = "correct horse battery staple"


def basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def web_files(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "web.crt"))
    server.private_key_pem.write_to_path(str(tmp_path / "web.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (tmp_path / "web.yml").write_text(
        f"tls_server_config:\n  cert_file: web.crt\n  key_file: web.key\nbasic_auth_users:\n  prometheus: '{hashed}'\n")
    return tmp_path


async def start_exporter(farm, web_yml: Path) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "exporter", "--chia-root", str(farm.root.path), "--web.listen-address", f"127.0.0.1:{port}",
        "--web.config.file", str(web_yml), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return proc, port
        except OSError:
            await asyncio.sleep(0.1)
    proc.kill()
    raise AssertionError((await proc.stdout.read()).decode())


async def test_tls_and_basic_auth_with_a_real_client(fake_farm_factory, web_files):
    farm = await fake_farm_factory()
    proc, port = await start_exporter(farm, web_files / "web.yml")
    ctx = ssl.create_default_context(cafile=str(web_files / "ca.crt"))
    url = f"https://127.0.0.1:{port}/metrics"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url, ssl=ctx, headers=basic("prometheus", PASSWORD)) as resp:
                assert resp.status == 200 and "chia_exporter_build_info" in await resp.text()
            for auth in (basic("prometheus", "wrong"), basic("someone", PASSWORD), {}):
                async with http.get(url, ssl=ctx, headers=auth) as resp:
                    assert resp.status == 401
                    assert resp.headers["WWW-Authenticate"].startswith("Basic")
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port
                async with http.get(f"http://127.0.0.1:{port}/metrics", headers=basic("prometheus", PASSWORD)) as r:
                    await r.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.wait()


async def test_a_real_prometheus_scrapes_over_tls_with_basic_auth(fake_farm_factory, web_files):
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: bash scripts/test.sh installs Debian's package")
    farm = await fake_farm_factory()
    proc, port = await start_exporter(farm, web_files / "web.yml")
    prom_port = free_port()
    config = web_files / "prometheus.yml"
    config.write_text(json.dumps({
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [{"job_name": "chia", "scheme": "https", "tls_config": {"ca_file": str(web_files / "ca.crt")},
                            "basic_auth": {"username": "prometheus", "password": PASSWORD},
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]},
                           {"job_name": "chia-wrong-password", "scheme": "https",
                            "tls_config": {"ca_file": str(web_files / "ca.crt")},
                            "basic_auth": {"username": "prometheus", "password": "nope"},
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }))
    with tempfile.TemporaryDirectory() as data:
        prom = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={data}",
                                 f"--web.listen-address=127.0.0.1:{prom_port}"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            up = {}
            async with aiohttp.ClientSession() as http:
                for _ in range(40):
                    await asyncio.sleep(0.5)
                    try:
                        async with http.get(f"http://127.0.0.1:{prom_port}/api/v1/query", params={"query": "up"}) as r:
                            result = (await r.json())["data"]["result"]
                    except aiohttp.ClientError:
                        continue
                    up = {s["metric"]["job"]: s["value"][1] for s in result}
                    if up.get("chia") == "1" and "chia-wrong-password" in up:
                        break
                async with http.get(f"http://127.0.0.1:{prom_port}/api/v1/query",
                                    params={"query": "chia_full_node_peak_height"}) as r:
                    peak = (await r.json())["data"]["result"]
            assert up == {"chia": "1", "chia-wrong-password": "0"}
            assert peak and peak[0]["value"][1] == "6"
        finally:
            prom.terminate()
            prom.wait(timeout=10)
            proc.send_signal(signal.SIGTERM)
            await proc.wait()


@pytest.mark.parametrize("content,key", [
    ("tls_server_config:\n  cert_file: missing.crt\n  key_file: web.key\n", "tls_server_config.cert_file"),
    ("tls_server_config:\n  cert_file: web.crt\n", "tls_server_config"),
    ("basic_auth_users:\n  prometheus: plaintext\n", "basic_auth_users.prometheus"),
    ("basic_auth_user:\n  prometheus: x\n", "basic_auth_user"),
    ("tls_server_config:\n  cert_file: web.crt\n  key_file: web.key\n  client_auth_type: Sometimes\n",
     "tls_server_config.client_auth_type"),
    ("tls_server_config: [\n", ""),
])
def test_bad_web_config_names_file_and_key_and_exits_2(web_files, chia_root, content, key):
    chia_root.write_config({})
    bad = web_files / "bad.yml"
    bad.write_text(content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
    proc = subprocess.run([sys.executable, "-m", "exporter", "--chia-root", str(chia_root.path), "--web.config.file", str(bad),
                           "--check-config"], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert str(bad) in proc.stderr and key in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
