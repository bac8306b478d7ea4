"""Typed, validated configuration.

Sources, lowest to highest precedence:
  1. built-in defaults;
  2. Chia's own ``$CHIA_ROOT/config/config.yaml`` (hosts, ports, certificate paths);
  3. the exporter's YAML file (``--config FILE`` or ``CHIA_EXPORTER_CONFIG``);
  4. ``CHIA_EXPORTER_*`` environment variables;
  5. command-line flags.

Every error is a :class:`ConfigError` that names the file (or variable, or flag) and the key, so
that the command line can print one line and exit 2 before anything starts.
"""

from __future__ import annotations

import math
import os
import re
import ssl
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

DEFAULT_CHIA_ROOT = "~/.chia/mainnet"
DEFAULT_LISTEN_ADDRESS = "0.0.0.0:9914"  # 9914 is Chia's entry in Prometheus's port allocations
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_LEVEL_ALIASES = {"warn": "warning"}  # node_exporter's spelling
ENV_PREFIX = "CHIA_EXPORTER_"


class ConfigError(Exception):
    """A configuration problem: ``source`` is a file, variable or flag, ``key`` the offending key."""

    def __init__(self, source: str, key: str, message: str) -> None:
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


@dataclass(frozen=True)
class ServiceSpec:
    """Where a Chia service lives in config.yaml and what it listens on by default."""

    collector: str  # our collector name
    section: tuple[str, ...]  # path of its section in config.yaml
    cert_dir: str  # folder under config/ssl holding private_<cert_dir>.crt/.key
    default_port: int
    port_key: str = "rpc_port"
    default_interval: float = 30.0
    default_timeout: float = 10.0
    default_max_response_bytes: int = 16 * 2**20
    default_enabled: bool = True
    # On by default only where config.yaml has this service's section (a host set up to run it).
    when_configured: bool = False


# The services the exporter knows, in the order they are rendered. The daemon has no HTTPS RPC:
# its collector speaks the WebSocket on daemon_port.
SERVICES: dict[str, ServiceSpec] = {
    s.collector: s
    for s in (
        ServiceSpec("full_node", ("full_node",), "full_node", 8555),
        ServiceSpec("farmer", ("farmer",), "farmer", 8559),
        # get_plots grows with plot count (~600 bytes a plot): the collector fetches it far less
        # often than it polls (see collectors/harvester.py), with a long timeout and a large cap.
        ServiceSpec(
            "harvester", ("harvester",), "harvester", 8560,
            default_interval=60.0, default_timeout=60.0, default_max_response_bytes=512 * 2**20,
        ),
        ServiceSpec("wallet", ("wallet",), "wallet", 9256, default_interval=60.0),
        ServiceSpec(
            "daemon", (), "daemon", 55400, port_key="daemon_port", default_interval=60.0,
        ),
        # On where config.yaml has a data_layer section.
        ServiceSpec("data_layer", ("data_layer",), "data_layer", 8562, when_configured=True),
        # Likewise the crawler, under seeder.crawler in config.yaml.
        ServiceSpec("crawler", ("seeder", "crawler"), "crawler", 8561, default_interval=60.0,
                    when_configured=True),
    )
}


@dataclass(frozen=True)
class CollectorConfig:
    name: str
    enabled: bool
    host: str
    port: int
    interval: float  # seconds between polls
    timeout: float  # seconds for a whole poll
    stale_after: float  # seconds after the last success when its data leaves /metrics
    cert: Path  # client certificate (Chia's private_<service>.crt)
    key: Path
    max_response_bytes: int
    # Enabled by the user (flag, env or YAML), not by default: the service is expected here, so a
    # refused connection is a failure from the start, never "not installed on this host".
    required: bool = False


@dataclass(frozen=True)
class EventsConfig:
    """The daemon WebSocket that turns pushed events into counters (and, with the daemon
    transport, carries every request)."""

    enabled: bool
    host: str  # always the daemon collector's address: one daemon, one address
    port: int
    cert: Path
    key: Path
    watchdog: float  # the longest a dead link goes unnoticed (a quiet one is asked ping first)
    max_message_bytes: int
    harvester_expiry: float  # per-harvester event series leave after this much silence
    failed_partials: str  # auto: listen as wallet_ui while a plot NFT farms to a pool; on; off


