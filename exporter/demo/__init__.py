"""``chia-prometheus-exporter demo``: a simulated Chia farm, the exporter on it, and Prometheus.

For trying the exporter with no Chia node of your own. The first run installs chia-blockchain
(pinned) into a private virtualenv and creates a simulated chain with a few small plots (about two
minutes); later runs reuse both and start in seconds. Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHIA_VERSION = "2.7.5"
# A throwaway BIP39 test key (all-zero entropy): a simulator key that never holds real funds.
TEST_MNEMONIC = " ".join(["abandon"] * 23 + ["art"])
# The simulator's 21M TXCH prefarm goes to this unspendable address: in the demo wallet it would
# overflow get_farmed_amount (uint64). Blocks farmed afterwards pay the wallet.
PREFARM_ADDRESS = "txch1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq8mkeh3"
BLOCK_EVERY = 30.0  # seconds between demo blocks, so that the chain and the wallet move
SIGNAGE_EVERY = 5.0


def say(message: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {message}", flush=True)


def default_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "chia-prometheus-exporter" / "demo"


class DemoFarm:
    def __init__(self, directory: Path, venv: Path) -> None:
        self.dir = directory
        self.venv = venv
        self.root = directory / "root" / "main"
        self.env = {**os.environ, "CHIA_ROOT": str(self.root), "CHIA_KEYS_ROOT": str(directory / "root" / "keys"),
                    "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}
        self.signage: subprocess.Popen | None = None

    def chia(self, *args: str, timeout: float = 120) -> None:
        with (self.dir / "chia.log").open("a") as log:
            subprocess.run([str(self.venv / "bin" / "chia"), *args], env=self.env, check=True, stdin=subprocess.DEVNULL,
                           stdout=log, stderr=subprocess.STDOUT, timeout=timeout)

    def install(self) -> None:
        chia = self.venv / "bin" / "chia"
        if chia.exists():
            version = subprocess.run([str(chia), "version"], capture_output=True, text=True).stdout.strip()
            if version == CHIA_VERSION:
                return
        say(f"first run: installing chia-blockchain {CHIA_VERSION} into {self.venv} (about a minute)")
        subprocess.run([sys.executable, "-m", "venv", str(self.venv)], check=True)
        subprocess.run([str(self.venv / "bin" / "pip"), "install", "-q", f"chia-blockchain=={CHIA_VERSION}"], check=True)

    def create(self) -> None:
        done = self.dir / "created"  # written last: a first run cut short starts over
        if done.exists() and (self.root / "config" / "config.yaml").exists():
            return
        say("first run: creating a simulated chain, keys and 6 small plots (about 30 s)")
        shutil.rmtree(self.dir / "root", ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.farm_py("prepare", str(self.root), TEST_MNEMONIC, PREFARM_ADDRESS)
        # create waits for the genesis block without a time limit of its own.
        self.chia("dev", "sim", "--root-path", str(self.dir / "root"), "-n", "main", "create", "--mnemonic", TEST_MNEMONIC,
                  "--reward-address", PREFARM_ADDRESS, "--auto-farm", "false", timeout=300)
        self.chia("stop", "simulator")
        self.farm_py("configure", str(self.root))
        done.touch()

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
        say("starting the simulated full node, farmer, harvester and wallet")
        self.chia("start", "simulator", "farmer-only", "harvester", "wallet")
        for service in ("full_node", "farmer", "harvester", "wallet"):
            deadline = time.monotonic() + 120
            while True:
                try:
                    self.rpc(service, "healthz", timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{service} did not start: see {self.root}/log/debug.log") from None
                    time.sleep(0.5)
        if self.rpc("full_node", "get_blockchain_state")["blockchain_state"]["peak"]["height"] < 5:
            say("farming the first blocks to the demo wallet")
            self.farm_block(5)
        self.signage = subprocess.Popen([str(self.venv / "bin" / "python"), str(Path(__file__).with_name("farm.py")), "signage",
                                         str(self.root), str(SIGNAGE_EVERY)], env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=(self.dir / "signage.log").open("w"), stderr=subprocess.STDOUT)

    def farm_block(self, blocks: int = 1) -> None:
        address = self.config()["simulator"]["farming_address"]
        self.rpc("full_node", "farm_block", {"address": address, "blocks": blocks, "guarantee_tx_block": True})

    def stop(self) -> None:
        if self.signage is not None and self.signage.poll() is None:
            self.signage.terminate()
            self.signage.wait(timeout=10)
        try:
            self.chia("stop", "-d", "all")
        except (subprocess.SubprocessError, OSError) as e:
            say(f"stopping the Chia services failed: {e}")


def start_prometheus(directory: Path, exporter_address: str, port: int) -> subprocess.Popen | None:
    binary = shutil.which("prometheus")
    rules = Path(__file__).resolve().parents[2] / "prometheus" / "rules"
    if binary is None:
        say("Prometheus is not installed: skipping it (Debian/Ubuntu: apt-get install prometheus)")
        return None
    work = directory / "prometheus"
    work.mkdir(parents=True, exist_ok=True)
    config = {"global": {"scrape_interval": "5s", "evaluation_interval": "5s"},
              "scrape_configs": [{"job_name": "chia", "static_configs": [{"targets": [exporter_address]}]}]}
    if rules.is_dir():
        config["rule_files"] = [str(p) for p in sorted(rules.glob("*.yml"))]
    (work / "prometheus.yml").write_text(json.dumps(config, indent=2))
    return subprocess.Popen([binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=(work / "prometheus.log").open("w"),
                            stderr=subprocess.STDOUT)


async def run(farm: DemoFarm, listen: str, prometheus_port: int, with_prometheus: bool) -> None:
    from exporter.cli import serve, setup_logging
    from exporter.config import load

    config = load({"chia_root": str(farm.root), "web.listen_address": listen}, environ={})
    setup_logging("warning")
    host, port = config.listen_host_port
    address = f"{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
    prometheus = start_prometheus(farm.dir, address, prometheus_port) if with_prometheus else None
    stop, ready = asyncio.Event(), asyncio.Event()
    server = asyncio.create_task(serve(config, ready=ready, stop=stop))
    await ready.wait()
    for sig in (signal.SIGINT, signal.SIGTERM):  # after serve() installed its own: ours win
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    say("ready. Open:")
    print(f"  metrics     http://{address}/metrics")
    if prometheus is not None:
        print(f"  Prometheus  http://127.0.0.1:{prometheus_port}/graph   (rules: http://127.0.0.1:{prometheus_port}/alerts)")
    print("  try         rate(chia_farmer_signage_points_total[1m]) * 60       signage points a minute\n"
          "              chia_farmer_harvester_lookup_duration_seconds_count   lookups by the harvester\n"
          "              chia_full_node_peak_height                            grows by one every 30 s\n"
          "              chia_wallet_confirmed_balance_mojos / 1e12            the demo wallet, in XCH\n"
          "  Grafana dashboards: grafana/dashboards/*.json (import them, or docker compose up). Ctrl-C stops everything.",
          flush=True)
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), BLOCK_EVERY)
            except asyncio.TimeoutError:
                await asyncio.to_thread(farm.farm_block)
    finally:
        stop.set()
        await server
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(timeout=10)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="chia-prometheus-exporter demo", description=__doc__)
    p.add_argument("--web.listen-address", dest="listen", default="127.0.0.1:9914")
    p.add_argument("--dir", type=Path, default=default_dir(), help="where the demo keeps its chain (reused)")
    p.add_argument("--chia-venv", type=Path, default=os.environ.get("CHIA_DEMO_VENV"),
                   help="an existing virtualenv with chia-blockchain 2.7.5 (default: one under --dir)")
    p.add_argument("--prometheus-port", type=int, default=9090)
    p.add_argument("--no-prometheus", action="store_true")
    args = p.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    farm = DemoFarm(args.dir.resolve(), (args.chia_venv or args.dir / "venv").resolve())
    started = time.monotonic()
    try:
        farm.install()
        farm.create()
        farm.start()
        say(f"the farm is up after {time.monotonic() - started:.0f} s")
        asyncio.run(run(farm, args.listen, args.prometheus_port, not args.no_prometheus))
    except KeyboardInterrupt:
        pass
    except (subprocess.SubprocessError, RuntimeError, OSError) as e:
        say(f"failed: {e} (the Chia side logs to {farm.dir / 'chia.log'})")
        return 1
    finally:
        say("stopping the demo farm")
        farm.stop()
    return 0
