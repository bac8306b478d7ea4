"""Configuration: discovery from a CHIA_ROOT laid out like Chia's, the precedence of the five
sources, and a table of invalid inputs that each give one line naming the file and key, exit 2,
and start nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.config import ConfigError, load, verify_tls

CASES = Path(__file__).parent / "config_cases"


@pytest.fixture
def root(chia_root):
    chia_root.write_config({"full_node": 18555, "farmer": 18559, "harvester": 18560, "wallet": 19256, "daemon": 55411})
    return chia_root


def cfg(root, environ=None, **flags):
    return load({"chia_root": str(root.path), **flags}, environ=environ or {})


SEEDER = {"crawler_db_path": "crawler.db",  # as in Chia's initial-config.yaml: crawler inside seeder
          "crawler": {"start_rpc_server": True, "rpc_port": 18561, "prune_peer_days": 90,
                      "ssl": {"private_crt": "config/ssl/crawler/private_crawler.crt",
                              "private_key": "config/ssl/crawler/private_crawler.key"}}}


def test_discovery_from_chia_config(root):
    root.write_config({"full_node": 18555, "farmer": 18559, "harvester": 18560, "wallet": 19256, "daemon": 55411},
                      seeder=SEEDER)
    c = cfg(root)
    assert c.chia_config_file == root.path / "config" / "config.yaml"
    assert {n: (x.host, x.port) for n, x in c.collectors.items()} == {
        "full_node": ("127.0.0.1", 18555), "farmer": ("127.0.0.1", 18559), "harvester": ("127.0.0.1", 18560),
        "wallet": ("127.0.0.1", 19256), "daemon": ("127.0.0.1", 55411),
        # config.yaml has data_layer and seeder.crawler sections: watched, shown once they answer
        "data_layer": ("127.0.0.1", 1), "crawler": ("127.0.0.1", 18561)}
    assert c.collectors["data_layer"].enabled and c.collectors["crawler"].enabled
    assert c.collectors["crawler"].cert == root.path / "config/ssl/crawler/private_crawler.crt"
    assert c.collectors["crawler"].interval == 60
    assert c.collectors["farmer"].cert == root.path / "config/ssl/farmer/private_farmer.crt"
    assert c.collectors["daemon"].key == root.path / "config/ssl/daemon/private_daemon.key"
    assert c.ca_cert == root.path / "config/ssl/ca/private_ca.crt"
    assert c.full_node_database == root.path / "db/blockchain_v2_mainnet.sqlite"  # CHALLENGE -> network
    assert (c.events.host, c.events.port) == ("127.0.0.1", 55411)
    assert c.collectors["harvester"].interval == 60 and c.collectors["full_node"].interval == 30
    assert c.collectors["full_node"].stale_after == 90
    assert c.listen_address == "0.0.0.0:9914" and c.transport == "https"


def test_crawler_off_without_a_crawler_section(root):
    assert not cfg(root).collectors["crawler"].enabled  # root's config.yaml has no seeder section
    root.write_config({}, seeder={"crawler_db_path": "crawler.db"})  # a seeder without its crawler
    assert not cfg(root).collectors["crawler"].enabled
    assert cfg(root, **{"collectors.crawler.enabled": True}).collectors["crawler"].port == 8561


def test_absent_sections_fall_back_to_defaults(root):
    (root.path / "config" / "config.yaml").write_text("self_hostname: 127.0.0.1\nfull_node:\ndata_layer: {}\n")
    c = cfg(root)
    assert (c.collectors["full_node"].port, c.collectors["farmer"].port, c.events.port) == (8555, 8559, 55400)
    assert c.collectors["farmer"].cert == root.path / "config/ssl/farmer/private_farmer.crt"
    assert c.collectors["data_layer"].enabled and not c.collectors["crawler"].enabled
    assert c.full_node_database is None


def set_in_chia_config(root, dotted: str, value) -> Path:
    path = root.path / "config" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    path.write_text(yaml.safe_dump(data))
    return path


CHIA_CONFIG_TYPES = [
    ("self_hostname", ["x"]), ("self_hostname", ""), ("full_node.ssl.private_crt", 123),
    ("farmer.ssl.private_key", ["a"]), ("farmer.rpc_port", "8559"), ("wallet.rpc_port", "abc"),
    ("harvester.rpc_port", 70000), ("daemon_port", True), ("daemon_ssl.private_crt", 5), ("daemon_ssl", ["x"]),
    ("full_node", 5), ("seeder.crawler", "x"), ("seeder.crawler.rpc_port", 8561.5), ("private_ssl_ca.crt", 5),
    ("full_node.database_path", 5), ("data_layer.ssl", "config/ssl"), ("daemon_max_message_size", "50MB"),
    ("daemon_max_message_size", 0),
]


@pytest.mark.parametrize("dotted,value", CHIA_CONFIG_TYPES)
def test_wrong_types_in_chia_config_are_errors(root, dotted, value):
    path = set_in_chia_config(root, dotted, value)
    with pytest.raises(ConfigError) as err:
        cfg(root)
    assert (err.value.source, err.value.key) == (str(path), dotted)


def test_wrong_type_in_chia_config_exits_2_with_one_line(root):
    path = set_in_chia_config(root, "full_node.ssl.private_crt", 123)
    proc = run_cli("--chia-root", str(root.path), "--check-config")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"chia-prometheus-exporter: configuration error: {path}: full_node.ssl.private_crt: "
        "expected a path, got 123"]


def test_chia_root_from_the_environment(root):
    c = load({}, environ={"CHIA_ROOT": str(root.path)})
    assert c.collectors["farmer"].port == 18559


def test_each_source_overrides_the_one_below(root, tmp_path):
    yml = tmp_path / "exporter.yml"
    yml.write_text("collectors:\n  farmer:\n    port: 1001\n    interval: 5m\n    host: file-host\n")
    by_file = cfg(root, config=str(yml))
    assert (by_file.collectors["farmer"].port, by_file.collectors["farmer"].interval) == (1001, 300)
    env = {"CHIA_EXPORTER_COLLECTORS_FARMER_PORT": "1002", "CHIA_EXPORTER_COLLECTORS_FARMER_HOST": "env-host"}
    by_env = cfg(root, environ=env, config=str(yml))
    assert (by_env.collectors["farmer"].port, by_env.collectors["farmer"].host) == (1002, "env-host")
    assert by_env.collectors["farmer"].interval == 300  # the file still counts where env is silent
    by_flag = cfg(root, environ=env, config=str(yml), **{"collectors.farmer.port": "1003"})
    assert (by_flag.collectors["farmer"].port, by_flag.collectors["farmer"].host) == (1003, "env-host")


def test_good_file_and_collector_switches(root):
    c = cfg(root, config=str(CASES / "good.yml"))
    assert (c.collectors["full_node"].interval, c.collectors["full_node"].timeout) == (15, 5)
    assert not c.collectors["wallet"].enabled and c.log_level == "debug"
    c = cfg(root, config=str(CASES / "good.yml"), **{"collectors.wallet.enabled": True, "collectors.farmer.enabled": False})
    assert c.collectors["wallet"].enabled and not c.collectors["farmer"].enabled


def test_durations_and_timeout_follow_a_short_interval(root):
    c = cfg(root, **{"collectors.farmer.interval": "5s"})
    assert c.collectors["farmer"].timeout == 5  # shrinks with the interval unless set
    assert cfg(root, **{"collectors.farmer.interval": "250ms"}).collectors["farmer"].interval == 0.25
    assert cfg(root, **{"collectors.farmer.interval": "1.5h"}).collectors["farmer"].interval == 5400


@pytest.mark.parametrize("text,seconds", [("1m30s", 90), ("1h30m", 5400), ("2m500ms", 120.5), ("1d", 86400),
                                          ("1h0m5s", 3605), ("90", 90), ("1.5m", 90)])
def test_compound_durations(root, text, seconds):
    c = cfg(root, **{"collectors.wallet.interval": text, "events.watchdog": text})
    assert c.collectors["wallet"].interval == seconds and c.events.watchdog == seconds
    env = cfg(root, environ={"CHIA_EXPORTER_COLLECTORS_WALLET_STALE_AFTER": f"{text}"},
              **{"collectors.wallet.interval": "1s"})
    assert env.collectors["wallet"].stale_after == seconds


@pytest.mark.parametrize("text", ["30s1m", "1m1m", "1m30", "m", "5 m", "1h-5m", "ms", ".5s", "inf"])
def test_malformed_durations(root, text):
    with pytest.raises(ConfigError) as err:
        cfg(root, **{"collectors.farmer.interval": text})
    assert err.value.key == "collectors.farmer.interval" and err.value.source == "flag --collector.farmer.interval"


def test_stale_after_must_outlast_an_interval_and_a_timeout(root, tmp_path):
    c = cfg(root, **{"collectors.farmer.interval": "30s", "collectors.farmer.timeout": "10s",
                     "collectors.farmer.stale_after": "40s"})
    assert c.collectors["farmer"].stale_after == 40
    for stale in ("20s", "30s", "39s"):
        yml = tmp_path / "exporter.yml"
        yml.write_text(f"collectors:\n  farmer:\n    interval: 30s\n    timeout: 10s\n    stale_after: {stale}\n")
        with pytest.raises(ConfigError) as err:
            cfg(root, config=str(yml))
        assert (err.value.source, err.value.key) == (str(yml), "collectors.farmer.stale_after")
        assert "interval plus the timeout" in err.value.message


@pytest.mark.parametrize("where", ["yaml", "env", "flag"])
def test_log_level_warn_is_warning(root, tmp_path, where):
    yml = tmp_path / "exporter.yml"
    yml.write_text("log_level: warn\n")
    c = {"yaml": lambda: cfg(root, config=str(yml)),
         "env": lambda: cfg(root, environ={"CHIA_EXPORTER_LOG_LEVEL": "WARN"}),
         "flag": lambda: cfg(root, log_level="warn")}[where]()
    assert c.log_level == "warning"


BAD_FILES = [
    ("unknown_top_key.yml", "colectors"), ("unknown_collector.yml", "collectors.plotter"),
    ("unknown_collector_key.yml", "collectors.farmer.intervall"), ("port_not_a_number.yml", "collectors.farmer.port"),
    ("interval_not_a_duration.yml", "collectors.farmer.interval"), ("enabled_not_a_bool.yml", "collectors.farmer.enabled"),
    ("interval_negative.yml", "collectors.farmer.interval"), ("timeout_over_interval.yml", "collectors.farmer.timeout"),
    ("missing_cert.yml", "collectors.farmer.cert"), ("not_yaml.yml", ""), ("bad_listen_address.yml", "web.listen_address"),
    ("not_a_mapping.yml", ""), ("bad_log_level.yml", "log_level"), ("bad_watchdog.yml", "events.watchdog"),
    ("bad_transport.yml", "transport"), ("port_out_of_range.yml", "collectors.farmer.port"),
    ("stale_after_too_short.yml", "collectors.farmer.stale_after"), ("bad_duration_order.yml", "collectors.farmer.interval"),
    # Certificates and keys are loaded as the RPC client will, before anything starts.
    ("garbage_cert.yml", "collectors.farmer.cert"), ("mismatched_key.yml", "collectors.farmer.key"),
]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=30,
                          env={**base, **(env or {})})


@pytest.mark.parametrize("name,key", BAD_FILES)
def test_bad_file_names_file_and_key_and_exits_2(root, name, key, monkeypatch, capsys):
    import exporter.cli

    # A listen-address flag would override the file's own bad one.
    listen = [] if name == "bad_listen_address.yml" else ["--web.listen-address", "127.0.0.1:19914"]
    proc = run_cli("--chia-root", str(root.path), "--config", str(CASES / name), *listen)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(CASES / name) in lines[0]
    assert key in lines[0]
    assert proc.stdout == ""

    # Nothing half-starts: in-process, the same arguments never reach the server or open a connection.
    def started(*a, **k):
        raise AssertionError(f"{name}: something started despite the bad configuration")

    monkeypatch.setattr(exporter.cli, "serve", started)
    monkeypatch.setattr("aiohttp.ClientSession.__init__", started)
    monkeypatch.setattr(socket.socket, "connect", started)
    monkeypatch.setattr(socket.socket, "bind", started)
    assert exporter.cli.main(["--chia-root", str(root.path), "--config", str(CASES / name), *listen]) == 2
    assert capsys.readouterr().err.count("\n") == 1


BAD_ELSEWHERE = [
    ({"CHIA_EXPORTER_COLECTORS_FARMER_PORT": "1"}, [], "CHIA_EXPORTER_COLECTORS_FARMER_PORT"),
    ({"CHIA_EXPORTER_COLLECTORS_FARMER_PORT": "x"}, [], "CHIA_EXPORTER_COLLECTORS_FARMER_PORT"),
    ({}, ["--collector.farmer.interval", "never"], "--collector.farmer.interval"),
    ({}, ["--web.listen-address", "9914"], "web.listen_address"),
]


@pytest.mark.parametrize("env,args,named", BAD_ELSEWHERE)
def test_bad_environment_and_flags(root, env, args, named):
    proc = run_cli("--chia-root", str(root.path), *args, env=env)
    assert proc.returncode == 2 and named in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_check_config_loads_every_certificate_and_key(root):
    for name, key, says in (("garbage_cert.yml", "collectors.farmer.cert", "no PEM certificate"),
                            ("mismatched_key.yml", "collectors.farmer.key", "does not match the certificate")):
        proc = run_cli("--chia-root", str(root.path), "--config", str(CASES / name), "--check-config")
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        [line] = proc.stderr.strip().splitlines()
        assert str(CASES / name) in line and key in line and says in line
        assert "SECRET-LOOKING-LINE" not in line and "BEGIN" not in line  # paths only, never content
    for line in (CASES / "unrelated.key").read_text().splitlines()[2:-1]:
        assert line not in proc.stderr


def test_tls_material_from_chia_config(root, tmp_path):
    ssl_dir = root.path / "config" / "ssl"
    verify_tls(cfg(root))  # the fixture's certificates load
    (ssl_dir / "ca" / "private_ca.crt").write_text("garbage\n")
    with pytest.raises(ConfigError) as err:
        verify_tls(cfg(root))
    assert err.value.key == "private_ssl_ca.crt" and "config.yaml (private_ssl_ca.crt)" in err.value.source
    root.ca.cert_pem.write_to_path(str(ssl_dir / "ca" / "private_ca.crt"))
    (ssl_dir / "wallet" / "private_wallet.key").write_text("not a key\n")
    with pytest.raises(ConfigError) as err:
        verify_tls(cfg(root))
    assert err.value.key == "collectors.wallet.key" and err.value.source.endswith("(wallet.ssl.private_key)")
    assert "not a PEM private key" in err.value.message
    verify_tls(cfg(root, **{"collectors.wallet.enabled": False}))  # a disabled collector's files are not used
    verify_tls(cfg(root, transport="daemon"))  # nor, through the daemon, any but the daemon's


def test_encrypted_key_is_refused_without_a_prompt(root):
    from cryptography.hazmat.primitives import serialization

    key_path = root.path / "config" / "ssl" / "farmer" / "private_farmer.key"
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.BestAvailableEncryption(b"passphrase")))
    with pytest.raises(ConfigError) as err:
        verify_tls(cfg(root))
    assert err.value.key == "collectors.farmer.key" and "encrypted" in err.value.message


def test_unreadable_chia_config(root, tmp_path):
    (root.path / "config" / "config.yaml").write_text("daemon_port: [unclosed\n")
    proc = run_cli("--chia-root", str(root.path))
    assert proc.returncode == 2 and "config.yaml" in proc.stderr and "not valid YAML" in proc.stderr
    (root.path / "config" / "config.yaml").unlink()
    (root.path / "config" / "config.yaml").mkdir()  # unreadable as a file (tests may run as root)
    proc = run_cli("--chia-root", str(root.path))
    assert proc.returncode == 2 and "config.yaml" in proc.stderr


def test_no_chia_installation_says_so(tmp_path):
    proc = run_cli("--chia-root", str(tmp_path / "nothing"))
    assert proc.returncode == 2
    assert "no Chia configuration" in proc.stderr and "--chia-root" in proc.stderr


def test_check_config_ok(root):
    proc = run_cli("--chia-root", str(root.path), "--check-config")
    assert proc.returncode == 0, proc.stderr
    assert "configuration OK" in proc.stdout and "collector farmer" in proc.stdout


def test_config_error_names_source_and_key():
    e = ConfigError("/etc/x.yml", "collectors.farmer.port", "expected an integer")
    assert str(e) == "/etc/x.yml: collectors.farmer.port: expected an integer"


def test_a_collector_the_user_enabled_is_required(root):
    """Required collectors fail when refused from the start; default ones may be "absent"."""
    assert not any(c.required for c in cfg(root).collectors.values())
    c = cfg(root, **{"collectors.farmer.enabled": True, "collectors.wallet.enabled": False})
    assert c.collectors["farmer"].required and not c.collectors["wallet"].required
    assert not c.collectors["full_node"].required


def test_paths_in_the_yaml_file_expand_variables_before_they_count_as_relative(root, tmp_path, monkeypatch):
    monkeypatch.setenv("CHIA_TEST_HOME", str(root.path.parent))
    exporter_yml = tmp_path / "exporter.yml"
    exporter_yml.write_text(f"chia_root: $CHIA_TEST_HOME/{root.path.name}\n")
    c = load({"config": str(exporter_yml)}, environ={"CHIA_TEST_HOME": str(root.path.parent)})
    assert c.chia_root == root.path


# ---------------------------------------------------------------------------------------------
# One daemon address: the daemon collector's, used by the event stream and the daemon transport.

def without_in_chia_config(root, *keys: str) -> None:
    path = root.path / "config" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    for key in keys:
        data.pop(key, None)
    path.write_text(yaml.safe_dump(data))


def daemon_address_sources(root, tmp_path, highest: str) -> tuple[dict, dict, str | None]:
    """Every source of the daemon's address up to HIGHEST set, each to its own value: returns the
    flags, the environment and the exporter's YAML file to load with."""
    order = ["default", "config.yaml", "yaml", "env", "flag"]
    upto = order[:order.index(highest) + 1]
    if "config.yaml" not in upto:
        without_in_chia_config(root, "daemon_port", "self_hostname")
    flags, env, yml = {}, {}, None
    if "yaml" in upto:
        yml = tmp_path / "exporter.yml"
        yml.write_text("collectors:\n  daemon:\n    host: file-host\n    port: 1001\n")
    if "env" in upto:
        env = {"CHIA_EXPORTER_COLLECTORS_DAEMON_HOST": "env-host", "CHIA_EXPORTER_COLLECTORS_DAEMON_PORT": "1002"}
    if "flag" in upto:
        flags = {"collectors.daemon.host": "flag-host", "collectors.daemon.port": "1003"}
    return flags, env, str(yml) if yml else None


