"""The demo: a simulated farm comes up with the exporter on it, its metrics move, and Ctrl-C
leaves no process or listening port behind. Uses the Chia virtualenv the live tests install."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def value(text: str, series: str) -> float:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return -1.0


@pytest.fixture(scope="session")
def chia_venv(chia_stack) -> Path:
    """The live tests' stack installed chia-blockchain there (once per run)."""
    return Path(chia_stack.env["CHIA_VENV"])


def test_demo_comes_up_moves_and_stops_clean(chia_venv):
    demo_dir = Path(os.environ.get("CHIA_DEMO_TEST_DIR") or Path(tempfile.gettempdir()) / "chia-prometheus-exporter-demo-test")
    port, prom_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
    log = (demo_dir.parent / f"{demo_dir.name}.log")
    demo_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "exporter", "demo", "--dir", str(demo_dir), "--chia-venv", str(chia_venv),
                             "--web.listen-address", f"127.0.0.1:{port}", "--prometheus-port", str(prom_port)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 240
        first = ""
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            try:
                first = urllib.request.urlopen(url, timeout=5).read().decode()
                if value(first, "chia_farmer_signage_points_total") >= 1:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert value(first, "chia_farmer_signage_points_total") >= 1, log.read_text()
        for collector in ("full_node", "farmer", "harvester", "wallet", "daemon"):
            assert f'chia_exporter_collector_success{{collector="{collector}"}} 1.0' in first
        # Metrics move: signage points every 5 s, a block every 30 s.
        time.sleep(36)
        later = urllib.request.urlopen(url, timeout=5).read().decode()
        assert value(later, "chia_farmer_signage_points_total") >= value(first, "chia_farmer_signage_points_total") + 4
        assert value(later, "chia_full_node_peak_height") > value(first, "chia_full_node_peak_height")
        if "Prometheus  http" in log.read_text():  # started where Prometheus is installed
            answer = urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/query?query=up", timeout=5).read()
            assert b'"chia"' in answer
        pids = [int(p) for f in (demo_dir / "root" / "main" / "run").glob("*.pid") for p in f.read_text().split()]
        assert pids, "the Chia services' pid files"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 0, log.read_text()
    time.sleep(1)
    alive = [p for p in pids if _alive(p)]
    assert not alive, f"left running: {alive}"
    assert port_free(port) and port_free(prom_port)
    # The farm's own ports were picked free (never Chia's defaults, which a real farm holds) and are free again.
    c = yaml.safe_load((demo_dir / "root" / "main" / "config" / "config.yaml").read_text())
    chia_ports = [c["daemon_port"], c["full_node"]["port"], c["farmer"]["port"],
                  *(c[s]["rpc_port"] for s in ("full_node", "farmer", "harvester", "wallet"))]
    assert not set(chia_ports) & {55400, 8444, 8447, 8555, 8559, 8560, 9256}, chia_ports
    assert all(port_free(p) for p in chia_ports), chia_ports
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(demo_dir) not in out, "a process of the demo is still running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
