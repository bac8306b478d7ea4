"""The HTTP side: ``/metrics``, ``/healthz``, ``/``, and the optional web config (TLS, basic auth)."""

from __future__ import annotations

import base64
import binascii
import gzip
import html
import json
import logging
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from exporter import __version__
from exporter.app import Exporter
from exporter.config import ConfigError

log = logging.getLogger(__name__)

EXPORTER_KEY = web.AppKey("exporter", Exporter)

LANDING = """<!doctype html>
<html><head><meta charset="utf-8"><title>Chia Prometheus Exporter</title></head>
<body><h1>Chia Prometheus Exporter</h1><p>version {version}</p>
<ul><li><a href="metrics">/metrics</a>: the metrics</li>
<li><a href="healthz">/healthz</a>: the state of each collector</li></ul>
<p>Collectors: {collectors}</p></body></html>
"""


@dataclass(frozen=True)
class WebConfig:
    """A subset of Prometheus exporter-toolkit's web config file."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    client_auth_type: str = "NoClientCert"
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        if self.client_ca is not None:
            ctx.load_verify_locations(str(self.client_ca))
        ctx.verify_mode = {
            "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
            "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        }.get(self.client_auth_type, ssl.CERT_NONE)
        return ctx


TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
            "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"}
CLIENT_AUTH_TYPES = {"NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                     "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}


def load_web_config(path: Path) -> WebConfig:
    """Read ``--web.config.file``; errors name the file and key (exit 2 at start)."""
    source = str(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ConfigError(source, "", f"cannot read: {e.strerror or e}") from None
    except yaml.YAMLError:
        raise ConfigError(source, "", "not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a mapping at the top level")
    for key in data:
        if key not in ("tls_server_config", "basic_auth_users", "http_server_config"):
            raise ConfigError(source, str(key), "unknown key (known: tls_server_config, basic_auth_users, http_server_config)")
    tls = data.get("tls_server_config") or {}
    if not isinstance(tls, dict):
        raise ConfigError(source, "tls_server_config", "expected a mapping")
    for key in tls:
        if key not in TLS_KEYS:
            raise ConfigError(source, f"tls_server_config.{key}", "unknown key")
    users_raw = data.get("basic_auth_users") or {}
    if not isinstance(users_raw, dict):
        raise ConfigError(source, "basic_auth_users", "expected a mapping of user names to bcrypt hashes")
    users: dict[str, bytes] = {}
    for user, hashed in users_raw.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(source, f"basic_auth_users.{user}", "expected a bcrypt hash ($2b$...)")
        users[str(user)] = hashed.encode()
    if users:
        try:
            import bcrypt  # noqa: F401  (an optional dependency: pip install chia-prometheus-exporter[auth])
        except ImportError:
            raise ConfigError(source, "basic_auth_users",
                              "needs the bcrypt package: pip install 'chia-prometheus-exporter[auth]'") from None

    def file(key: str) -> Path | None:
        value = tls.get(key)
        if value is None:
            return None
        p = Path(str(value)).expanduser()
        if not p.is_absolute():
            p = path.parent / p  # relative to the web config file, as exporter-toolkit does
        if not p.is_file():
            raise ConfigError(source, f"tls_server_config.{key}", f"no such file: {p}")
        return p

    cert, key = file("cert_file"), file("key_file")
    if (cert is None) != (key is None):
        raise ConfigError(source, "tls_server_config", "cert_file and key_file go together")
    auth_type = str(tls.get("client_auth_type", "NoClientCert"))
    if auth_type not in CLIENT_AUTH_TYPES:
        raise ConfigError(source, "tls_server_config.client_auth_type", f"unknown value {auth_type!r}")
    cfg = WebConfig(cert, key, file("client_ca_file"), auth_type, users)
    try:
        cfg.ssl_context()
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(source, "tls_server_config", f"cannot load the certificate or key: {getattr(e, 'reason', None) or e}") from None
    return cfg


def basic_auth_middleware(users: dict[str, bytes]):
    import bcrypt

    cache: dict[tuple[str, str], bool] = {}  # bcrypt is slow on purpose: remember good pairs

    @web.middleware
    async def check(request: web.Request, handler):
        header = request.headers.get("Authorization", "")
        ok = False
        if header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = "", ""
            hashed = users.get(user)
            if hashed is not None:
                ok = cache.get((user, password))
                if ok is None:
                    ok = bcrypt.checkpw(password.encode(), hashed)
                    if ok:
                        if len(cache) > 64:
                            cache.clear()
                        cache[(user, password)] = True
        if not ok:
            return web.Response(status=401, text="Unauthorized\n",
                                headers={"WWW-Authenticate": 'Basic realm="chia-prometheus-exporter"'})
        return await handler(request)

    return check


def create_app(exporter: Exporter, web_config: WebConfig | None = None) -> web.Application:
    middlewares = [basic_auth_middleware(web_config.users)] if web_config and web_config.users else []
    app = web.Application(middlewares=middlewares)
    app[EXPORTER_KEY] = exporter

    async def lifecycle(app: web.Application):
        await exporter.start()
        yield
        await exporter.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/metrics", CachedMetrics(exporter).handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", landing)
    return app


class CachedMetrics:
    """prometheus-client's aiohttp handler, with its output reused while nothing changed.

    A scrape renders every family (about 10 ms for 1,500 series); several Prometheus servers or
    scrapers at once would queue behind each other on the one event loop. The rendered body (and
    its gzip) is kept per format and reused while no poll finished and no event arrived, for at
    most ``MAX_AGE`` seconds, so that staleness and expiry (minutes) still apply within seconds.
    """

    MAX_AGE = 5.0

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.render = make_aiohttp_handler(exporter.registry, disable_compression=True)
        self.cache: dict[tuple, tuple[int, float, bytes, str]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "")
        key = (request.headers.get("Accept", ""), request.query_string, gzip_ok)
        generation = self.exporter.generation()
        now = time.monotonic()
        hit = self.cache.get(key)
        if hit is None or hit[0] != generation or now - hit[1] > self.MAX_AGE:
            fresh = await self.render(request)
            body = fresh.body if isinstance(fresh.body, bytes) else b""
            if fresh.status != 200:
                return fresh
            if gzip_ok:
                body = gzip.compress(body, compresslevel=5)
            if len(self.cache) > 16:  # odd Accept headers must not grow it without bound
                self.cache.clear()
            hit = self.cache[key] = (generation, now, body, fresh.headers["Content-Type"])
        headers = {"Content-Type": hit[3]}
        if gzip_ok:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=hit[2], headers=headers)


async def healthz(request: web.Request) -> web.Response:
    """200 while the poll loops run; the body says how each collector is doing."""
    health: dict[str, Any] = request.app[EXPORTER_KEY].health()
    return web.Response(status=200 if health["healthy"] else 503,
                        text=json.dumps(health, indent=2, sort_keys=True) + "\n",
                        content_type="application/json")


async def landing(request: web.Request) -> web.Response:
    exporter = request.app[EXPORTER_KEY]
    names = ", ".join(html.escape(r.name) for r in exporter.runners) or "none"
    return web.Response(text=LANDING.format(version=__version__, collectors=names), content_type="text/html")