DAEMON_ADDRESS = [  # the highest source set (every lower one is set too), and the address used
    ("default", ("localhost", 55400)),
    ("config.yaml", ("127.0.0.1", 55411)),  # self_hostname, daemon_port
    ("yaml", ("file-host", 1001)),
    ("env", ("env-host", 1002)),
    ("flag", ("flag-host", 1003)),
]


@pytest.mark.parametrize("transport", ["https", "daemon"])
@pytest.mark.parametrize("highest,address", DAEMON_ADDRESS, ids=[row[0] for row in DAEMON_ADDRESS])
async def test_one_daemon_address_for_the_collector_the_events_and_the_transport(root, tmp_path, transport,
                                                                                 highest, address):
    from exporter.app import Exporter
    from exporter.daemon_ws import DaemonRpc, StreamRpc

    flags, env, yml = daemon_address_sources(root, tmp_path, highest)
    c = cfg(root, environ=env, transport=transport, **({"config": yml} if yml else {}), **flags)
    assert (c.collectors["daemon"].host, c.collectors["daemon"].port) == address
    assert (c.events.host, c.events.port) == address
    # What the running exporter connects to, not only what the settings say.
    exporter = Exporter(c, process_metrics=False)
    await exporter.start(background=False)
    try:
        assert (exporter.events.host, exporter.events.port) == address
        assert (exporter.partials.host, exporter.partials.port) == address  # the wallet_ui socket
        for runner in exporter.runners:
            rpc = exporter.rpc_for(runner.collector)
            if transport == "daemon":  # every request, the daemon collector's included, on the stream
                assert isinstance(rpc, StreamRpc) and rpc.stream is exporter.events, runner.name
            elif runner.name == "daemon":
                assert isinstance(rpc, DaemonRpc) and (rpc.host, rpc.port) == address
    finally:
        await exporter.stop()


