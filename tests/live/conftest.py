"""The real Chia 2.7.5 stack (../shared/chia-sim), started once per test run.

``CHIA_SIM_DIR`` picks its folder (default: a folder under the system temp dir, reused between
runs so that a second run restarts in ~13 s instead of building a chain in ~80 s). The Chia
virtualenv goes to ``CHIA_VENV`` (default ``.chia-venv`` in the repository). Where the stack cannot
start (no ../shared beside the repository) the live tests are skipped with the reason; under CI
(``CI`` set) that is a failure instead. ``CHIA_SIM_KEEP=1`` leaves the stack running afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SIM = REPO.parent / "shared" / "chia-sim"
# Chia's NodeType numbers, as get_connections reports them.
FULL_NODE, HARVESTER, FARMER, WALLET = 1, 2, 3, 6


@dataclass
class ChiaStack:
    dir: Path
    env: dict[str, str]  # what start.sh exported
    background: list = field(default_factory=list)  # Chia commands left running; waited for at stop

    @property
    def root(self) -> Path:
        return Path(self.env["CHIA_ROOT"])

    def rpc(self, service: str, endpoint: str, body: dict | None = None, timeout: float = 10) -> dict:
        """Call the real service as Chia's own tools do (any private cert, server not checked)."""
        ssl_dir = Path(self.env["CHIA_SSL_DIR"])
        ctx = ssl.create_default_context(cafile=str(ssl_dir / "ca" / "private_ca.crt"))
        ctx.check_hostname = False
        ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        ctx.load_cert_chain(ssl_dir / service / f"private_{service}.crt", ssl_dir / service / f"private_{service}.key")
        port = self.env[f"CHIA_{service.upper()}_RPC_PORT"]
        req = urllib.request.Request(f"https://127.0.0.1:{port}/{endpoint}", data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return json.loads(resp.read())

    def farm_blocks(self, n: int = 1) -> None:
        self.rpc("full_node", "farm_block", {"address": self.env["CHIA_SIM_FARMING_ADDRESS"], "blocks": n,
                                             "guarantee_tx_block": True})

    def start(self) -> None:
        self.env = start_stack(self.dir)
        self.wait_for_peers()

    def wait_for_peers(self, timeout: float = 90) -> None:
        """start.sh returns once every service answers healthz; the farmer, harvester and wallet
        dial their peers after that (a restart takes several seconds more). Tests compare the
        exporter's connection counts with the stack's, so wait until the links are up."""
        wanted = {("full_node", FARMER), ("full_node", WALLET), ("farmer", FULL_NODE), ("farmer", HARVESTER)}
        deadline = time.monotonic() + timeout
        missing = wanted
        while time.monotonic() < deadline:
            seen = set()
            for service in {s for s, _ in wanted}:
                try:
                    conns = self.rpc(service, "get_connections").get("connections", [])
                except OSError:
                    continue
                seen |= {(service, c.get("type")) for c in conns}
            missing = wanted - seen
            if not missing:
                return
            time.sleep(0.5)
        raise RuntimeError(f"the stack's peers did not connect within {timeout:.0f}s; missing (service, "
                           f"peer node type): {sorted(missing)}")

    def stop(self) -> None:
        for proc in self.background:
            proc.wait(timeout=120)
        self.background.clear()
        run_script("stop.sh", self.dir)


def run_script(name: str, directory: Path) -> str:
    env = {**os.environ, "CHIA_VENV": os.environ.get("CHIA_VENV", str(REPO / ".chia-venv"))}
    proc = subprocess.run(["bash", str(SIM / name), str(directory)], capture_output=True, text=True, env=env,
                          timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def start_stack(directory: Path) -> dict[str, str]:
    out = run_script("start.sh", directory)
    env = {}
    for line in out.splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line[len("export "):].partition("=")
            env[key] = value
    return env


@pytest.fixture(scope="session")
def chia_stack() -> ChiaStack:
    if not (SIM / "start.sh").exists():
        reason = f"the real Chia stack cannot start here: {SIM}/start.sh is missing"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    directory = Path(os.environ.get("CHIA_SIM_DIR") or Path(tempfile.gettempdir()) / "chia-prometheus-exporter-sim")
    stack = ChiaStack(directory, {})
    stack.start()
    _running.append(stack)
    yield stack
    stop_running_stack()


# The stack the session started, until it is stopped.
_running: list[ChiaStack] = []


def stop_running_stack() -> None:
    if os.environ.get("CHIA_SIM_KEEP"):  # keep it running for the next run when asked
        return
    while _running:
        _running.pop().stop()


def pytest_runtest_teardown(item, nextitem):
    """After the last live test, stop the stack then rather than at the session's end: the tests
    that follow (the fault suite times every scrape) must not share the two cores with it."""
    live = Path(__file__).parent
    if nextitem is None or live not in Path(nextitem.path).parents:
        stop_running_stack()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def console_script() -> str:
    """The installed entry point, next to the running Python (the venv the tests run in)."""
    candidate = Path(sys.executable).parent / "chia-prometheus-exporter"
    found = str(candidate) if candidate.exists() else shutil.which("chia-prometheus-exporter")
    if not found:
        pytest.fail("the console script chia-prometheus-exporter is not installed (pip install -e '.[test]')")
    return found


class RunningExporter:
    """The installed console script as a user runs it, in its own process."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([console_script(), "--web.listen-address", f"127.0.0.1:{self.port}", *args],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path: str = "/metrics", timeout: float = 5) -> str:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as resp:
            return resp.read().decode()

    def wait_for(self, predicate, timeout: float = 60, path: str = "/metrics") -> str:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"exporter exited with {self.proc.returncode}:\n{self.output()}")
            try:
                last = self.get(path)
                if predicate(last):
                    return last
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"condition not met within {timeout}s; last /metrics:\n{last[-4000:]}\nlog:\n{self.output()}")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def run_exporter(chia_stack):
    """Start the console script with nothing but CHIA_ROOT (and extra args)."""
    started: list[RunningExporter] = []

    def start(*args: str, env: dict[str, str] | None = None) -> RunningExporter:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHIA_")}
        base["CHIA_ROOT"] = chia_stack.env["CHIA_ROOT"]
        exp = RunningExporter(list(args), {**base, **(env or {})})
        started.append(exp)
        return exp

    yield start
    for exp in started:
        exp.stop()


def samples(text: str) -> dict[str, float]:
    """Series (name with labels, as printed) -> value, from exposition text."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            out[series] = float(value)
    return out


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (the README's test set-up does)")
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert proc.returncode == 0, f"promtool check metrics failed:\n{proc.stdout}{proc.stderr}"
