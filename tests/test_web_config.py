"""/metrics behind TLS and basic auth (--web.config.file, exporter-toolkit's format), with a
real client and a real Prometheus scraping over TLS with basic auth."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
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


# ---------------------------------------------------------------------------------------------
# In-process: the server with no collectors, so that only the web layer is measured.

@pytest.fixture
async def serve(chia_root):
    from aiohttp import web

    from exporter.app import Exporter
    from exporter.config import SERVICES, load
    from exporter.server import create_app

    chia_root.write_config({})
    flags = {f"collectors.{name}.enabled": False for name in SERVICES}
    config = load({"chia_root": str(chia_root.path), "events.enabled": False, **flags}, environ={})
    runners = []

    async def start(web_config=None) -> str:
        runner = web.AppRunner(create_app(Exporter(config), web_config), access_log=None)
        await runner.setup()
        ctx = web_config.ssl_context() if web_config else None
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        runners.append(runner)
        return f"{'https' if ctx else 'http'}://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_wrong_passwords_do_not_stall_the_event_loop(serve):
    from exporter.server import WebConfig

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=12))
    t = time.perf_counter()
    bcrypt.checkpw(b"wrong", hashed)
    one = time.perf_counter() - t  # one check at cost 12, about 0.3 s
    url = await serve(WebConfig(users={"prometheus": hashed})) + "/metrics"
    n = 8
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=basic("prometheus", PASSWORD)) as resp:
            assert resp.status == 200  # remembered from now on, as for Prometheus's scrapes

        async def wrong(i: int) -> int:
            user = "prometheus" if i % 2 else f"nobody{i}"  # unknown users cost a check too
            async with http.get(url, headers=basic(user, f"wrong{i}")) as resp:
                return resp.status

        attempts = [asyncio.create_task(wrong(i)) for i in range(n)]
        await asyncio.sleep(0.05)  # all in flight
        t = time.perf_counter()
        async with http.get(url, headers=basic("prometheus", PASSWORD)) as resp:
            assert resp.status == 200 and "chia_exporter_build_info" in await resp.text()
        latency = time.perf_counter() - t
        assert await asyncio.gather(*attempts) == [401] * n
    # On the event loop the n checks ran one after another in front of it (n * one).
    assert latency < n * one / 4, f"authorized scrape took {latency:.2f}s behind {n} wrong passwords ({one:.2f}s each)"


def header(user: str, password: str) -> str:
    return basic(user, password)["Authorization"]


async def test_basic_auth_remembers_only_a_keyed_hash_and_checks_unknown_users_too():
    from exporter.server import BasicAuth

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4))
    auth = BasicAuth({"prometheus": hashed})
    calls: list[bytes] = []
    real = auth.checkpw
    auth.checkpw = lambda password, h: calls.append(h) or real(password, h)
    try:
        assert await auth.check(header("nobody", PASSWORD)) is False
        assert calls == [hashed]  # the same work as for a known user: no user enumeration by timing
        assert await auth.check(header("prometheus", "wrong")) is False
        assert await auth.check(header("prometheus", PASSWORD)) is True
        assert await auth.check(header("prometheus", PASSWORD)) is True
        assert len(calls) == 3  # the good pair was remembered...
        assert len(auth.good) == 1
        for remembered in auth.good:  # ...as an HMAC, not the password
            assert PASSWORD.encode() not in remembered and len(remembered) == 32
        assert await auth.check("Basic !!!") is False and await auth.check("Bearer x") is False
        assert len(calls) == 3  # nothing to check without a user and password
        # Past 72 bytes bcrypt reads no further (as htpasswd and Go do): no ValueError, no 500.
        assert await auth.check(header("prometheus", "x" * 100)) is False
    finally:
        await auth.close()


async def test_basic_auth_turns_away_requests_past_the_queue():
    import threading

    from exporter.server import BasicAuth

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4))
    auth = BasicAuth({"prometheus": hashed}, concurrency=1, max_waiting=2)
    release = threading.Event()
    running = []

    def slow(password, h):
        running.append(1)
        release.wait(5)
        return False

    auth.checkpw = slow
    try:
        first = [asyncio.create_task(auth.check(header("prometheus", f"x{i}"))) for i in range(2)]
        await asyncio.sleep(0.1)
        assert len(running) == 1  # one at a time
        assert await auth.check(header("prometheus", "x3")) is None  # 429
        release.set()
        assert await asyncio.gather(*first) == [False, False]
    finally:
        release.set()
        await auth.close()


@pytest.mark.parametrize("value,gzipped", [
    ("gzip", True), ("GZIP", True), ("gzip, deflate, br", True), ("*", True), ("gzip;q=0.5", True),
    ("deflate, gzip;q=1.0, *;q=0.5", True), ("x-gzip", True),
    ("gzip;q=0, identity", False), ("gzip; q=0", False), ("*;q=0, identity", False), ("br", False),
    ("", False), ("identity", False), ("gzip;q=0.5, identity;q=1", False), ("*, gzip;q=0", False),
    ("gzip;q=2", False), ("gzip;q=x", False),
])
def test_accept_encoding(value, gzipped):
    from exporter.server import accepts_gzip

    assert accepts_gzip(value) is gzipped


async def test_metrics_negotiates_gzip_and_says_it_varies(serve):
    url = await serve() + "/metrics"
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        for value, gzipped in (("gzip;q=0, identity", False), ("GZip", True), ("*", True), ("br", False),
                               ("gzip;q=0, identity", False)):  # the cache keeps the two apart
            async with http.get(url, headers={"Accept-Encoding": value}) as resp:
                body = await resp.read()
                assert ("Content-Encoding" in resp.headers) is gzipped, value
                assert "Accept-Encoding" in resp.headers["Vary"]
                text = (gzip.decompress(body) if gzipped else body).decode()
                assert "chia_exporter_build_info" in text


# ---------------------------------------------------------------------------------------------
# exporter-toolkit's TLS settings: honoured, or refused with one line naming the file and key.

@pytest.fixture
def rsa_files(tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA)  # for the ECDHE-RSA suites below
    server.cert_chain_pems[0].write_to_path(str(tmp_path / "web.crt"))
    server.private_key_pem.write_to_path(str(tmp_path / "web.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.crt"))
    clients = trustme.CA()
    clients.cert_pem.write_to_path(str(tmp_path / "clients.crt"))
    return tmp_path, ca, clients


def web_config_from(directory: Path, text: str):
    from exporter.server import load_web_config

    path = directory / "web.yml"
    path.write_text("tls_server_config:\n  cert_file: web.crt\n  key_file: web.key\n" + text)
    return load_web_config(path)


def client_context(ca: trustme.CA, **versions) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    for attr, value in versions.items():
        setattr(ctx, attr, value)
    return ctx


async def handshake(url: str, ctx: ssl.SSLContext) -> tuple[str, str]:
    host, port = url.removeprefix("https://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port), ssl=ctx, server_hostname=host)
    tls = writer.get_extra_info("ssl_object")
    result = (tls.version(), tls.cipher()[0])
    writer.close()
    return result


async def test_min_and_max_version_and_cipher_suites_are_honoured(serve, rsa_files):
    directory, ca, _ = rsa_files
    url = await serve(web_config_from(directory, "  min_version: TLS13\n"))
    assert (await handshake(url, client_context(ca)))[0] == "TLSv1.3"
    with pytest.raises(OSError):  # SSLError, or a reset, whichever side gives up first
        await handshake(url, client_context(ca, maximum_version=ssl.TLSVersion.TLSv1_2))

    url = await serve(web_config_from(directory, "  max_version: TLS12\n  cipher_suites:\n"
                                      "    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n"))
    assert await handshake(url, client_context(ca)) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")
    only_other = client_context(ca)
    only_other.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    with pytest.raises(OSError):  # SSLError, or a reset, whichever side gives up first
        await handshake(url, only_other)


async def test_tls13_suites_in_cipher_suites_are_taken_and_ignored_as_in_go(serve, rsa_files):
    """exporter-toolkit accepts the TLS 1.3 names (Go lists them) and Go ignores them, since TLS 1.3's
    suites are fixed: a file written for the toolkit starts here too, with the TLS 1.2 choice kept."""
    directory, ca, _ = rsa_files
    url = await serve(web_config_from(directory, "  cipher_suites:\n    - TLS_AES_128_GCM_SHA256\n"
                                      "    - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n"))
    assert (await handshake(url, client_context(ca)))[0] == "TLSv1.3"
    tls12 = client_context(ca, maximum_version=ssl.TLSVersion.TLSv1_2)
    assert await handshake(url, tls12) == ("TLSv1.2", "ECDHE-RSA-AES256-GCM-SHA384")


async def test_a_renewed_certificate_is_served_without_a_restart(serve, rsa_files, caplog):
    """New connections get the certificate on disk now; a broken copy keeps the last good one."""
    directory, ca, _ = rsa_files
    url = await serve(web_config_from(directory, ""))

    async def served_serial() -> int:
        host, port = url.removeprefix("https://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port), ssl=client_context(ca), server_hostname=host)
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.close()
        from cryptography import x509
        return x509.load_der_x509_certificate(der).serial_number

    first = await served_serial()
    renewed = ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA)
    renewed.private_key_pem.write_to_path(str(directory / "web.key"))
    renewed.cert_chain_pems[0].write_to_path(str(directory / "web.crt"))
    second = await served_serial()
    assert second != first
    assert second == await served_serial()  # built once per change, not per connection

    (directory / "web.crt").write_text("half a renewal\n")
    assert await served_serial() == second  # the broken file is not taken
    assert "cannot load the changed certificate files" in caplog.text
    assert "half a renewal" not in caplog.text


async def test_basic_auth_scheme_is_case_insensitive():
    from exporter.server import BasicAuth

    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4))
    auth = BasicAuth({"prometheus": hashed})
    try:
        credentials = header("prometheus", PASSWORD).split(" ", 1)[1]
        for scheme in ("Basic", "basic", "BASIC"):
            assert await auth.check(f"{scheme} {credentials}") is True, scheme
        assert await auth.check(f"Basically {credentials}") is False
    finally:
        await auth.close()


async def test_client_certificates_are_verified_against_client_ca_file_only(serve, rsa_files, monkeypatch):
    directory, ca, clients = rsa_files
    # The system's public CAs must never vouch for a client: the context does not load them.
    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", lambda *a, **k: pytest.fail("system CAs loaded"))
    config = web_config_from(directory, "  client_auth_type: RequireAndVerifyClientCert\n"
                                        "  client_ca_file: clients.crt\n")
    url = await serve(config) + "/metrics"
    monkeypatch.undo()
    good = client_context(ca)
    clients.issue_cert("prometheus").configure_cert(good)
    stranger = client_context(ca)
    trustme.CA().issue_cert("prometheus").configure_cert(stranger)
    async with aiohttp.ClientSession() as http:
        async with http.get(url, ssl=good) as resp:
            assert resp.status == 200
        for ctx in (stranger, client_context(ca)):  # another CA's certificate; none at all
            with pytest.raises(aiohttp.ClientError):
                async with http.get(url, ssl=ctx) as resp:
                    await resp.read()


async def test_http_server_config_headers_on_every_response(serve, rsa_files):
    from exporter.server import load_web_config

    directory, ca, _ = rsa_files
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    (directory / "headers.yml").write_text(
        "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n"
        "    Strict-Transport-Security: max-age=31536000\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    url = await serve(load_web_config(directory / "headers.yml")) + "/metrics"
    async with aiohttp.ClientSession() as http:
        for auth, status in ((basic("prometheus", PASSWORD), 200), ({}, 401)):
            async with http.get(url, headers=auth) as resp:
                assert resp.status == status
                assert resp.headers["X-Frame-Options"] == "deny"
                assert resp.headers["Strict-Transport-Security"] == "max-age=31536000"


TLS = "tls_server_config:\n  cert_file: web.crt\n  key_file: web.key\n"


@pytest.mark.parametrize("content,key,says", [
    (TLS + "  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n",
     "tls_server_config.client_auth_type", "use RequireAndVerifyClientCert"),
    (TLS + "  client_auth_type: RequestClientCert\n", "tls_server_config.client_auth_type", "VerifyClientCertIfGiven"),
    (TLS + "  client_auth_type: RequireClientCert\n", "tls_server_config.client_auth_type", "cannot be honoured"),
    (TLS + "  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file", "needs client_ca_file"),
    (TLS + "  client_ca_file: ca.crt\n", "tls_server_config.client_ca_file", "without client_auth_type"),
    (TLS + "  min_version: TLS10\n", "tls_server_config.min_version", "use TLS12 or TLS13"),
    (TLS + "  max_version: TLS11\n", "tls_server_config.max_version", "use TLS12 or TLS13"),
    (TLS + "  min_version: TLS14\n", "tls_server_config.min_version", "expected TLS12 or TLS13"),
    (TLS + "  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.max_version", "below min_version"),
    (TLS + "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n", "tls_server_config.cipher_suites", "insecure"),
    (TLS + "  cipher_suites: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n", "tls_server_config.cipher_suites", "a list"),
    (TLS + "  curve_preferences: [X25519]\n", "tls_server_config.curve_preferences", "cannot set a list of curves"),
    (TLS + "  prefer_server_cipher_suites: sometimes\n", "tls_server_config.prefer_server_cipher_suites", "true or false"),
    (TLS + "  client_allowed_sans: [prometheus]\n", "tls_server_config.client_allowed_sans", "not supported"),
    ("tls_server_config:\n  min_version: TLS13\n", "tls_server_config", "without cert_file and key_file"),
    ("http_server_config:\n  http2: true\n", "http_server_config.http2", "HTTP/1.1 only"),
    ("http_server_config:\n  headers:\n    X-Powered-By: chia\n", "http_server_config.headers.X-Powered-By",
     "cannot be configured"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "http_server_config.headers.X-Frame-Options",
     "deny, sameorigin"),
    ("http_server_config:\n  keepalive: true\n", "http_server_config.keepalive", "unknown key"),
    ("rate_limit:\n  burst: 5\n", "rate_limit", "not supported"),
    ("tls_server_config:\n  cert_file: garbage.crt\n  key_file: web.key\n", "tls_server_config.cert_file",
     "no PEM certificate"),
    ("tls_server_config:\n  cert_file: web.crt\n  key_file: garbage.crt\n", "tls_server_config.key_file",
     "not a PEM private key"),
    ("tls_server_config:\n  cert_file: web.crt\n  key_file: other.key\n", "tls_server_config.key_file",
     "does not match"),
    ("basic_auth_users:\n  prometheus: $2b$12$tooshort\n", "basic_auth_users.prometheus", "bcrypt hash"),
])
def test_web_config_settings_that_cannot_be_honoured_are_refused(web_files, content, key, says):
    from exporter.config import ConfigError
    from exporter.server import load_web_config

    (web_files / "garbage.crt").write_text("SECRET-LOOKING garbage\n")
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(web_files / "other.key"))
    path = web_files / "bad.yml"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_web_config(path)
    assert (err.value.source, err.value.key) == (str(path), key)
    assert says in err.value.message and "\n" not in str(err.value) and "SECRET" not in str(err.value)
