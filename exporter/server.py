"""The HTTP side: ``/metrics``, ``/healthz``, ``/``, and the optional web config (TLS, basic auth)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import gzip
import hashlib
import hmac
import html
import json
import logging
import os
import re
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from exporter import __version__
from exporter.app import Exporter
from exporter.config import ConfigError, check_ca_file, check_cert_and_key

log = logging.getLogger(__name__)

EXPORTER_KEY = web.AppKey("exporter", Exporter)

LANDING = """<!doctype html>
<html><head><meta charset="utf-8"><title>Chia Prometheus Exporter</title></head>
<body><h1>Chia Prometheus Exporter</h1><p>version {version}</p>
<ul><li><a href="metrics">/metrics</a>: the metrics</li>
<li><a href="healthz">/healthz</a>: the state of each collector</li></ul>
<p>Collectors: {collectors}</p></body></html>
"""


# Go's names (what exporter-toolkit's cipher_suites takes) -> OpenSSL's, for TLS 1.2: the suites
# in Go's tls.CipherSuites(). Go's insecure ones (RC4, 3DES, CBC-SHA256) are refused there too.
GO_CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_CIPHER_SUITES = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
OLD_TLS_VERSIONS = {"TLS10", "TLS11"}
CLIENT_AUTH_TYPES = {"NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"}
# exporter-toolkit's client_auth_type values that Python's ssl module cannot honour, and what to use.
UNSUPPORTED_CLIENT_AUTH = {
    "RequestClientCert": "Python's ssl module verifies every client certificate it asks for and cannot "
                         "ask for one without a CA: use VerifyClientCertIfGiven with client_ca_file, or NoClientCert",
    "RequireAnyClientCert": "Python's ssl module cannot require a client certificate without verifying it "
                            "against a CA: use RequireAndVerifyClientCert with client_ca_file",
}
UNSUPPORTED_CLIENT_AUTH["RequireClientCert"] = UNSUPPORTED_CLIENT_AUTH["RequireAnyClientCert"]  # toolkit's old name
# exporter-toolkit's http_server_config.headers: the headers it allows, and their allowed values.
HEADERS = {"Strict-Transport-Security": None, "X-Content-Type-Options": ("nosniff",),
           "X-Frame-Options": ("deny", "sameorigin"), "X-XSS-Protection": None, "Content-Security-Policy": None}
TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version",
            "cipher_suites", "prefer_server_cipher_suites", "curve_preferences"}
# exporter-toolkit keys this exporter does not implement: refused with a pointer, never ignored.
UNSUPPORTED_KEYS = {
    "tls_server_config.cert": "inline certificates are not supported: use cert_file",
    "tls_server_config.key": "inline keys are not supported: use key_file",
    "tls_server_config.client_ca": "inline CAs are not supported: use client_ca_file",
    "tls_server_config.client_allowed_sans": "not supported: use a client CA that signs only the allowed clients",
    "tls_server_config.curve_preferences": "Python's ssl module cannot set a list of curves; remove it "
                                           "(OpenSSL's defaults apply: X25519, P-256, P-384, P-521, ...)",
    "rate_limit": "not supported: limit requests in front of the exporter",
}


@dataclass(frozen=True)
class WebConfig:
    """Prometheus exporter-toolkit's web config file, as far as Python's ssl module can honour it
    (what it cannot is refused when the file is read, see docs/security.md)."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    client_auth_type: str = "NoClientCert"
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    ciphers: tuple[str, ...] = ()  # OpenSSL names, TLS 1.2 (TLS 1.3's suites are fixed, as in Go)
    prefer_server_ciphers: bool = True
    headers: dict[str, str] = field(default_factory=dict)  # added to every response

    def ssl_context(self) -> ssl.SSLContext | None:
        """The listening context. Its certificate, key and client CA are read again, for new
        connections, when one of those files changes on disk (a renewed certificate needs no
        restart, as with exporter-toolkit); the web config file itself is read once, at start."""
        if self.tls_cert is None:
            return None
        return ReloadingContext(self).listening

    def build_context(self) -> ssl.SSLContext:
        # Not create_default_context: that would also trust the system's public CAs to vouch for
        # client certificates. Only client_ca_file may.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[self.min_version]
        ctx.maximum_version = TLS_VERSIONS[self.max_version]
        if self.ciphers:
            ctx.set_ciphers(":".join(self.ciphers))
        if not self.prefer_server_ciphers:  # PROTOCOL_TLS_SERVER prefers the server's order already
            ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        ctx.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        if self.client_ca is not None:
            ctx.load_verify_locations(str(self.client_ca))
        ctx.verify_mode = {
            "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
            "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
            "NoClientCert": ssl.CERT_NONE,
        }[self.client_auth_type]
        return ctx


