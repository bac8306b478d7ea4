"""The demo as a user runs it: a simulated farm comes up with the exporter and Prometheus (the
shipped rules loaded) on it, its metrics move, a second run reuses the farm and comes up fast, and
Ctrl-C (SIGINT to the whole process group, as a terminal sends it) leaves no process or listening
port behind. A taken exporter port fails at once. Uses the Chia virtualenv the live tests install;
the farm lives in CHIA_DEMO_TEST_DIR (default: a folder under the system temp dir, reused between
runs, so that only a fresh machine pays for the chain creation, about 45 s)."""

from __future__ import annotations

import json
import os
import re
import shutil
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

from exporter.demo import farm_processes

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = Path(os.environ.get("CHIA_DEMO_TEST_DIR") or Path(tempfile.gettempdir()) / "chia-prometheus-exporter-demo-test")
RULE_GROUPS = sum(len(yaml.safe_load(p.read_text())["groups"]) for p in (REPO / "prometheus" / "rules").glob("*.yml"))
# Where Prometheus is installed the demo must start it (CI installs it: scripts/test.sh).
WITH_PROMETHEUS = bool(shutil.which("prometheus") or os.environ.get("CI"))


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


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def chia_venv(request) -> Path:
    """The Chia virtualenv of the live tests (CHIA_VENV, default .chia-venv) when it has chia-blockchain
    2.7.5; otherwise the live tests' stack installs it there (once per run)."""
    venv = Path(os.environ.get("CHIA_VENV") or REPO / ".chia-venv")
    chia = venv / "bin" / "chia"
    if chia.exists() and subprocess.run([str(chia), "version"], capture_output=True, text=True).stdout.strip() == "2.7.5":
        return venv
    return Path(request.getfixturevalue("chia_stack").env["CHIA_VENV"])


