"""Chia's HTTPS JSON RPC with mutual TLS, limited to read-only endpoints.

Every call goes through :class:`RpcClient.call` (or ``call_raw``), which refuses any endpoint
outside :data:`READ_ONLY_ENDPOINTS`, and so does the one POST under them (``_post``), so that no
path can skip the check: the exporter can never change a node, farm or wallet. Each call ends in
exactly one outcome (``ok``, ``error``, ``timeout``, ``refused``, ``tls``, ``bad_response``),
counted in :class:`RpcStats` for ``chia_exporter_rpc_requests_total``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

import aiohttp

log = logging.getLogger(__name__)

T = TypeVar("T")

# The only endpoints the exporter may call, per service. All of them only read. Adding one here
# is a review decision: check in Chia's source that it changes nothing and that its cost does not
# grow with plot count on the farmer.
READ_ONLY_ENDPOINTS: dict[str, frozenset[str]] = {
    "full_node": frozenset({
        "get_blockchain_state", "get_connections", "get_fee_estimate", "get_block_count_metrics",
        "get_network_info", "get_version", "get_block_record", "get_block_record_by_height",
        "get_all_mempool_tx_ids", "healthz",
    }),
    "farmer": frozenset({
        "get_connections", "get_harvesters_summary", "get_pool_state", "get_reward_targets",
        "get_signage_points", "get_network_info", "get_version", "healthz",
    }),
    "harvester": frozenset({
        "get_plots", "get_plot_directories", "get_connections", "get_network_info", "get_version",
        "healthz",
    }),
    "wallet": frozenset({
        "get_sync_status", "get_height_info", "get_wallets", "get_wallet_balance",
        "get_wallet_balances", "get_farmed_amount", "get_connections", "get_network_info",
        "get_version", "get_logged_in_fingerprint", "healthz",
    }),
    # Daemon WebSocket commands. register_service only subscribes this socket to events.
    "daemon": frozenset({
        "get_version", "is_running", "running_services", "get_status", "get_network_info",
        "keyring_status", "ping", "register_service",
    }),
    "data_layer": frozenset({
        "get_owned_stores", "subscriptions", "get_sync_status", "get_root", "get_mirrors",
        "get_version", "get_connections", "get_network_info", "healthz",
    }),
    "crawler": frozenset({"get_peer_counts", "get_version", "get_connections", "healthz"}),
    "timelord": frozenset({"get_version", "get_connections", "healthz"}),
}

OUTCOMES = ("ok", "error", "timeout", "refused", "tls", "bad_response")


class NotAllowedError(RuntimeError):
    """A programming error: code asked for an endpoint outside the read-only allowlist."""


class RpcError(Exception):
    """A failed call. ``outcome`` is one of :data:`OUTCOMES` (never ``ok``)."""

    def __init__(self, outcome: str, endpoint: str, detail: str) -> None:
        self.outcome, self.endpoint, self.detail = outcome, endpoint, detail
        super().__init__(f"{endpoint}: {outcome}: {detail}")


class ReplyTooLarge(RpcError):
    """A reply over a size limit (the response cap, or the daemon WebSocket's message limit)."""

    def __init__(self, endpoint: str, detail: str) -> None:
        super().__init__("bad_response", endpoint, detail)


# What a body of the wrong shape raises while parsed: a missing or mistyped field, a number too
# large for an int (OverflowError), JSON nested past the parser's depth (RecursionError).
SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError, RecursionError)


async def counted(stats: RpcStats, collector: str, endpoint: str, body: Awaitable[Any],
                  parse: Callable[[Any], T] | None) -> T | Any:
    """Await a call's body, parse it, and count the call's one outcome, whatever the transport.

    A body that ``parse`` rejects is ``bad_response``; a call that the poll's own timeout cuts
    short (cancelled) counts as ``timeout``.
    """
    try:
        result = await body
        if parse is not None:
            try:
                result = parse(result)
            except SHAPE_ERRORS as e:
                raise RpcError("bad_response", endpoint, f"unexpected shape: {type(e).__name__}: {e}") from None
    except RpcError as e:
        stats.record(collector, endpoint, e.outcome)
        raise
    except asyncio.CancelledError:
        stats.record(collector, endpoint, "timeout")
        raise
    stats.record(collector, endpoint, "ok")
    return result


def check_allowed(service: str, endpoint: str) -> None:
    """Refuse, before anything is sent, an endpoint outside the service's read-only allowlist."""
    if endpoint not in READ_ONLY_ENDPOINTS.get(service, frozenset()):
        raise NotAllowedError(f"{service}/{endpoint} is not a read-only endpoint in the allowlist")


class RpcStats:
    """Outcome counts of every call, by (collector, endpoint, outcome)."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str, str]] = Counter()

    def record(self, collector: str, endpoint: str, outcome: str) -> None:
        self.counts[(collector, endpoint, outcome)] += 1


def tls_context(ca_cert: Path, cert: Path, key: Path) -> ssl.SSLContext:
    """Mutual TLS as Chia speaks it: our client certificate, the server's verified against the CA.

    Chia's certificates name ``chia.net``, not the host, so the host name is not checked; the
    chain is. They also lack an Authority Key Identifier, which the strict X.509 mode that Python
    3.13 turns on would reject, so that one flag is cleared.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_cert))
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class TlsFiles:
    """The TLS context for one service, rebuilt when a certificate file changes on disk.

    A renewed certificate is picked up without a restart; a deleted or unreadable one turns the
    next call into a ``tls`` failure instead of going on with a key that is no longer there.
    """

    def __init__(self, ca_cert: Path, cert: Path, key: Path) -> None:
        self.paths = (ca_cert, cert, key)
        self._stamp: tuple | None = None
        self._ctx: ssl.SSLContext | None = None

    def context(self) -> ssl.SSLContext:
        try:
            stamp = tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(os.stat, self.paths))
        except OSError as e:
            raise ssl.SSLError(f"certificate file unavailable: {e.filename}: {e.strerror}") from None
        if stamp != self._stamp or self._ctx is None:
            try:
                self._ctx = tls_context(*self.paths)
            except OSError as e:  # PermissionError and friends: never print the file's content
                raise ssl.SSLError(f"cannot load certificate: {e.strerror}") from None
            self._stamp = stamp
        return self._ctx