class ReloadingContext:
    """Swaps in a context built from the files as they are now, during each TLS handshake.

    The listening context's SNI callback runs in every handshake (with or without SNI) and, when
    the certificate, key or client CA file changed since the last build, builds a new context and
    hands the connection to it. A file that is missing or broken mid-renewal keeps the last good
    context, with one error logged per change, so a bad copy never takes /metrics down.
    """

    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.paths = [p for p in (config.tls_cert, config.tls_key, config.client_ca) if p is not None]
        self.stamp = self._stamp()
        self.current = self.listening = config.build_context()
        self.listening.sni_callback = self._handshake
        self.failed_stamp: tuple | None = None

    def _stamp(self) -> tuple | None:
        try:
            return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(os.stat, self.paths))
        except OSError:
            return None

    def _handshake(self, conn: ssl.SSLObject, server_name: str | None, listening: ssl.SSLContext) -> None:
        stamp = self._stamp()
        if stamp is not None and stamp != self.stamp and stamp != self.failed_stamp:
            try:
                self.current = self.config.build_context()
                self.stamp = stamp
                log.info("web TLS: certificate files changed, new connections use them")
            except (ssl.SSLError, OSError) as e:
                self.failed_stamp = stamp
                log.error("web TLS: cannot load the changed certificate files (%s); keeping the previous ones",
                          getattr(e, "reason", None) or type(e).__name__)
        if self.current is not listening:
            conn.context = self.current
        return None


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
        if str(key) in UNSUPPORTED_KEYS:
            raise ConfigError(source, str(key), UNSUPPORTED_KEYS[str(key)])
        if key not in ("tls_server_config", "basic_auth_users", "http_server_config"):
            raise ConfigError(source, str(key),
                              "unknown key (known: tls_server_config, basic_auth_users, http_server_config)")

    def mapping(key: str) -> dict:
        value = data.get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(source, key, "expected a mapping")
        return value

    tls = mapping("tls_server_config")
    for key, value in tls.items():
        dotted = f"tls_server_config.{key}"
        if dotted in UNSUPPORTED_KEYS and value not in (None, [], ""):
            raise ConfigError(source, dotted, UNSUPPORTED_KEYS[dotted])
        if key not in TLS_KEYS and dotted not in UNSUPPORTED_KEYS:
            raise ConfigError(source, dotted, f"unknown key (known: {', '.join(sorted(TLS_KEYS))})")
    users_raw = data.get("basic_auth_users") or {}
    if not isinstance(users_raw, dict):
        raise ConfigError(source, "basic_auth_users", "expected a mapping of user names to bcrypt hashes")
    users: dict[str, bytes] = {}
    for user, hashed in users_raw.items():
        if not isinstance(hashed, str) or not re.fullmatch(r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}", hashed):
            raise ConfigError(source, f"basic_auth_users.{user}", "expected a bcrypt hash ($2b$12$...)")
        users[str(user)] = hashed.encode()
    if users:
        try:
            import bcrypt  # noqa: F401  (an optional dependency: pip install chia-prometheus-exporter[auth])
        except ImportError:
            raise ConfigError(source, "basic_auth_users",
                              "needs the bcrypt package: pip install 'chia-prometheus-exporter[auth]'") from None
    headers = _http_server_config(mapping("http_server_config"), source)

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
    if cert is None and tls:
        present = ", ".join(str(k) for k in tls)
        raise ConfigError(source, "tls_server_config", f"{present} without cert_file and key_file: "
                          "set both to serve HTTPS, or remove tls_server_config")
    auth_type = str(tls.get("client_auth_type") or "NoClientCert")
    if auth_type in UNSUPPORTED_CLIENT_AUTH:
        raise ConfigError(source, "tls_server_config.client_auth_type",
                          f"{auth_type} cannot be honoured: {UNSUPPORTED_CLIENT_AUTH[auth_type]}")
    if auth_type not in CLIENT_AUTH_TYPES:
        raise ConfigError(source, "tls_server_config.client_auth_type",
                          f"unknown value {auth_type!r} (known: {', '.join(sorted(CLIENT_AUTH_TYPES))})")
    client_ca = file("client_ca_file")
    if client_ca is not None and auth_type == "NoClientCert":
        raise ConfigError(source, "tls_server_config.client_ca_file",
                          "set without client_auth_type: add client_auth_type RequireAndVerifyClientCert "
                          "(or VerifyClientCertIfGiven)")
    if client_ca is None and auth_type != "NoClientCert":
        raise ConfigError(source, "tls_server_config.client_ca_file",
                          f"{auth_type} needs client_ca_file, the CA that signs the client certificates")

    def version(key: str, default: str) -> str:
        value = tls.get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(source, f"tls_server_config.{key}", f"expected TLS12 or TLS13, got {value!r}")
        if value in OLD_TLS_VERSIONS:
            raise ConfigError(source, f"tls_server_config.{key}", f"{value} is not offered: OpenSSL's security "
                              "level refuses TLS 1.0 and 1.1 handshakes; use TLS12 or TLS13")
        if value not in TLS_VERSIONS:
            raise ConfigError(source, f"tls_server_config.{key}", f"expected TLS12 or TLS13, got {value!r}")
        return str(value)

    min_version, max_version = version("min_version", "TLS12"), version("max_version", "TLS13")
    if TLS_VERSIONS[min_version] > TLS_VERSIONS[max_version]:
        raise ConfigError(source, "tls_server_config.max_version",
                          f"{max_version} is below min_version {min_version}")
    ciphers = _cipher_suites(tls.get("cipher_suites"), source)
    prefer = tls.get("prefer_server_cipher_suites", True)
    if not isinstance(prefer, bool):
        raise ConfigError(source, "tls_server_config.prefer_server_cipher_suites",
                          f"expected true or false, got {prefer!r}")

    cfg = WebConfig(cert, key, client_ca, auth_type, users, min_version, max_version, ciphers, prefer, headers)
    if cert is not None and key is not None:
        check_cert_and_key(cert, source, "tls_server_config.cert_file", key, source, "tls_server_config.key_file")
        if client_ca is not None:
            check_ca_file(client_ca, source, "tls_server_config.client_ca_file")
    try:
        if cfg.tls_cert is not None:
            cfg.build_context()
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(source, "tls_server_config",
                          f"cannot build the TLS context: {getattr(e, 'reason', None) or e}") from None
    return cfg


