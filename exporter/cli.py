"""Command line: flags -> Config -> run. Exit codes: 0 done, 1 runtime failure, 2 bad configuration."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from typing import Any, Sequence

from aiohttp import web

from exporter import __version__
from exporter.config import SERVICES, Config, ConfigError, load, verify_tls

log = logging.getLogger("exporter")


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr and exit 2, like every configuration error,
    not the whole usage text."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="chia-prometheus-exporter",
        allow_abbrev=False,  # --web.listen is not --web.listen-address
        description="Prometheus exporter for Chia. With no options it reads $CHIA_ROOT/config/config.yaml "
                    "(default ~/.chia/mainnet). Precedence: flags > CHIA_EXPORTER_* env > --config file > "
                    "Chia's config.yaml > defaults.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", dest="config", metavar="FILE", help="the exporter's YAML configuration file")
    p.add_argument("--chia-root", dest="chia_root", metavar="DIR",
                   help="Chia's root folder (env CHIA_ROOT; default ~/.chia/mainnet)")
    p.add_argument("--web.listen-address", dest="web.listen_address", metavar="HOST:PORT",
                   help="where /metrics listens (default 0.0.0.0:9914)")
    p.add_argument("--web.config.file", dest="web.config_file", metavar="FILE",
                   help="TLS and basic auth for /metrics, in Prometheus exporter-toolkit's format")
    # Checked with the other sources' log_level (warn is node_exporter's spelling of warning).
    p.add_argument("--log.level", dest="log_level", metavar="{debug,info,warn,warning,error}",
                   help="default info")
    p.add_argument("--transport", dest="transport", choices=["https", "daemon"],
                   help="https: call each service's RPC port (default); daemon: route every call through "
                        "the daemon's WebSocket, for hosts that expose only the daemon port")
    p.add_argument("--check-config", action="store_true", help="validate the configuration and exit (0 or 2)")
    events = p.add_argument_group("daemon events")
    events.add_argument("--events", dest="events.enabled", action=argparse.BooleanOptionalAction, default=None,
                        help="subscribe to the daemon's WebSocket events (default on)")
    events.add_argument("--events.watchdog", dest="events.watchdog", metavar="DURATION",
                        help="the longest a dead daemon link goes unnoticed: a quiet link is asked ping after 30s "
                             "(or half of this) and reconnected if unanswered for 10s (default 5m)")
    for name in SERVICES:
        g = p.add_argument_group(f"collector {name}")
        g.add_argument(f"--collector.{name}", dest=f"collectors.{name}.enabled",
                       action=argparse.BooleanOptionalAction, default=None,
                       help=f"enable the {name} collector (--no-collector.{name} to disable)")
        for key, meta in (("host", "HOST"), ("port", "PORT"), ("interval", "DURATION"), ("timeout", "DURATION")):
            help_text = (f"the daemon's {key}, also for the events and --transport daemon "
                         f"(default config.yaml's {'self_hostname' if key == 'host' else 'daemon_port'})"
                         if name == "daemon" and key in ("host", "port") else None)
            g.add_argument(f"--collector.{name}.{key}", dest=f"collectors.{name}.{key}", metavar=meta, help=help_text)
    return p


def _fix_negations(argv: Sequence[str]) -> list[str]:
    # BooleanOptionalAction spells the negative --no-collector.NAME; node_exporter users type the
    # same, so nothing to translate; kept as a seam for --no-events aliases.
    return list(argv)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, dict[str, Any]]:
    ns = build_parser().parse_args(_fix_negations(argv))
    flags = {k: v for k, v in vars(ns).items() if k != "check_config" and v is not None}
    return ns, flags


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="time=%(asctime)s level=%(levelname)s source=%(name)s msg=%(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:  # a simulated farm for trying the exporter without a Chia node
        from exporter.demo import main as demo_main

        return demo_main(argv[1:])
    ns, flags = parse_args(argv)
    try:
        config = load(flags)
        verify_tls(config)  # every certificate and key loads as the RPC clients will load it
        web_config = None
        if config.web_config_file is not None:
            from exporter.server import load_web_config
            web_config = load_web_config(config.web_config_file)
    except ConfigError as e:
        print(f"chia-prometheus-exporter: configuration error: {e}", file=sys.stderr)
        return 2
    if ns.check_config:
        print(describe(config))
        for line in startup_warnings(config, web_config):
            print(f"chia-prometheus-exporter: warning: {line}", file=sys.stderr)
        return 0
    setup_logging(config.log_level)
    try:
        asyncio.run(serve(config, web_config))
    except OSError as e:  # the listen address is taken or not ours
        log.error("cannot listen on %s: %s", config.listen_address, e.strerror or e)
        return 1
    return 0


def describe(config: Config) -> str:
    """What the exporter would do: the addresses it would really use."""
    from exporter.daemon_ws import DESTINATIONS

    e = config.events
    daemon = _wss(e.host, e.port)  # the daemon collector's address, which the events use too
    transport = config.transport + (f" (every request through {daemon})" if config.transport == "daemon" else "")
    lines = [f"configuration OK (read: {', '.join(config.sources) or 'defaults only'})",
             f"listen: {config.listen_address}", f"transport: {transport}", f"log level: {config.log_level}"]
    for c in config.collectors.values():
        state = "on " if c.enabled else "off"
        if c.name == "daemon":
            where = daemon
        elif config.transport == "daemon":
            where = f"through the daemon to {DESTINATIONS[c.name]}"
        else:
            where = f"{c.host}:{c.port}"
        lines.append(f"collector {c.name:<10} {state} {where} every {c.interval:g}s, "
                     f"timeout {c.timeout:g}s, stale after {c.stale_after:g}s")
    lines.append(f"events {'on ' if e.enabled else 'off'} {daemon} watchdog {e.watchdog:g}s")
    return "\n".join(lines)


def _wss(host: str, port: int) -> str:
    return f"wss://[{host}]:{port}/" if ":" in host else f"wss://{host}:{port}/"


def startup_warnings(config: Config, web_config=None) -> list[str]:
    """One line each, logged at start and printed by --check-config."""
    warnings = list(config.warnings)
    exposure = exposure_warning(config, web_config)
    if exposure:
        warnings.append(exposure)
    return warnings


def exposure_warning(config: Config, web_config=None) -> str | None:
    """/metrics shows wallet balances and reward addresses: say so when anyone on the network can
    read it (an address other than loopback, and neither basic auth nor client certificates)."""
    host, _ = config.listen_host_port
    if host == "localhost" or _is_loopback_ip(host):
        return None
    if web_config is not None and (web_config.users or web_config.client_auth_type == "RequireAndVerifyClientCert"):
        return None
    return (f"/metrics on {config.listen_address} can be read from other machines without basic auth or a "
            "client certificate, and it shows wallet balances and reward addresses: listen on 127.0.0.1 "
            "(--web.listen-address) or set --web.config.file, see docs/security.md")


def _is_loopback_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to any interface
        return False


async def serve(config: Config, web_config=None, ready: asyncio.Event | None = None,
                stop: asyncio.Event | None = None) -> None:
    from exporter.app import Exporter
    from exporter.server import create_app

    for line in startup_warnings(config, web_config):
        log.warning("%s", line)
    exporter = Exporter(config)
    app = create_app(exporter, web_config)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    host, port = config.listen_host_port
    site = web.TCPSite(runner, host, port, ssl_context=web_config.ssl_context() if web_config else None)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    scheme = "https" if web_config and web_config.tls_cert else "http"
    log.info("listening on %s://%s:%d/metrics (collectors: %s)", scheme, host, port,
             ", ".join(r.name for r in exporter.runners) or "none")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()