def test_the_daemon_address_holds_with_the_daemon_collector_off(root):
    c = cfg(root, **{"collectors.daemon.enabled": False, "collectors.daemon.port": "1003"})
    assert c.events.enabled and (c.events.host, c.events.port) == ("127.0.0.1", 1003)


@pytest.mark.parametrize("source", ["flag", "env", "yaml"])
@pytest.mark.parametrize("transport", ["daemon", "https"])
async def test_an_overridden_daemon_address_is_where_requests_and_events_go(fake_farm_factory, tmp_path,
                                                                            source, transport):
    """config.yaml's daemon_port leads nowhere; the daemon is where the override says."""
    from tests.conftest import unused_port
    from tests.harness import config_for, render_once

    farm = await fake_farm_factory()
    set_in_chia_config(farm.root, "daemon_port", unused_port())
    real = str(farm.ports["daemon"])
    flags, env = {}, {}
    if source == "flag":
        flags = {"collectors.daemon.port": real}
    elif source == "env":
        env = {"CHIA_EXPORTER_COLLECTORS_DAEMON_PORT": real}
    else:
        yml = tmp_path / "exporter.yml"
        yml.write_text(f"collectors:\n  daemon:\n    port: {real}\n")
        flags = {"config": str(yml)}
    # The harvester would wait for a plot count from the events before its first list (up to 15 s
    # through the daemon): not what this test is about.
    config = load({"chia_root": str(farm.root.path), "transport": transport, "collectors.harvester.enabled": False,
                   **flags}, environ=env)
    text = await render_once(config)
    assert "chia_exporter_websocket_connected 1.0" in text
    for name in ("daemon", "farmer", "full_node"):
        assert f'chia_exporter_collector_success{{collector="{name}"}} 1.0' in text, name