@dataclass
class RpcClient:
    """One service's RPC: ``https://host:port/<endpoint>`` with a JSON body."""

    session: aiohttp.ClientSession
    service: str  # key of READ_ONLY_ENDPOINTS
    collector: str  # label for the stats
    host: str
    port: int
    tls: TlsFiles
    timeout: float
    max_response_bytes: int
    stats: RpcStats

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    async def call(
        self,
        endpoint: str,
        params: dict[str, Any] | None = None,
        parse: Callable[[dict], T] | None = None,
    ) -> T | dict:
        """POST ``params`` to ``endpoint``; return the body, or ``parse(body)`` when given.

        A body that ``parse`` rejects (missing or mistyped fields) is a ``bad_response``.
        """
        check_allowed(self.service, endpoint)

        async def body() -> dict:
            return _decode(endpoint, await self._post(endpoint, params or {}))
        return await counted(self.stats, self.collector, endpoint, body(), parse)

    async def call_raw(self, endpoint: str, params: dict[str, Any] | None = None,
                       parse: Callable[[bytearray], Awaitable[T]] | None = None,
                       parse_body: Callable[[dict], T] | None = None) -> T:
        """Like :meth:`call` for large bodies: ``parse`` gets the raw bytes and may await.
        (``parse_body``, the same reduction from a decoded body, is for transports that decode.)"""
        check_allowed(self.service, endpoint)

        async def parsed() -> T:
            raw = await self._post(endpoint, params or {})
            try:
                return await parse(raw)  # type: ignore[misc]
            except SHAPE_ERRORS as e:
                raise RpcError("bad_response", endpoint, f"unexpected shape: {type(e).__name__}: {e}") from None
        return await counted(self.stats, self.collector, endpoint, parsed(), None)

    async def _post(self, endpoint: str, params: dict[str, Any]) -> bytearray:
        """The only request this client sends: checked against the allowlist here too."""
        check_allowed(self.service, endpoint)
        url = f"{self.base_url}/{endpoint}"
        timeout = aiohttp.ClientTimeout(total=None, connect=min(5.0, self.timeout), sock_read=self.timeout)
        try:
            ctx = self.tls.context()
            async with self.session.post(url, json=params, ssl=ctx, timeout=timeout) as resp:
                if resp.status != 200:
                    raise RpcError("error", endpoint, f"HTTP {resp.status}")
                if resp.content_length is not None and resp.content_length > self.max_response_bytes:
                    raise ReplyTooLarge(endpoint,
                                        f"body of {resp.content_length} bytes is over the cap of {self.max_response_bytes}")
                return await _read_capped(resp, self.max_response_bytes, endpoint)
        except RpcError:
            raise
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            raise RpcError("timeout", endpoint, f"no answer within {self.timeout:g}s") from None
        except (ssl.SSLError, aiohttp.ClientSSLError, aiohttp.ServerFingerprintMismatch) as e:
            raise RpcError("tls", endpoint, _tls_reason(e)) from None
        except aiohttp.ClientConnectorError as e:
            raise RpcError("refused", endpoint, f"cannot connect to {self.host}:{self.port}: {e.os_error}") from None
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as e:
            raise RpcError("bad_response", endpoint, f"connection broke: {type(e).__name__}") from None
        except aiohttp.ClientError as e:
            raise RpcError("error", endpoint, f"{type(e).__name__}: {e}") from None


async def _read_capped(resp: aiohttp.ClientResponse, cap: int, endpoint: str) -> bytearray:
    """The body, refused past ``cap``, in one growing buffer, so a 60 MB body is not held twice.
    (Growing is cheap: a large buffer is remapped, not copied. Made at full size up front, it
    would be zero-filled in one go, a 35 ms stall of the loop at 100k plots.)"""
    body = bytearray()
    async for chunk in resp.content.iter_any():
        if len(body) + len(chunk) > cap:
            raise ReplyTooLarge(endpoint, f"body over the cap of {cap} bytes")
        body += chunk
    return body


def _decode(endpoint: str, body: bytes | bytearray) -> dict:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise RpcError("bad_response", endpoint, f"not JSON ({len(body)} bytes)") from None
    return check_success(endpoint, data)


def check_success(endpoint: str, data: Any) -> dict:
    if not isinstance(data, dict):
        raise RpcError("bad_response", endpoint, "not a JSON object")
    if data.get("success") is not True:
        raise RpcError("error", endpoint, str(data.get("error") or "success is not true"))
    return data


def _tls_reason(e: BaseException) -> str:
    # Only the verification reason: never the certificate or key material.
    inner = getattr(e, "certificate_error", None) or getattr(e, "os_error", None) or e
    reason = getattr(inner, "verify_message", None) or getattr(inner, "reason", None) or str(inner)
    return f"TLS handshake failed: {reason}"
