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

from exporter.config import ConfigError, load

CASES = Path(__file__).parent / "config_cases"


@pytest.fixture
def root(chia_root):
    chia_root.write_config({"full_node": 18555, "farmer": 18559, "harvester": 18560, "wallet": 19256, "daemon": 55411})
    return chia_root


def cfg(root, environ=None, **flags):
    return load({"chia_root": str(root.path), **flags}, environ=environ or {})


def test_discovery_from_chia_config(root):
    c = cfg(root)
    assert c.chia_config_file == root.path / "config" / "config.yaml"
    assert {n: (x.host, x.port) for n, x in c.collectors.items() if n != "crawler"} == {
        "full_node": ("127.0.0.1", 18555), "farmer": ("127.0.0.1", 18559), "harvester": ("127.0.0.1", 18560),
        "wallet": ("127.0.0.1", 19256), "daemon": ("127.0.0.1", 55411),
        "data_layer": ("127.0.0.1", 1)}  # config.yaml has a data_layer section: watched, shown once it answers
    assert c.collectors["data_layer"].enabled
    assert c.collectors["farmer"].cert == root.path / "config/ssl/farmer/private_farmer.crt"
    assert c.collectors["daemon"].key == root.path / "config/ssl/daemon/private_daemon.key"
    assert c.ca_cert == root.path / "config/ssl/ca/private_ca.crt"
    assert c.full_node_database == root.path / "db/blockchain_v2_mainnet.sqlite"  # CHALLENGE -> network
    assert (c.events.host, c.events.port) == ("127.0.0.1", 55411)
    assert c.collectors["harvester"].interval == 300 and c.collectors["full_node"].interval == 30
    assert c.collectors["full_node"].stale_after == 90
    assert not c.collectors["crawler"].enabled
    assert c.listen_address == "0.0.0.0:9914" and c.transport == "https"


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


BAD_FILES = [
    ("unknown_top_key.yml", "colectors"), ("unknown_collector.yml", "collectors.plotter"),
    ("unknown_collector_key.yml", "collectors.farmer.intervall"), ("port_not_a_number.yml", "collectors.farmer.port"),
    ("interval_not_a_duration.yml", "collectors.farmer.interval"), ("enabled_not_a_bool.yml", "collectors.farmer.enabled"),
    ("interval_negative.yml", "collectors.farmer.interval"), ("timeout_over_interval.yml", "collectors.farmer.timeout"),
    ("missing_cert.yml", "collectors.farmer.cert"), ("not_yaml.yml", ""), ("bad_listen_address.yml", "web.listen_address"),
    ("not_a_mapping.yml", ""), ("bad_log_level.yml", "log_level"), ("bad_watchdog.yml", "events.watchdog"),
    ("bad_transport.yml", "transport"), ("port_out_of_range.yml", "collectors.farmer.port"),
]


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
    return subprocess.run([sys.executable, "-m", "exporter", *args], capture_output=True, text=True, timeout=30,
                          env={**base, **(env or {})})


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("name,key", BAD_FILES)
def test_bad_file_names_file_and_key_and_exits_2(root, name, key):
    # A listen-address flag would override the file's own bad one.
    listen = [] if name == "bad_listen_address.yml" else ["--web.listen-address", "127.0.0.1:19914"]
    proc = run_cli("--chia-root", str(root.path), "--config", str(CASES / name), *listen)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(CASES / name) in lines[0] or "missing_cert" in name
    assert key in lines[0]
    assert proc.stdout == ""
    assert port_is_free(19914)  # nothing half-started


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