@pytest.mark.parametrize("old,new", [("host", "collectors.daemon.host"), ("port", "collectors.daemon.port")])
def test_events_host_and_port_name_the_daemon_setting(root, tmp_path, old, new):
    yml = tmp_path / "exporter.yml"
    yml.write_text(f"events:\n  {old}: x\n")
    with pytest.raises(ConfigError) as err:
        cfg(root, config=str(yml))
    assert (err.value.source, err.value.key) == (str(yml), f"events.{old}") and new in err.value.message
    var = f"CHIA_EXPORTER_EVENTS_{old.upper()}"
    with pytest.raises(ConfigError) as err:
        cfg(root, environ={var: "x"})
    assert err.value.source == f"environment variable {var}" and new.upper().replace(".", "_") in err.value.message


# ---------------------------------------------------------------------------------------------
# Folders the exporter's user cannot enter: one line naming the file, exit 2, never a traceback.

@pytest.fixture
def lock_out():
    """``lock(folder)`` makes a folder the exporter cannot enter, for real: tests run as root in
    CI, whom mode 000 does not stop, so there the folder goes to another owner and the exporter
    runs as root without the two capabilities that bypass file permissions (``prefix``)."""
    import shutil

    locked: list[Path] = []
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to run the exporter without root's permission bypass"
        caps = "-dac_override,-dac_read_search"
        prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]

    def lock(folder: Path) -> None:
        if os.geteuid() == 0:
            os.chown(folder, 65534, 65534)  # nobody's
        folder.chmod(0)
        locked.append(folder)

    yield lock, prefix
    for folder in locked:
        folder.chmod(0o700)