def _cipher_suites(value: Any, source: str) -> tuple[str, ...]:
    key = "tls_server_config.cipher_suites"
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(source, key, "expected a list of cipher suite names (Go's, as exporter-toolkit takes)")
    names = []
    for go_name in value:
        if go_name in TLS13_CIPHER_SUITES:
            # exporter-toolkit takes them (Go lists them in tls.CipherSuites()) and Go ignores them:
            # TLS 1.3's suites are not configurable there, nor in OpenSSL's cipher list.
            continue
        if go_name not in GO_CIPHER_SUITES:
            raise ConfigError(source, key, f"unknown or insecure cipher suite {go_name!r} "
                              "(Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
        name = GO_CIPHER_SUITES[go_name]
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(name)
        except ssl.SSLError:
            raise ConfigError(source, key,
                              f"{go_name} is not available in this OpenSSL ({ssl.OPENSSL_VERSION})") from None
        names.append(name)
    return tuple(names)


def _http_server_config(http: dict, source: str) -> dict[str, str]:
    """exporter-toolkit's http_server_config: ``headers`` are added to every response; ``http2``
    can only be false, since aiohttp serves HTTP/1.1 only."""
    for key in http:
        if key not in ("headers", "http2"):
            raise ConfigError(source, f"http_server_config.{key}", "unknown key (known: headers, http2)")
    if http.get("http2") not in (None, False):
        raise ConfigError(source, "http_server_config.http2", "this exporter serves HTTP/1.1 only: "
                          "remove http2 or set it to false")
    raw = http.get("headers") or {}
    if not isinstance(raw, dict):
        raise ConfigError(source, "http_server_config.headers", "expected a mapping of header names to values")
    headers: dict[str, str] = {}
    for name, value in raw.items():
        key = f"http_server_config.headers.{name}"
        if name not in HEADERS:
            raise ConfigError(source, key,
                              f"cannot be configured (allowed, as in exporter-toolkit: {', '.join(HEADERS)})")
        if not isinstance(value, str) or not value or "\n" in value or "\r" in value:
            raise ConfigError(source, key, "expected a one-line string")
        allowed = HEADERS[name]
        if allowed is not None and value not in allowed:
            raise ConfigError(source, key, f"expected one of {', '.join(allowed)}, got {value!r}")
        headers[name] = value
    return headers


class BasicAuth:
    """The ``basic_auth_users`` check, off the event loop.

    bcrypt is slow on purpose (about 0.3 s at cost 12), so each check runs in a small thread pool
    of its own (at most ``concurrency`` at once; bcrypt releases the GIL) and the loop keeps serving
    scrapes, polls and events meanwhile. A pair that passed is remembered, by an HMAC of user and
    password under a key made at start (never the password itself), so Prometheus's scrapes cost
    one check, not one each. An unknown user is checked against a real hash too, so that response
    times do not tell which user names exist. Past ``max_waiting`` checks queued, a request gets
    429 at once rather than a place in an ever longer queue.
    """

    REMEMBERED = 64

    def __init__(self, users: dict[str, bytes], concurrency: int = 2, max_waiting: int = 64) -> None:
        import bcrypt

        self.users = users
        self.checkpw = bcrypt.checkpw
        # The most expensive of the configured hashes: an unknown user costs what a known one does.
        self.dummy = max(users.values(), key=lambda h: int(h.split(b"$")[2]))
        self.secret = os.urandom(32)
        self.good: dict[bytes, None] = {}  # insertion-ordered: the oldest is forgotten first
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bcrypt")
        self.max_waiting = max_waiting
        self.waiting = 0

    def fingerprint(self, user: str, password: str) -> bytes:
        u, p = user.encode(), password.encode()
        return hmac.new(self.secret, len(u).to_bytes(4, "big") + u + p, hashlib.sha256).digest()

    async def check(self, header: str) -> bool | None:
        """True: let in; False: 401; None: too many checks queued (429)."""
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":  # the scheme is case-insensitive (RFC 9110 11.1)
            return False
        try:
            user, sep, password = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not sep:
            return False
        fingerprint = self.fingerprint(user, password)
        if fingerprint in self.good:
            return True
        if self.waiting >= self.max_waiting:
            return None
        hashed = self.users.get(user)
        self.waiting += 1
        try:
            # The pool bounds the concurrency even when a client gives up mid-check.
            # bcrypt reads the first 72 bytes (htpasswd and Go hash and compare that way); the
            # bcrypt package refuses longer ones instead of ignoring the rest.
            ok = await asyncio.get_running_loop().run_in_executor(
                self.pool, self.checkpw, password.encode()[:72], hashed if hashed is not None else self.dummy)
        finally:
            self.waiting -= 1
        if not ok or hashed is None:
            return False
        if len(self.good) >= self.REMEMBERED:
            self.good.pop(next(iter(self.good)))
        self.good[fingerprint] = None
        return True

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        verdict = await self.check(request.headers.get("Authorization", ""))
        if verdict is None:
            return web.Response(status=429, text="Too Many Requests\n", headers={"Retry-After": "1"})
        if not verdict:
            return web.Response(status=401, text="Unauthorized\n",
                                headers={"WWW-Authenticate": 'Basic realm="chia-prometheus-exporter"'})
        return await handler(request)

    async def close(self, app: web.Application | None = None) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def create_app(exporter: Exporter, web_config: WebConfig | None = None) -> web.Application:
    middlewares = []
    auth = BasicAuth(web_config.users) if web_config and web_config.users else None
    if auth is not None:
        middlewares.append(auth.middleware)
    app = web.Application(middlewares=middlewares)
    app[EXPORTER_KEY] = exporter
    if auth is not None:
        app.on_cleanup.append(auth.close)
    if web_config and web_config.headers:
        extra = dict(web_config.headers)

        async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
            response.headers.update(extra)  # on every response, 401s included, as exporter-toolkit does

        app.on_response_prepare.append(add_headers)

    async def lifecycle(app: web.Application):
        await exporter.start()
        yield
        await exporter.stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/metrics", CachedMetrics(exporter).handle)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/", landing)
    return app


