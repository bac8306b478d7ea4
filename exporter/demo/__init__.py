"""``chia-prometheus-exporter demo``: a simulated Chia farm, the exporter on it, and Prometheus.

For trying the exporter with no Chia node of your own. The first run installs chia-blockchain
(pinned, about 65 MB to download) into a private virtualenv and creates a simulated chain with a
few small plots (about 2.5 minutes); later runs reuse both and start in about 20 s. Ctrl-C stops
everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable

CHIA_VERSION = "2.7.5"
# A throwaway BIP39 test key (all-zero entropy): a simulator key that never holds real funds.
TEST_MNEMONIC = " ".join(["abandon"] * 23 + ["art"])
# The simulator's 21M TXCH prefarm goes to this unspendable address: in the demo wallet it would
# overflow get_farmed_amount (uint64). Blocks farmed afterwards pay the wallet.
PREFARM_ADDRESS = "txch1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq8mkeh3"
BLOCK_EVERY = 30.0  # seconds between demo blocks, so that the chain and the wallet move
SIGNAGE_EVERY = 5.0
# The source checkout this package runs from, when it does (pip install -e, or python -m exporter
# in the checkout): the Prometheus rules and Grafana dashboards live there, not in the package.
CHECKOUT = Path(__file__).resolve().parents[2]
FIRST_RUN = ("first run: downloads chia-blockchain {version} and its dependencies (about 65 MB, 250 MB installed), "
             "makes 6 small plots and a simulated chain: about 2.5 minutes on a 2-core machine. "
             "Later runs reuse all of it and start in about 20 s.")


class DemoError(Exception):
    """A failure the user can act on, said in one line."""


def say(message: str) -> None:
    Progress.clear_line()
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def default_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "chia-prometheus-exporter" / "demo"


class Progress:
    """Shows that a slow step moves: what it does, the seconds so far and a detail (packages
    fetched, plots made). On a terminal one line rewrites itself every second; in a log a line
    every 15 s."""

    tty = sys.stdout.isatty()
    _shown = False

    def __init__(self, what: str, detail: Callable[[], str] | None = None) -> None:
        self.what, self.detail = what, detail
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._tick, daemon=True)
        self.started = time.monotonic()

    def __enter__(self) -> Progress:
        say(f"{self.what} ...")
        self.thread.start()
        return self

    def __exit__(self, kind, *_) -> None:
        self.done.set()
        self.thread.join()
        if kind is None:
            say(f"{self.what}: done in {time.monotonic() - self.started:.0f} s")

    def line(self) -> str:
        try:
            detail = self.detail() if self.detail else ""
        except OSError:
            detail = ""
        return f"  ... {self.what}: {time.monotonic() - self.started:.0f} s" + (f", {detail}" if detail else "")

    def _tick(self) -> None:
        every = 1.0 if self.tty else 15.0
        while not self.done.wait(every):
            if self.tty:
                width = shutil.get_terminal_size().columns - 1
                print("\r\x1b[K" + self.line()[:width], end="", flush=True)
                Progress._shown = True
            else:
                print(self.line(), flush=True)

    @classmethod
    def clear_line(cls) -> None:
        if cls._shown:
            print("\r\x1b[K", end="")
            cls._shown = False


def pip_detail(log: Path) -> Callable[[], str]:
    def detail() -> str:
        text = log.read_text(errors="replace") if log.exists() else ""
        fetched = text.count("\n  Downloading ") + text.count("\n  Using cached ")
        if "Installing collected packages" in text:
            return f"{fetched} packages downloaded, installing them"
        collecting = [line.split()[1] for line in text.splitlines() if line.startswith("Collecting ")]
        return f"{fetched} packages downloaded" + (f", now {collecting[-1]}" if collecting else "")
    return detail


def create_detail(log: Path, offset: int) -> Callable[[], str]:
    def detail() -> str:
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        if "Genesis block generated" in text:
            return "genesis block made, configuring the farm"
        if "generating genesis block" in text:
            return "making the genesis block"
        if "Starting Simulator" in text:
            return "plots done, starting the simulator"
        if "Generating plots" in text:
            return f"plotting ({text.count('Renamed final file')} of 3 k19 plots done, then 3 k20 v2 plots)"
        return "keys, config and certificates"
    return detail


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Terminate, and kill what does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def address_in_use(host: str, port: int) -> bool:
    """True when something listens on host:port (a socket in TIME_WAIT does not count, as for the
    servers that will bind it)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return False
    family, kind, proto, _, sockaddr = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(sockaddr)
        except OSError:
            return True
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listen_error(listen: str) -> str:
    return (f"cannot listen on {listen}: the address is in use (another exporter?). "
            f"Pass --web.listen-address 127.0.0.1:PORT with a free PORT")