def run_cli_as(prefix: list[str], *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
    return subprocess.run([*prefix, sys.executable, "-m", "exporter", *args], capture_output=True, text=True,
                          timeout=30, env=base)


LOCKED = [  # what is locked, what else is set up, and what the one line must say
    ("home", "the CHIA_ROOT's parent, like /home/chia of mode 0700",
     "{root}/config/config.yaml: cannot read: Permission denied"),
    ("ssl/farmer", "", "collectors.farmer.cert: cannot read {root}/config/ssl/farmer/private_farmer.crt: "
                       "Permission denied"),
    # Only on by default, but its file is there and unreadable: not "never set up here".
    ("ssl/data_layer", "", "collectors.data_layer.cert: cannot read "
                           "{root}/config/ssl/data_layer/private_data_layer.crt: Permission denied"),
    ("ssl/ca", "no config.yaml", "private_ssl_ca.crt: cannot read {root}/config/ssl/ca/private_ca.crt: "
                                 "Permission denied"),
    ("exporter file", "", "{yml}: cannot read: Permission denied"),
]


@pytest.mark.parametrize("what,setup,says", LOCKED, ids=[row[0] for row in LOCKED])
def test_a_folder_the_exporter_cannot_enter_is_one_line_and_exit_2(root, tmp_path, lock_out, what, setup, says):
    lock, prefix = lock_out
    args = ["--chia-root", str(root.path), "--check-config"]
    yml = tmp_path / "private" / "exporter.yml"
    yml.parent.mkdir()
    yml.write_text("log_level: info\n")
    if setup == "no config.yaml":
        (root.path / "config" / "config.yaml").unlink()
    if what == "home":
        lock(root.path.parent)
    elif what == "exporter file":
        args += ["--config", str(yml)]
        lock(yml.parent)
    else:
        lock(root.path / "config" / what)
    proc = run_cli_as(prefix, *args)
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("chia-prometheus-exporter: configuration error: "), line
    assert says.format(root=root.path, yml=yml) in line and "Traceback" not in proc.stderr, line


# ---------------------------------------------------------------------------------------------
# A default-on collector whose certificate was never made here goes off; one asked for stops.

DEFAULT_ON = ["full_node", "farmer", "harvester", "wallet", "data_layer", "crawler"]


def with_crawler(root) -> None:
    root.write_config({"full_node": 18555, "farmer": 18559, "harvester": 18560, "wallet": 19256, "daemon": 55411},
                      seeder=SEEDER)


@pytest.mark.parametrize("part", ["crt", "key"])
@pytest.mark.parametrize("name", DEFAULT_ON)
def test_a_default_on_collector_without_its_files_goes_off_with_one_warning(root, name, part):
    with_crawler(root)
    missing = root.path / "config" / "ssl" / name / f"private_{name}.{part}"
    missing.unlink()
    c = cfg(root)
    assert not c.collectors[name].enabled
    assert all(x.enabled for n, x in c.collectors.items() if n != name) and c.events.enabled
    [warning] = c.warnings
    assert warning.startswith(f"collector {name} off: its {'certificate' if part == 'crt' else 'key'} {missing} "
                              "does not exist")
    assert f"--collector.{name} to require it" in warning
    verify_tls(c)  # the others still load


@pytest.mark.parametrize("how", ["flag", "env", "yaml"])
@pytest.mark.parametrize("name", DEFAULT_ON)
def test_a_collector_the_user_enabled_still_needs_its_files(root, tmp_path, name, how):
    with_crawler(root)
    (root.path / "config" / "ssl" / name / f"private_{name}.crt").unlink()
    flags, env = {}, {}
    if how == "flag":
        flags = {f"collectors.{name}.enabled": True}
    elif how == "env":
        env = {f"CHIA_EXPORTER_COLLECTORS_{name.upper()}_ENABLED": "true"}
    else:
        yml = tmp_path / "exporter.yml"
        yml.write_text(f"collectors:\n  {name}: true\n")
        flags = {"config": str(yml)}
    with pytest.raises(ConfigError) as err:
        cfg(root, environ=env, **flags)
    assert err.value.key == f"collectors.{name}.cert" and "No such file" in err.value.message


def test_a_certificate_path_the_user_gave_must_exist(root, tmp_path):
    yml = tmp_path / "exporter.yml"
    yml.write_text("collectors:\n  data_layer:\n    cert: missing.crt\n")
    with pytest.raises(ConfigError) as err:
        cfg(root, config=str(yml))
    assert (err.value.source, err.value.key) == (str(yml), "collectors.data_layer.cert")


@pytest.mark.parametrize("flags,off", [
    ({}, "collector daemon and the event stream off"),
    ({"collectors.daemon.enabled": False}, "the event stream off"),
    ({"events.enabled": False}, "collector daemon off"),
])
def test_without_the_daemons_files_the_default_daemon_parts_go_off(root, flags, off):
    missing = root.path / "config" / "ssl" / "daemon" / "private_daemon.key"
    missing.unlink()
    c = cfg(root, **flags)
    assert not c.collectors["daemon"].enabled and not c.events.enabled and c.collectors["farmer"].enabled
    [warning] = c.warnings
    assert warning.startswith(f"{off}: its key {missing} does not exist"), warning


@pytest.mark.parametrize("flags", [{"transport": "daemon"}, {"events.enabled": True},
                                   {"collectors.daemon.enabled": True}], ids=["transport", "events", "collector"])
def test_the_daemons_files_are_needed_when_asked_for(root, flags):
    (root.path / "config" / "ssl" / "daemon" / "private_daemon.crt").unlink()
    with pytest.raises(ConfigError) as err:
        cfg(root, **flags)
    assert err.value.key == "collectors.daemon.cert" and "No such file" in err.value.message


def test_through_the_daemon_other_collectors_files_are_not_needed(root):
    (root.path / "config" / "ssl" / "data_layer" / "private_data_layer.crt").unlink()
    c = cfg(root, transport="daemon")
    assert c.collectors["data_layer"].enabled and c.warnings == ()


def test_with_no_certificate_at_all_nothing_is_left_and_that_is_an_error(root):
    import shutil

    for name in ("full_node", "farmer", "harvester", "wallet", "daemon", "data_layer"):
        shutil.rmtree(root.path / "config" / "ssl" / name)
    with pytest.raises(ConfigError) as err:
        cfg(root)
    assert err.value.key == "collectors.full_node.cert" and "no collector is left to run" in err.value.message


def test_check_config_on_a_host_that_never_ran_the_data_layer(root):
    """Every Chia install has a data_layer section; a host that never ran it has no certificate."""
    import shutil

    shutil.rmtree(root.path / "config" / "ssl" / "data_layer")
    proc = run_cli("--chia-root", str(root.path), "--web.listen-address", "127.0.0.1:9914", "--check-config")
    assert proc.returncode == 0, proc.stderr
    assert "collector data_layer off" in proc.stdout and "collector farmer     on" in proc.stdout
    assert proc.stderr.splitlines() == [
        f"chia-prometheus-exporter: warning: collector data_layer off: its certificate "
        f"{root.path}/config/ssl/data_layer/private_data_layer.crt does not exist "
        f"(from {root.path}/config/config.yaml (data_layer.ssl.private_crt)); --collector.data_layer to require it"]
    proc = run_cli("--chia-root", str(root.path), "--collector.data_layer", "--check-config")
    assert proc.returncode == 2 and "collectors.data_layer.cert" in proc.stderr


def test_a_user_without_a_home_gets_one_line_for_the_default_chia_root(monkeypatch):
    """``~`` with no HOME and no entry in the user database (a container run with a bare uid)."""
    import pwd

    monkeypatch.delenv("HOME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", lambda uid: (_ for _ in ()).throw(KeyError(uid)))
    with pytest.raises(ConfigError) as e:
        load({}, environ={})
    assert e.value.key == "chia_root" and "set CHIA_ROOT" in e.value.message