@dataclass(frozen=True)
class Config:
    chia_root: Path
    ca_cert: Path  # Chia's private CA: every service's server certificate must chain to it
    listen_address: str
    web_config_file: Path | None
    log_level: str
    transport: str  # "https": each service's RPC port; "daemon": everything through the daemon
    collectors: dict[str, CollectorConfig]
    events: EventsConfig
    chia_config_file: Path | None  # the config.yaml that was read, if any
    sources: tuple[str, ...] = field(default=())  # files read, for --check-config
    full_node_database: Path | None = None  # the node's SQLite file, as config.yaml names it
    # The largest message Chia's daemon relays (config.yaml daemon_max_message_size, else Chia's
    # default): a reply routed through the daemon cannot be larger.
    daemon_max_message_size: int = 50_000_000
    # Where each certificate and key setting came from ("collectors.farmer.cert" -> source), so
    # that verify_tls can name it.
    origins: Mapping[str, str] = field(default_factory=dict)
    # One line each, logged at start: what was turned off rather than stopping the exporter.
    warnings: tuple[str, ...] = ()

    @property
    def listen_host_port(self) -> tuple[str, int]:
        return split_address(self.listen_address, "web.listen_address")


def split_address(address: str, key: str, source: str = "config") -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(source, key, f"expected HOST:PORT, got {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_TERM = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")  # "ms" before "m": 30ms is not 30m + s
_UNITS = {"y": 365 * 86400, "w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1, "ms": 0.001}
_UNIT_ORDER = tuple(_UNITS)  # largest first, as Prometheus writes them: 1h30m, not 30m1h


def _duration_seconds(text: str) -> float | None:
    if _NUMBER.fullmatch(text):
        return float(text)
    seconds, pos, last = 0.0, 0, -1
    while pos < len(text):
        m = _TERM.match(text, pos)
        if m is None:
            return None
        rank = _UNIT_ORDER.index(m.group(2))
        if rank <= last:  # each unit once, largest first
            return None
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos, last = m.end(), rank
    return seconds if text else None


def parse_duration(value: Any, source: str, key: str) -> float:
    """``30s``, ``5m``, ``1.5h``, ``250ms``, compound ``1m30s`` or ``1h30m`` (Prometheus style,
    units ``ms s m h d w y`` largest first), or a bare number of seconds."""
    example = "expected a duration such as 30s, 5m or 1m30s"
    if isinstance(value, bool):
        raise ConfigError(source, key, f"{example}, got {value!r}")
    if isinstance(value, (int, float)):
        seconds: float | None = float(value)
    else:
        seconds = _duration_seconds(str(value).strip())
        if seconds is None:
            raise ConfigError(source, key, f"{example}, got {value!r}")
    if not math.isfinite(seconds):
        raise ConfigError(source, key, f"{example}, got {value!r}")
    if seconds <= 0:
        raise ConfigError(source, key, f"must be greater than zero, got {value!r}")
    return seconds


def parse_bool(value: Any, source: str, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(source, key, f"expected true or false, got {value!r}")


def parse_int(value: Any, source: str, key: str, low: int = 0, high: int | None = None) -> int:
    if isinstance(value, bool):
        raise ConfigError(source, key, f"expected an integer, got {value!r}")
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ConfigError(source, key, f"expected an integer, got {value!r}") from None
    if number < low or (high is not None and number > high):
        raise ConfigError(source, key, f"must be between {low} and {high or 'any'}, got {value!r}")
    return number


def parse_str(value: Any, source: str, key: str) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool) or str(value) == "":
        raise ConfigError(source, key, f"expected a non-empty string, got {value!r}")
    return str(value)


# ---------------------------------------------------------------------------------------------
# The layered settings. Every layer is a flat mapping of dotted keys ("collectors.farmer.port")
# to raw values with the place they came from, so that errors name their origin exactly.

COLLECTOR_KEYS = ("enabled", "host", "port", "interval", "timeout", "stale_after", "cert", "key",
                  "max_response_bytes")
EVENTS_KEYS = ("enabled", "watchdog", "max_message_bytes", "harvester_expiry", "failed_partials")
# Keys that were once accepted and now live elsewhere: named in the error, not just "unknown".
MOVED_KEYS = {"events.host": "collectors.daemon.host", "events.port": "collectors.daemon.port"}
MOVED_WHY = "the event stream and the daemon transport use the daemon's address"
TOP_KEYS = ("chia_root", "log_level", "transport", "web", "collectors", "events")
TRANSPORTS = ("https", "daemon")
WEB_KEYS = ("listen_address", "config_file")


@dataclass(frozen=True)
class Setting:
    value: Any
    source: str


Layer = dict[str, Setting]


def layer_from_file(path: Path) -> Layer:
    """Read the exporter's YAML file strictly: unknown keys and wrong shapes are errors."""
    source = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(source, "", f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(source, "", "not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(source, "", f"not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a mapping at the top level")
    layer: Layer = {}

    def mapping(value: Any, key: str) -> dict:
        if not isinstance(value, dict):
            raise ConfigError(source, key, "expected a mapping")
        return value

    def relative_to_file(key: str, value: Any) -> Any:
        # A relative path in this file is relative to the file's folder, as Prometheus and the
        # web config file do, not to wherever the exporter happens to be started.
        if key in ("chia_root", "web.config_file") or key.endswith((".cert", ".key")):
            if isinstance(value, str) and value:
                value = os.path.expandvars(value)  # $HOME/.chia/mainnet is absolute once expanded
                if not Path(value).expanduser().is_absolute():
                    return str(path.absolute().parent / value)
        return value

    for top, value in data.items():
        if top not in TOP_KEYS:
            raise ConfigError(source, str(top), f"unknown key (known: {', '.join(TOP_KEYS)})")
        if top == "web":
            for k, v in mapping(value, "web").items():
                if k not in WEB_KEYS:
                    raise ConfigError(source, f"web.{k}", f"unknown key (known: {', '.join(WEB_KEYS)})")
                layer[f"web.{k}"] = Setting(relative_to_file(f"web.{k}", v), source)
        elif top == "collectors":
            for name, body in mapping(value, "collectors").items():
                if name not in SERVICES:
                    raise ConfigError(source, f"collectors.{name}",
                                      f"unknown collector (known: {', '.join(SERVICES)})")
                if isinstance(body, bool):  # "farmer: false" is shorthand for enabled: false
                    layer[f"collectors.{name}.enabled"] = Setting(body, source)
                    continue
                for k, v in mapping(body or {}, f"collectors.{name}").items():
                    if k not in COLLECTOR_KEYS:
                        raise ConfigError(source, f"collectors.{name}.{k}",
                                          f"unknown key (known: {', '.join(COLLECTOR_KEYS)})")
                    layer[f"collectors.{name}.{k}"] = Setting(relative_to_file(f"collectors.{name}.{k}", v), source)
        elif top == "events":
            for k, v in mapping(value, "events").items():
                if f"events.{k}" in MOVED_KEYS:
                    raise ConfigError(source, f"events.{k}", f"{MOVED_WHY}: set {MOVED_KEYS[f'events.{k}']}")
                if k not in EVENTS_KEYS:
                    raise ConfigError(source, f"events.{k}", f"unknown key (known: {', '.join(EVENTS_KEYS)})")
                layer[f"events.{k}"] = Setting(v, source)
        else:
            layer[top] = Setting(relative_to_file(top, value), source)
    return layer


def env_key(dotted: str) -> str:
    """``collectors.full_node.port`` -> ``CHIA_EXPORTER_COLLECTORS_FULL_NODE_PORT``."""
    return ENV_PREFIX + dotted.replace(".", "_").upper()


def all_dotted_keys() -> list[str]:
    keys = ["chia_root", "log_level", "transport", "config", "web.listen_address", "web.config_file"]
    keys += [f"collectors.{n}.{k}" for n in SERVICES for k in COLLECTOR_KEYS]
    keys += [f"events.{k}" for k in EVENTS_KEYS]
    return keys


def layer_from_env(environ: Mapping[str, str]) -> Layer:
    """``CHIA_EXPORTER_*`` variables; an unknown one is an error, not silently ignored."""
    known = {env_key(k): k for k in all_dotted_keys()}
    moved = {env_key(old): env_key(new) for old, new in MOVED_KEYS.items()}
    layer: Layer = {}
    for var, value in environ.items():
        if not var.startswith(ENV_PREFIX):
            continue
        if var in moved:
            raise ConfigError(f"environment variable {var}", "", f"{MOVED_WHY}: set {moved[var]}")
        if var not in known:
            raise ConfigError(f"environment variable {var}", "", "unknown setting "
                              "(see the configuration reference in the README)")
        layer[known[var]] = Setting(value, f"environment variable {var}")
    return layer


# ---------------------------------------------------------------------------------------------
# Chia's config.yaml


def read_chia_config(chia_root: Path) -> tuple[dict, Path | None]:
    """Chia's config.yaml, or ({}, None) when CHIA_ROOT has none (not a Chia host).

    Read without asking first whether it exists: Path.exists() raises PermissionError for a
    CHIA_ROOT the exporter cannot enter (a traceback), and a check that said False instead would
    pass a home folder of mode 0700 off as "no Chia here"."""
    path = chia_root / "config" / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        return {}, None
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "", "not UTF-8 text") from None
    except yaml.YAMLError:
        raise ConfigError(str(path), "", "not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a mapping at the top level")
    return data, path


class ChiaConfig:
    """Typed reads from Chia's config.yaml.

    A key or section that is absent (or empty) is fine: defaults apply. One that is present with
    the wrong type (``self_hostname: [x]``, ``rpc_port: "8555"``, ``ssl.private_crt: 123``) is a
    ConfigError naming config.yaml and the key, never silently replaced by a default.
    """

    def __init__(self, data: dict, path: Path | None) -> None:
        self.data, self.path = data, path
        self.source = str(path) if path else "config.yaml"

    def section(self, where: tuple[str, ...]) -> dict | None:
        """The mapping at ``where``; None when it (or a parent) is absent or empty (``seeder:``)."""
        node: Any = self.data
        for depth, part in enumerate(where):
            node = node.get(part)
            if node is None:
                return None
            if not isinstance(node, dict):
                raise ConfigError(self.source, ".".join(where[:depth + 1]), f"expected a mapping, got {_brief(node)}")
        return node

    def value(self, where: tuple[str, ...], key: str, kind: str) -> Any:
        """``kind``: "port" (an integer 1-65535), "path" or "string" (non-empty strings)."""
        section = self.section(where) if where else self.data
        if section is None or section.get(key) is None:
            return None
        value = section[key]
        dotted = ".".join((*where, key))
        if kind == "port":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
                raise ConfigError(self.source, dotted,
                                  f"expected a port number (an integer 1-65535), got {_brief(value)}")
        elif not isinstance(value, str) or not value.strip():
            what = "a path" if kind == "path" else "a non-empty string"
            raise ConfigError(self.source, dotted, f"expected {what}, got {_brief(value)}")
        return value

    def origin(self, where: tuple[str, ...], key: str) -> str:
        return f"{self.source} ({'.'.join((*where, key))})"


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def chia_path(chia_root: Path, value: str) -> Path:
    """Resolve a path from config.yaml as Chia does: relative paths are under CHIA_ROOT."""
    p = Path(os.path.expandvars(str(value))).expanduser()
    return p if p.is_absolute() else chia_root / p


def daemon_max_message_size(chia: ChiaConfig) -> int:
    value = chia.data.get("daemon_max_message_size")
    if value is None:
        return Config.daemon_max_message_size
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(chia.source, "daemon_max_message_size", f"expected a positive integer, got {_brief(value)}")
    return value


def full_node_database(chia_root: Path, chia: ChiaConfig) -> Path | None:
    """The node's database file, as Chia resolves ``database_path`` (CHALLENGE = network)."""
    db = chia.value(("full_node",), "database_path", "path")
    if db is None:
        return None
    network = (chia.value(("full_node",), "selected_network", "string")
               or chia.value((), "selected_network", "string") or "mainnet")
    return chia_path(chia_root, db.replace("CHALLENGE", network))


def chia_defaults(chia_root: Path, chia: ChiaConfig) -> Layer:
    """Hosts, ports and certificate paths discovered from config.yaml (types checked)."""
    layer: Layer = {}
    host = chia.value((), "self_hostname", "string")
    for name, spec in SERVICES.items():
        port = chia.value(spec.section, spec.port_key, "port")
        if port is not None:
            layer[f"collectors.{name}.port"] = Setting(port, chia.origin(spec.section, spec.port_key))
        if host is not None:
            layer[f"collectors.{name}.host"] = Setting(host, chia.origin((), "self_hostname"))
        ssl_where = ("daemon_ssl",) if name == "daemon" else (*spec.section, "ssl")
        for ours, theirs in (("cert", "private_crt"), ("key", "private_key")):
            value = chia.value(ssl_where, theirs, "path")
            if value is not None:
                layer[f"collectors.{name}.{ours}"] = Setting(str(chia_path(chia_root, value)),
                                                             chia.origin(ssl_where, theirs))
    return layer


# ---------------------------------------------------------------------------------------------


def load(
    flags: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the Config from every source. ``flags`` holds dotted keys set on the command line."""
    environ = os.environ if environ is None else environ
    env = layer_from_env(environ)
    flag_layer: Layer = {k: Setting(v, f"flag --{flag_name(k)}") for k, v in flags.items() if v is not None}

    # Where the exporter's own file is, and where CHIA_ROOT is, come first: they feed the rest.
    config_file = _pick("config", flag_layer, env)
    file_layer: Layer = {}
    if config_file is not None:
        file_layer = layer_from_file(Path(str(config_file.value)).expanduser())

    root_setting = _pick("chia_root", flag_layer, env, file_layer)
    if root_setting is None and environ.get("CHIA_ROOT"):
        root_setting = Setting(environ["CHIA_ROOT"], "environment variable CHIA_ROOT")
    root_value = root_setting.value if root_setting else DEFAULT_CHIA_ROOT
    try:
        chia_root = Path(os.path.expandvars(str(root_value))).expanduser()
    except RuntimeError:  # "~" with neither HOME nor an entry in the user database (odd containers)
        raise ConfigError(root_setting.source if root_setting else "default", "chia_root",
                          f"cannot expand {root_value!r}: no home directory for this user; set CHIA_ROOT") from None
    data, chia_file = read_chia_config(chia_root)
    chia = ChiaConfig(data, chia_file)
    discovered = chia_defaults(chia_root, chia) if chia_file else {}

    layers = [discovered, file_layer, env, flag_layer]

    def get(key: str, default: Any) -> Setting:
        for layer in reversed(layers):
            if key in layer:
                return layer[key]
        return Setting(default, "default")

    ca_crt = chia.value(("private_ssl_ca",), "crt", "path") or "config/ssl/ca/private_ca.crt"
    ca_cert = chia_path(chia_root, ca_crt)

    collectors: dict[str, CollectorConfig] = {}
    for name, spec in SERVICES.items():
        if spec.when_configured and chia_file is not None and chia.section(spec.section) is None:
            spec = replace(spec, default_enabled=False)  # this host is not set up to run it
        collectors[name] = _collector(name, spec, chia_root, get)

    enabled_any = any(c.enabled for c in collectors.values())
    # One daemon, one address: the event stream (and with it the daemon transport) talks to the
    # daemon collector's host and port, and uses its certificate, even with that collector off.
    daemon_cfg = collectors["daemon"]
    ev = lambda k, d: get(f"events.{k}", d)  # noqa: E731
    events = EventsConfig(
        enabled=parse_bool(ev("enabled", True).value, ev("enabled", True).source, "events.enabled"),
        host=daemon_cfg.host,
        port=daemon_cfg.port,
        cert=collectors["daemon"].cert,
        key=collectors["daemon"].key,
        watchdog=parse_duration(ev("watchdog", 300).value, ev("watchdog", 0).source, "events.watchdog"),
        max_message_bytes=parse_int(ev("max_message_bytes", 64 * 2**20).value,
                                    ev("max_message_bytes", 0).source, "events.max_message_bytes", 1024),
        harvester_expiry=parse_duration(ev("harvester_expiry", 600).value,
                                        ev("harvester_expiry", 0).source, "events.harvester_expiry"),
        failed_partials=_choice(ev("failed_partials", "auto"), "events.failed_partials", ("auto", "on", "off")),
    )

    transport_setting = get("transport", "https")
    transport = parse_str(transport_setting.value, transport_setting.source, "transport").lower()
    if transport not in TRANSPORTS:
        raise ConfigError(transport_setting.source, "transport",
                          f"expected one of {', '.join(TRANSPORTS)}, got {transport_setting.value!r}")
    if transport == "daemon" and not events.enabled:
        raise ConfigError(transport_setting.source, "transport",
                          "daemon transport goes over the events WebSocket: events must stay enabled")

    level = get("log_level", "info")
    log_level = parse_str(level.value, level.source, "log_level").strip().lower()
    log_level = LOG_LEVEL_ALIASES.get(log_level, log_level)
    if log_level not in LOG_LEVELS:
        raise ConfigError(level.source, "log_level",
                          f"expected one of debug, info, warn, warning, error, got {level.value!r}")
    listen = get("web.listen_address", DEFAULT_LISTEN_ADDRESS)
    listen_address = parse_str(listen.value, listen.source, "web.listen_address")
    split_address(listen_address, "web.listen_address", listen.source)
    web_file = get("web.config_file", None)
    web_config_file = None
    if web_file.value not in (None, ""):
        web_config_file = Path(parse_str(web_file.value, web_file.source, "web.config_file")).expanduser()

    # Fail at start, not at the first poll, when a certificate a collector needs is missing.
    needs_tls = [c for c in collectors.values() if c.enabled] + ([events] if events.enabled else [])
    if needs_tls or enabled_any:
        if chia_file is None and not _exists(ca_cert, ca_source(chia_file), "private_ssl_ca.crt"):
            raise ConfigError(str(chia_root / "config" / "config.yaml"), "",
                              "no Chia configuration here: set --chia-root or CHIA_ROOT "
                              "to the folder of a Chia installation")
        _check_readable(ca_cert, ca_source(chia_file), "private_ssl_ca.crt")
    origins = {"private_ssl_ca.crt": ca_source(chia_file)}
    for name in collectors:
        for part in ("cert", "key"):
            origins[f"collectors.{name}.{part}"] = get(f"collectors.{name}.{part}", "").source
    user_layers = (file_layer, env, flag_layer)
    warnings: list[str] = []
    first_missing: ConfigError | None = None
    for name in collectors:
        c = collectors[name]
        users = _pair_users(name, c, events, transport)
        if not users:
            continue
        # A pair that only default-on parts use, at the path config.yaml (or the default) gives:
        # a missing file means the service was never set up here (no DataLayer ever ran on this
        # host), so those parts go off with a warning. What the user asked for, a path the user
        # gave, or a file that is there but cannot be read stops the exporter.
        optional = (all(get(f"{setting}.enabled", None).source == "default" for _, setting, _ in users)
                    and not (name == "daemon" and transport == "daemon")
                    and not any(f"collectors.{name}.{part}" in layer
                                for layer in user_layers for part in ("cert", "key")))
        hint = f" (or turn the collector off: --no-collector.{name})" if not c.required and c.enabled else ""
        for part, what in (("cert", "certificate"), ("key", "key")):
            path, key = getattr(c, part), f"collectors.{name}.{part}"
            error = _read_error(path)
            if error is None:
                continue
            reason = f"cannot read {path}: {error.strerror or error}"
            if not (optional and isinstance(error, FileNotFoundError)):
                raise ConfigError(origins[key], key, reason + hint)
            first_missing = first_missing or ConfigError(
                origins[key], key, f"{reason}, and no collector is left to run without it")
            origin = "the default path" if origins[key] == "default" else origins[key]
            warnings.append(f"{' and '.join(label for label, _, _ in users)} off: its {what} {path} "
                            f"does not exist (from {origin}); "
                            f"{' or '.join(flag for _, _, flag in users)} to require it")
            if c.enabled:
                collectors[name] = replace(c, enabled=False)
            if name == "daemon":
                events = replace(events, enabled=False)
            break
    if first_missing is not None and not events.enabled and not any(c.enabled for c in collectors.values()):
        raise first_missing

    sources = tuple(s for s in (str(chia_file) if chia_file else None,
                                str(config_file.value) if config_file else None) if s)
    return Config(
        chia_root=chia_root, ca_cert=ca_cert, listen_address=listen_address,
        web_config_file=web_config_file, log_level=log_level, transport=transport,
        collectors=collectors, events=events,
        chia_config_file=chia_file, sources=sources,
        full_node_database=full_node_database(chia_root, chia) if chia_file else None,
        daemon_max_message_size=daemon_max_message_size(chia),
        origins=origins, warnings=tuple(warnings),
    )


def tls_pairs(config: Config) -> list[tuple[str, CollectorConfig | EventsConfig]]:
    """The (dotted prefix, settings) whose certificate and key the running exporter will load."""
    pairs: list[tuple[str, CollectorConfig | EventsConfig]] = []
    for name, c in config.collectors.items():
        if c.enabled and (config.transport == "https" or name == "daemon"):
            pairs.append((f"collectors.{name}", c))
    if config.events.enabled and not config.collectors["daemon"].enabled:
        pairs.append(("collectors.daemon", config.events))  # the events client uses the daemon's pair
    return pairs


def verify_tls(config: Config) -> None:
    """Build every TLS context the exporter will use, as its RPC clients will
    (``exporter.rpc.tls_context``), so that a garbage, encrypted or mismatched certificate or key
    is a one-line ConfigError at start (and with --check-config) naming the file and the setting
    it came from. Only paths and OpenSSL's reason are ever shown, never a file's content."""
    from exporter.rpc import tls_context

    origins = config.origins
    ca_origin = origins.get("private_ssl_ca.crt", "default")
    checked_ca = False
    seen: set[tuple[Path, Path]] = set()
    for prefix, c in tls_pairs(config):
        if (c.cert, c.key) in seen:
            continue
        seen.add((c.cert, c.key))
        if not checked_ca:
            check_ca_file(config.ca_cert, ca_origin, "private_ssl_ca.crt")
            checked_ca = True
        cert_key, key_key = f"{prefix}.cert", f"{prefix}.key"
        check_cert_and_key(c.cert, origins.get(cert_key, "default"), cert_key,
                           c.key, origins.get(key_key, "default"), key_key)
        try:
            tls_context(config.ca_cert, c.cert, c.key)
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(origins.get(cert_key, "default"), cert_key,
                              f"cannot build the TLS context from {c.cert} and {c.key}: {_ssl_reason(e)}") from None


class _EncryptedKey(Exception):
    pass


def _no_password() -> bytes:
    raise _EncryptedKey  # never let OpenSSL prompt on the terminal for a passphrase


def _ssl_reason(e: BaseException) -> str:
    if isinstance(e, OSError) and not isinstance(e, ssl.SSLError):
        return e.strerror or str(e)
    reason = getattr(e, "reason", None)
    return {"NO_CERTIFICATE_OR_CRL_FOUND": "no PEM certificate in it",
            "KEY_VALUES_MISMATCH": "the key does not match the certificate",
            None: "not in PEM format"}.get(reason, str(reason).replace("_", " ").lower())


def check_ca_file(ca: Path, source: str, key: str) -> None:
    """A file of trusted certificates (PEM) that OpenSSL can load."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(source, key, f"cannot load the CA certificate {ca}: {_ssl_reason(e)}") from None


def check_cert_and_key(cert: Path, cert_source: str, cert_key: str,
                       key: Path, key_source: str, key_key: str) -> None:
    """Load a certificate and its private key, blaming the right one of the two when it fails."""
    try:  # the certificate alone first: load_cert_chain does not say which file it could not read
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(cert))
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(cert_source, cert_key, f"cannot load the certificate {cert}: {_ssl_reason(e)}") from None
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(str(cert), str(key), password=_no_password)
    except _EncryptedKey:
        raise ConfigError(key_source, key_key,
                          f"the private key {key} is encrypted with a passphrase, which is not supported") from None
    except ssl.SSLError as e:
        if getattr(e, "reason", None) == "KEY_VALUES_MISMATCH":
            raise ConfigError(key_source, key_key,
                              f"the private key {key} does not match the certificate {cert}") from None
        if getattr(e, "reason", None) in (None, "PEM_LIB") or "PEM" in str(e):
            raise ConfigError(key_source, key_key,
                              f"cannot load the private key {key}: not a PEM private key") from None
        raise ConfigError(cert_source, cert_key, f"cannot load {cert} with {key}: {_ssl_reason(e)}") from None
    except OSError as e:
        raise ConfigError(key_source, key_key, f"cannot read {key}: {_ssl_reason(e)}") from None


def ca_source(chia_file: Path | None) -> str:
    return f"{chia_file} (private_ssl_ca.crt)" if chia_file else "default"


def _collector(name: str, spec: ServiceSpec, chia_root: Path, get) -> CollectorConfig:
    def val(key: str, default: Any) -> tuple[Any, str]:
        s = get(f"collectors.{name}.{key}", default)
        return s.value, s.source

    k = f"collectors.{name}"
    enabled_value, enabled_source = val("enabled", spec.default_enabled)
    enabled = parse_bool(enabled_value, enabled_source, f"{k}.enabled")
    host = parse_str(*val("host", "localhost"), f"{k}.host")
    port = parse_int(*val("port", spec.default_port), f"{k}.port", 1, 65535)
    interval = parse_duration(*val("interval", spec.default_interval), f"{k}.interval")
    # Unless set, the timeout shrinks with a short interval so that polls never overlap.
    timeout = parse_duration(*val("timeout", min(spec.default_timeout, interval)), f"{k}.timeout")
    stale_value, stale_source = val("stale_after", None)
    stale_after = (parse_duration(stale_value, stale_source, f"{k}.stale_after")
                   if stale_value is not None else 3 * interval)
    default_dir = f"config/ssl/{spec.cert_dir}/private_{spec.cert_dir}"
    cert = Path(parse_str(*val("cert", str(chia_root / f"{default_dir}.crt")), f"{k}.cert")).expanduser()
    key = Path(parse_str(*val("key", str(chia_root / f"{default_dir}.key")), f"{k}.key")).expanduser()
    max_bytes = parse_int(*val("max_response_bytes", spec.default_max_response_bytes),
                          f"{k}.max_response_bytes", 1024)
    if timeout > interval:
        timeout_source = get(f"{k}.timeout", None).source
        raise ConfigError(timeout_source, f"{k}.timeout",
                          f"{timeout:g}s is longer than the interval {interval:g}s")
    # Successes are up to interval + timeout apart (a quick poll, then a slow one): anything shorter
    # would drop the collector's data out of /metrics between two good polls.
    if stale_after < interval + timeout:
        raise ConfigError(stale_source, f"{k}.stale_after",
                          f"{stale_after:g}s is shorter than the interval plus the timeout "
                          f"({interval:g}s + {timeout:g}s): the data would leave /metrics between polls")
    return CollectorConfig(name, enabled, host, port, interval, timeout, stale_after, cert, key, max_bytes,
                           required=enabled and enabled_source != "default")


def _choice(setting: Setting, key: str, choices: tuple[str, ...]) -> str:
    value = setting.value
    if isinstance(value, bool):  # YAML reads on/off as booleans
        value = "on" if value else "off"
    value = str(value).strip().lower()
    if value not in choices:
        raise ConfigError(setting.source, key, f"expected one of {', '.join(choices)}, got {setting.value!r}")
    return value


def _pair_users(name: str, c: CollectorConfig, events: EventsConfig,
                transport: str) -> list[tuple[str, str, str]]:
    """What will load collector NAME's certificate and key: (label, settings prefix, the flag that
    turns it on) for each. Through the daemon only the daemon's pair is used; the event stream
    uses the daemon's pair too."""
    users = []
    if c.enabled and (transport == "https" or name == "daemon"):
        users.append((f"collector {name}", f"collectors.{name}", f"--collector.{name}"))
    if name == "daemon" and events.enabled:
        users.append(("the event stream", "events", "--events"))
    return users


def _read_error(path: Path) -> OSError | None:
    try:
        with open(path, "rb"):
            return None
    except OSError as e:
        return e


def _check_readable(path: Path, source: str, key: str) -> None:
    error = _read_error(path)
    if error is not None:
        raise ConfigError(source, key, f"cannot read {path}: {error.strerror or error}")


def _exists(path: Path, source: str, key: str) -> bool:
    """Whether PATH exists. "Permission denied" on a folder on the way is neither a traceback
    (as from Path.exists()) nor "absent" (as from os.path.exists()): it is a ConfigError."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as e:
        raise ConfigError(source, key, f"cannot read {path}: {e.strerror or e}") from None
    return True


def _pick(key: str, *layers: Layer) -> Setting | None:
    for layer in layers:
        if key in layer:
            return layer[key]
    return None


def flag_name(dotted: str) -> str:
    """The command-line flag of a dotted key: collectors.farmer.port -> collector.farmer.port."""
    if dotted.startswith("collectors."):
        return "collector." + dotted[len("collectors."):]
    return {"web.listen_address": "web.listen-address", "web.config_file": "web.config.file",
            "log_level": "log.level", "chia_root": "chia-root", "transport": "transport"}.get(dotted, dotted)


def with_collectors(config: Config, **changes: CollectorConfig) -> Config:
    """A copy with some collectors replaced (tests and the demo use this)."""
    return replace(config, collectors={**config.collectors, **changes})