class Demo:
    """`python -m exporter demo` in a session of its own, as from a terminal."""

    runs = 0

    def __init__(self, chia_venv: Path, *args: str) -> None:
        Demo.runs += 1
        self.port = free_port()
        self.log = DEMO_DIR.parent / f"{DEMO_DIR.name}-{Demo.runs}.log"
        DEMO_DIR.mkdir(parents=True, exist_ok=True)
        self.chia_venv = chia_venv
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "exporter", "demo", "--dir", str(DEMO_DIR), "--chia-venv",
                                      str(chia_venv), "--web.listen-address", f"127.0.0.1:{self.port}", *args],
                                     env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=REPO,
                                     start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.pids: list[int] = []

    def output(self) -> str:
        return self.log.read_text()

    def wait_ready(self, timeout: float) -> float:
        """Seconds from the start until the demo printed its URLs."""
        deadline = time.monotonic() + timeout
        while "] ready after" not in self.output():
            assert self.proc.poll() is None, f"the demo exited with {self.proc.returncode}:\n{self.output()}"
            assert time.monotonic() < deadline, f"not ready after {timeout} s:\n{self.output()}"
            time.sleep(0.5)
        took = time.monotonic() - self.started
        self.pids = [int(p) for f in (DEMO_DIR / "root" / "main" / "run").glob("*.pid") for p in f.read_text().split()]
        running = farm_processes(DEMO_DIR / "root" / "main")
        assert len(running) >= 6, f"the daemon, 4 services and the signage sender: {running}"
        self.pids += running
        return took

    def wait_metrics(self, predicate, timeout: float = 60) -> str:
        deadline, text = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            try:
                text = get(self.url)
                if predicate(text):
                    return text
            except OSError:
                pass
            time.sleep(1)
        raise AssertionError(f"/metrics never matched in {timeout} s:\n{text[-3000:]}\n{self.output()}")

    def prometheus(self) -> str:
        found = re.search(r"Prometheus  (http://127\.0\.0\.1:\d+)/graph", self.output())
        assert found, f"the demo started no Prometheus although it is installed:\n{self.output()}"
        return found.group(1)

    def ctrl_c(self, timeout: float = 90) -> tuple[int, float]:
        started = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def cleanup(self) -> None:
        """Only when a test failed half-way: the demo and its farm go, whatever state they are in."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        root = DEMO_DIR / "root" / "main"
        if farm_processes(root):
            subprocess.run([str(self.chia_venv / "bin" / "chia"), "stop", "-d", "all"], capture_output=True, timeout=90,
                           env={**os.environ, "CHIA_ROOT": str(root), "CHIA_KEYS_ROOT": str(DEMO_DIR / "root" / "keys")})
            for pid in farm_processes(root):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def assert_nothing_left(self, *ports: int) -> None:
        time.sleep(1)
        assert not [p for p in self.pids if alive(p)], f"left running: {[p for p in self.pids if alive(p)]}"
        assert not farm_processes(DEMO_DIR / "root" / "main"), "a process of the demo farm is still running"
        out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        assert str(DEMO_DIR) not in out, "a process of the demo (Prometheus, the signage sender) is still running"
        # The farm's own ports were picked free (never Chia's defaults, which a real farm holds) and are free again.
        c = yaml.safe_load((DEMO_DIR / "root" / "main" / "config" / "config.yaml").read_text())
        chia_ports = [c["daemon_port"], c["full_node"]["port"], c["farmer"]["port"],
                      *(c[s]["rpc_port"] for s in ("full_node", "farmer", "harvester", "wallet"))]
        assert not set(chia_ports) & {55400, 8444, 8447, 8555, 8559, 8560, 9256}, chia_ports
        busy = [p for p in (self.port, *ports, *chia_ports) if not port_free(p)]
        assert not busy, f"still listening: {busy}"


def check_prometheus(url: str) -> None:
    """Up, the shipped rules loaded, and scraping the demo exporter."""
    groups = json.loads(get(f"{url}/api/v1/rules"))["data"]["groups"]
    assert len(groups) == RULE_GROUPS and all(g["rules"] for g in groups), groups
    deadline = time.monotonic() + 30
    while True:
        up = json.loads(get(f"{url}/api/v1/query?query=up%7Bjob%3D%22chia%22%7D"))["data"]["result"]
        if up and up[0]["value"][1] == "1":
            return
        assert time.monotonic() < deadline, f"Prometheus does not scrape the demo exporter: {up}"
        time.sleep(1)


def test_demo_comes_up_moves_and_stops_clean(chia_venv, record_property):
    prom_port = free_port()
    demo = Demo(chia_venv, "--prometheus-port", str(prom_port))
    try:
        # A fresh machine creates the chain first (about 45 s on 2 cores); a reused folder takes about 20 s.
        record_property("demo_ready_seconds", round(demo.wait_ready(timeout=300), 1))
        first = demo.wait_metrics(lambda t: value(t, "chia_farmer_signage_points_total") >= 1
                                  and value(t, "chia_full_node_peak_height") >= 5)
        for collector in ("full_node", "farmer", "harvester", "wallet", "daemon"):
            assert f'chia_exporter_collector_success{{collector="{collector}"}} 1.0' in first
        if WITH_PROMETHEUS:
            check_prometheus(demo.prometheus())
        # Metrics move: a signage point every 5 s, a block every 30 s.
        demo.wait_metrics(lambda t: value(t, "chia_full_node_peak_height") > value(first, "chia_full_node_peak_height")
                          and value(t, "chia_farmer_signage_points_total")
                          >= value(first, "chia_farmer_signage_points_total") + 2, timeout=60)
        code, took = demo.ctrl_c()
        record_property("demo_stop_seconds", round(took, 1))
        assert code == 0, demo.output()
        demo.assert_nothing_left(prom_port)
    finally:
        demo.cleanup()


def test_second_run_reuses_the_farm_and_starts_fast(chia_venv, record_property):
    if not (DEMO_DIR / "created").exists():  # run alone: the first run makes the farm
        first = Demo(chia_venv, "--no-prometheus")
        try:
            first.wait_ready(timeout=300)
            assert first.ctrl_c()[0] == 0, first.output()
        finally:
            first.cleanup()
    # The asked Prometheus port is taken (as apt-get's prometheus holds 9090): the demo picks another.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        demo = Demo(chia_venv, "--prometheus-port", str(taken.getsockname()[1]))
        try:
            ready = demo.wait_ready(timeout=120)
            record_property("demo_second_run_ready_seconds", round(ready, 1))
            print(f"second demo run: ready after {ready:.1f} s")
            assert ready < 60, f"the second run took {ready:.0f} s:\n{demo.output()}"
            assert "first run" not in demo.output() and "creating a simulated chain" not in demo.output()
            text = demo.wait_metrics(lambda t: 'chia_exporter_collector_success{collector="farmer"} 1.0' in t)
            assert value(text, "chia_full_node_peak_height") >= 5  # the chain of the first run
            prom_port = 0
            if WITH_PROMETHEUS:
                url = demo.prometheus()
                prom_port = int(url.rsplit(":", 1)[1])
                assert prom_port != taken.getsockname()[1]
                assert "is taken" in demo.output()
                check_prometheus(url)
            code, took = demo.ctrl_c()
            record_property("demo_second_run_stop_seconds", round(took, 1))
            assert code == 0, demo.output()
            demo.assert_nothing_left(*([prom_port] if prom_port else []))
        finally:
            demo.cleanup()


def test_taken_exporter_port_fails_at_once(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA")}
        proc = subprocess.run([sys.executable, "-m", "exporter", "demo", "--dir", str(tmp_path / "demo"),
                               "--web.listen-address", f"127.0.0.1:{port}"], env=env, capture_output=True, text=True,
                              cwd=REPO, timeout=30)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stdout and "--web.listen-address" in proc.stdout, proc.stdout
    assert not (tmp_path / "demo").exists(), "nothing is installed or started before the port is checked"