def accepts_gzip(header: str) -> bool:
    """Whether an Accept-Encoding header lets the response be gzip (RFC 9110 12.5.3): codings are
    case-insensitive, ``q=0`` refuses one, ``*`` stands for any not named, and gzip is not chosen
    over an identity the client explicitly prefers."""
    weights: dict[str, float] = {}
    for item in header.split(","):
        coding, *params = (part.strip() for part in item.split(";"))
        if not coding:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = -1.0
                if not 0.0 <= q <= 1.0:
                    q = -1.0  # malformed: ignore this coding
        if q >= 0:
            weights[coding.lower()] = max(q, weights.get(coding.lower(), 0.0))
    gzip_q = weights.get("gzip", weights.get("x-gzip", weights.get("*", 0.0)))
    if gzip_q <= 0:
        return False
    identity_q = weights.get("identity")
    return identity_q is None or gzip_q >= identity_q


class CachedMetrics:
    """prometheus-client's aiohttp handler, with its output reused while nothing changed.

    A scrape renders every family (about 16 ms for 2,200 series); several Prometheus servers or
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
        gzip_ok = accepts_gzip(request.headers.get("Accept-Encoding", ""))
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
        # The body depends on both headers: caches between here and the client must key on them.
        headers = {"Content-Type": hit[3], "Vary": "Accept, Accept-Encoding"}
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