class DemoFarm:
    def __init__(self, directory: Path, venv: Path) -> None:
        self.dir = directory
        self.venv = venv
        self.root = directory / "root" / "main"
        self.env = {**os.environ, "CHIA_ROOT": str(self.root), "CHIA_KEYS_ROOT": str(directory / "root" / "keys"),
                    "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.signage: subprocess.Popen | None = None
        self.waiting_for = ""
        self._installed: bool | None = None

    def chia(self, *args: str, timeout: float = 120) -> None:
        with (self.dir / "chia.log").open("a") as log:
            subprocess.run([str(self.venv / "bin" / "chia"), *args], env=self.env, check=True, stdin=subprocess.DEVNULL,
                           stdout=log, stderr=subprocess.STDOUT, timeout=timeout)

    def installed(self) -> bool:
        """chia-blockchain CHIA_VERSION is in the venv (its metadata: `chia version` takes seconds)."""
        if self._installed is None:
            self._installed = (self.venv / "bin" / "chia").exists() and any(
                self.venv.glob(f"lib/python3*/site-packages/chia_blockchain-{CHIA_VERSION}.dist-info/RECORD"))
        return self._installed

    def created(self) -> bool:
        # "created" is written last: a first run cut short starts over.
        return (self.dir / "created").exists() and (self.root / "config" / "config.yaml").exists()

    def install(self) -> None:
        if self.installed():
            return
        log = self.dir / "pip.log"
        with Progress(f"installing chia-blockchain {CHIA_VERSION} into {self.venv}", pip_detail(log)):
            made = subprocess.run([sys.executable, "-m", "venv", str(self.venv)], capture_output=True, text=True)
            if made.returncode != 0:
                raise DemoError(f"{sys.executable} -m venv failed: {made.stderr.strip().splitlines()[-1:] or ''} "
                                f"(Debian/Ubuntu: apt-get install python3-venv)")
            with log.open("w") as out:
                pip = subprocess.run([str(self.venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                                      "--progress-bar", "off", f"chia-blockchain=={CHIA_VERSION}"],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
            if pip.returncode != 0:
                tail = log.read_text(errors="replace").strip().splitlines()[-10:]
                print("\n".join(tail), flush=True)
                raise DemoError(f"pip install chia-blockchain=={CHIA_VERSION} failed: see {log}")
        self._installed = True

    def create(self) -> None:
        if self.created():
            return
        shutil.rmtree(self.dir / "root", ignore_errors=True)
        (self.dir / "created").unlink(missing_ok=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        log = self.dir / "chia.log"
        log.touch()
        with Progress("creating a simulated chain, a test key and 6 small plots", create_detail(log, log.stat().st_size)):
            self.farm_py("prepare", str(self.root), TEST_MNEMONIC, PREFARM_ADDRESS)
            # create waits for the genesis block without a time limit of its own.
            self.chia("dev", "sim", "--root-path", str(self.dir / "root"), "-n", "main", "create", "--mnemonic",
                      TEST_MNEMONIC, "--reward-address", PREFARM_ADDRESS, "--auto-farm", "false", timeout=300)
            self.chia("stop", "simulator")
            self.farm_py("configure", str(self.root))
        (self.dir / "created").touch()

    def farm_py(self, *args: str) -> None:
        with (self.dir / "chia.log").open("a") as log:
            subprocess.run([str(self.venv / "bin" / "python"), str(Path(__file__).with_name("farm.py")), *args],
                           env=self.env, check=True, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                           timeout=120)

    def config(self) -> dict:
        import yaml

        return yaml.safe_load((self.root / "config" / "config.yaml").read_text())

    def rpc(self, service: str, endpoint: str, body: dict | None = None, timeout: float = 30) -> dict:
        """The demo drives its own farm (farm_block included): this never touches a user's node."""
        ssl_dir = self.root / "config" / "ssl"
        ctx = ssl.create_default_context(cafile=str(ssl_dir / "ca" / "private_ca.crt"))
        ctx.check_hostname = False
        ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
        ctx.load_cert_chain(ssl_dir / service / f"private_{service}.crt", ssl_dir / service / f"private_{service}.key")
        port = self.config()[service]["rpc_port"]
        req = urllib.request.Request(f"https://127.0.0.1:{port}/{endpoint}", data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return json.loads(resp.read())

    def start(self) -> None:
        with Progress("starting the daemon, simulated full node, farmer, harvester and wallet",
                      lambda: f"waiting for the {self.waiting_for}" if self.waiting_for else ""):
            self.chia("start", "simulator", "farmer-only", "harvester", "wallet")
            for service in ("full_node", "farmer", "harvester", "wallet"):
                self.waiting_for = service
                deadline = time.monotonic() + 120
                while True:
                    try:
                        self.rpc(service, "healthz", timeout=5)
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise DemoError(f"the {service} did not start: see {self.root}/log/debug.log") from None
                        time.sleep(0.5)
            self.waiting_for = ""
            if self.rpc("full_node", "get_blockchain_state")["blockchain_state"]["peak"]["height"] < 5:
                self.waiting_for = "first blocks, farmed to the demo wallet"
                self.farm_block(5)
                self.waiting_for = ""
        self.signage = subprocess.Popen([str(self.venv / "bin" / "python"), str(Path(__file__).with_name("farm.py")), "signage",
                                         str(self.root), str(SIGNAGE_EVERY)], env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=(self.dir / "signage.log").open("w"), stderr=subprocess.STDOUT)

    def farm_block(self, blocks: int = 1) -> None:
        address = self.config()["simulator"]["farming_address"]
        self.rpc("full_node", "farm_block", {"address": address, "blocks": blocks, "guarantee_tx_block": True})

    def processes(self) -> list[int]:
        """This farm's processes still running (see :func:`farm_processes`)."""
        return farm_processes(self.root)

    def stop(self) -> None:
        """Every step runs, whatever the one before did: the signage sender, `chia stop -d all` (the
        services and the daemon), then whatever of this farm still runs is terminated, and killed."""
        try:
            if self.signage is not None:
                stop_process(self.signage)
        finally:
            try:
                if (self.root / "config" / "config.yaml").exists():
                    self.chia("stop", "-d", "all", timeout=60)
            except (subprocess.SubprocessError, OSError) as e:
                say(f"chia stop failed ({e}): ending the farm's processes")
            finally:
                self.end_leftovers()

    def end_leftovers(self) -> None:
        left = self.processes()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not left:
                return
            say(f"{'terminating' if sig == signal.SIGTERM else 'killing'} what is left of the farm: pids {left}")
            for pid in left:
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + 10
            while left and time.monotonic() < deadline:
                time.sleep(0.2)
                left = self.processes()


def find_rules(rules: Path | None) -> Path | None:
    if rules is not None:
        if not any(rules.glob("*.yml")):
            raise DemoError(f"--rules {rules}: no *.yml rule files there")
        return rules
    for candidate in (CHECKOUT / "prometheus" / "rules", Path.cwd() / "prometheus" / "rules"):
        if any(candidate.glob("*.yml")):
            return candidate
    return None


class Prometheus:
    """The demo's own Prometheus: the shipped rules, a scrape config for the demo exporter, a port of
    its own (another when the asked one is taken: apt-get's prometheus holds 9090)."""

    def __init__(self, directory: Path, exporter_address: str, port: int, rules: Path | None) -> None:
        self.work = directory / "prometheus"
        self.log = self.work / "prometheus.log"
        self.exporter_address, self.port, self.rules = exporter_address, port, rules
        self.proc: subprocess.Popen | None = None
        self.rule_files: list[Path] = sorted(rules.glob("*.yml")) if rules else []
        self.loaded = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> bool:
        binary = shutil.which("prometheus")
        if binary is None:
            say("Prometheus is not installed: running without it (Debian/Ubuntu: apt-get install prometheus)")
            return False
        if address_in_use("127.0.0.1", self.port):
            asked, self.port = self.port, free_port()
            say(f"port {asked} is taken (a system Prometheus?): the demo's Prometheus listens on {self.port} instead")
        if not self.rule_files:
            say("the Prometheus rules are not here: they ship in the source checkout (prometheus/rules), not in the "
                "installed package. Run the demo from a checkout (bash scripts/start.sh) or pass --rules DIR; "
                "Prometheus runs without alert and recording rules")
        self.work.mkdir(parents=True, exist_ok=True)
        config = {"global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
                  "rule_files": [str(p) for p in self.rule_files],
                  "scrape_configs": [{"job_name": "chia", "static_configs": [{"targets": [self.exporter_address],
                                                                               "labels": {"network": "simulator"}}]}]}
        (self.work / "prometheus.yml").write_text(json.dumps(config, indent=2))
        self.proc = subprocess.Popen([binary, f"--config.file={self.work / 'prometheus.yml'}",
                                      f"--storage.tsdb.path={self.work / 'data'}", "--storage.tsdb.retention.time=2d",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdin=subprocess.DEVNULL, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        return True

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=3) as resp:
            body = resp.read()
        return json.loads(body) if path.startswith("/api/") else {}

    async def wait_ready(self, stop: asyncio.Event, timeout: float = 60) -> None:
        """Until /-/ready answers and /api/v1/rules lists the rule groups of the rule files."""
        import yaml

        groups = sum(len((yaml.safe_load(p.read_text()) or {}).get("groups") or []) for p in self.rule_files)
        deadline = time.monotonic() + timeout
        problem = "it did not answer"
        while not stop.is_set():
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise DemoError(f"Prometheus exited with {self.proc.returncode} at start: {self.tail()}; its log: {self.log} "
                                f"(or run the demo with --no-prometheus)")
            try:
                await asyncio.to_thread(self.get, "/-/ready")
                loaded = (await asyncio.to_thread(self.get, "/api/v1/rules"))["data"]["groups"]
                if len(loaded) >= groups:
                    rules = sum(len(g["rules"]) for g in loaded)
                    self.loaded = f"{len(loaded)} rule groups, {rules} rules loaded"
                    return
                problem = f"{len(loaded)} of {groups} rule groups loaded"
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise DemoError(f"Prometheus on {self.url} is not ready after {timeout:.0f} s ({problem}); its log: {self.log} "
                                f"(or run the demo with --no-prometheus)")
            await asyncio.sleep(0.5)

    def tail(self) -> str:
        lines = self.log.read_text(errors="replace").strip().splitlines() if self.log.exists() else []
        return " | ".join(lines[-2:]) or "no output"

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)


def dashboards() -> str:
    folder = CHECKOUT / "grafana" / "dashboards"
    if folder.is_dir():
        return f"{folder}/*.json: import them into Grafana with this Prometheus as data source"
    return "grafana/dashboards/*.json in the source checkout (not in the installed package)"


async def run(farm: DemoFarm, args: argparse.Namespace, started: float, state: dict) -> None:
    from exporter.cli import serve, setup_logging
    from exporter.config import load

    config = load({"chia_root": str(farm.root), "web.listen_address": args.listen}, environ={})
    setup_logging("warning")
    host, port = config.listen_host_port
    address = f"{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{port}"
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve(config, ready=ready, stop=stop))
    listening = asyncio.create_task(ready.wait())
    await asyncio.wait({server, listening}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():  # serve() ended before it listened: the port is taken (or not ours)
        listening.cancel()
        try:
            server.result()
        except OSError:
            raise DemoError(listen_error(args.listen)) from None
        raise DemoError("the exporter stopped before it listened")
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):  # after serve() installed its own: ours win
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        prometheus = None
        if not args.no_prometheus:
            candidate = Prometheus(farm.dir, address, args.prometheus_port, args.rules_dir)
            state["prometheus"] = candidate
            if candidate.start():
                await candidate.wait_ready(stop)
                prometheus = candidate
        if stop.is_set():
            return
        say(f"ready after {time.monotonic() - started:.0f} s. Open:")
        print(f"  metrics     http://{address}/metrics")
        if prometheus is not None:
            rules = (f"{prometheus.loaded}: {prometheus.url}/alerts, {prometheus.url}/rules" if prometheus.rule_files
                     else "without the shipped rules: they are in the source checkout, prometheus/rules")
            print(f"  Prometheus  {prometheus.url}/graph   ({rules})")
        print("  try         rate(chia_farmer_signage_points_total[1m]) * 60       signage points a minute\n"
              "              chia_farmer_harvester_lookup_duration_seconds_count   lookups by the harvester\n"
              "              chia_full_node_peak_height                            grows by one every 30 s\n"
              "              chia_wallet_confirmed_balance_mojos / 1e12            the demo wallet, in XCH\n"
              f"  Grafana     dashboards in {dashboards()}; or, with Docker,\n"
              "              docker compose -f docker-compose.demo.yml up   (Grafana at http://localhost:3000)\n"
              "  Ctrl-C stops everything (about 10 s).", flush=True)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), BLOCK_EVERY)
            except asyncio.TimeoutError:
                await asyncio.to_thread(farm.farm_block)
    finally:
        stop.set()
        try:
            await server
        finally:
            if state.get("prometheus") is not None:
                state.pop("prometheus").stop()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str]) -> int:
    from exporter.config import ConfigError, split_address

    p = argparse.ArgumentParser(prog="chia-prometheus-exporter demo", description=__doc__)
    p.add_argument("--web.listen-address", dest="listen", default="127.0.0.1:9914")
    p.add_argument("--dir", type=Path, default=default_dir(), help="where the demo keeps its chain (reused)")
    p.add_argument("--chia-venv", type=Path, default=os.environ.get("CHIA_DEMO_VENV"),
                   help=f"an existing virtualenv with chia-blockchain {CHIA_VERSION} (default: one under --dir)")
    p.add_argument("--prometheus-port", type=int, default=9090, help="another free one is used when it is taken")
    p.add_argument("--rules", dest="rules_dir", type=Path, default=None,
                   help="Prometheus rule files (default: prometheus/rules of the source checkout)")
    p.add_argument("--no-prometheus", action="store_true")
    args = p.parse_args(argv)
    try:
        host, port = split_address(args.listen, "web.listen_address", "flag --web.listen-address")
        if not args.no_prometheus:
            args.rules_dir = find_rules(args.rules_dir)
    except (ConfigError, DemoError) as e:
        say(f"failed: {e}")
        return 2
    if address_in_use(host, port):  # before anything starts
        say(f"failed: {listen_error(args.listen)}")
        return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    lock = (args.dir / ".lock").open("w")
    try:
        import fcntl

        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:
        pass
    except OSError:
        say(f"failed: another demo runs on {args.dir}: stop it first, or pass another --dir")
        return 1
    # Stop as on Ctrl-C (the finally below runs), also where the shell started the demo with SIGINT
    # ignored (a background job); a SIGHUP ignored on purpose (nohup) stays ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    if signal.getsignal(signal.SIGHUP) != signal.SIG_IGN:
        signal.signal(signal.SIGHUP, _interrupt)
    farm = DemoFarm(args.dir.resolve(), (args.chia_venv or args.dir / "venv").resolve())
    state: dict = {}
    started = time.monotonic()
    code = 0
    try:
        if not farm.installed() or not farm.created():
            say(FIRST_RUN.format(version=CHIA_VERSION))
        farm.install()
        farm.create()
        farm.start()
        say(f"the farm is up after {time.monotonic() - started:.0f} s; starting the exporter")
        asyncio.run(run(farm, args, started, state))
    except KeyboardInterrupt:
        pass
    except (DemoError, ConfigError) as e:
        say(f"failed: {e}")
        code = 1
    except (subprocess.SubprocessError, RuntimeError, OSError) as e:
        say(f"failed: {e} (the Chia side logs to {farm.dir / 'chia.log'})")
        code = 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        say("stopping everything the demo started (about 10 s)")
        try:
            if state.get("prometheus") is not None:
                state.pop("prometheus").stop()
        finally:
            farm.stop()
        say("stopped")
    return code


def farm_processes(root: Path) -> list[int]:
    """The processes of the farm in ``root`` that still run, this one aside. The daemon and every
    service hold a lock file in its run/ folder (their process title overwrites their
    environment); the signage sender and chia commands have its CHIA_ROOT in their environment and
    chia or farm.py on their command line (a shell that exported CHIA_ROOT is not the farm's).
    Without /proc (macOS): the pid files."""
    if not Path("/proc/self/fd").exists():
        alive = []
        for pid in [int(p) for f in (root / "run").glob("*.pid") for p in f.read_text().split()]:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except OSError:
                pass
        return alive
    run, mine, pids = f"{root / 'run'}{os.sep}", f"CHIA_ROOT={root}".encode(), []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            ours = mine in (proc / "environ").read_bytes().split(b"\0") and any(
                b"chia" in arg or arg.endswith(b"farm.py") for arg in (proc / "cmdline").read_bytes().split(b"\0"))
            if ours or any(os.readlink(fd).startswith(run) for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids
