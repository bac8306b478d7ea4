"""A synthetic farm for benchmarks: response bodies of any size, served over real mutual TLS.

    python -m benchmarks.synthetic_farm --plots 100000 --harvesters 1000   # serve until Ctrl-C

Bodies have the shapes Chia 2.7.5 answers with (keys sorted, as Chia writes them), so the
exporter's parsers take the same paths as on a real farm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import tempfile
from pathlib import Path

import trustme

from tests.conftest import ChiaRoot
from tests.fakes.services import Fault, FakeService, load_set

K32_BYTES = 108_837_958_044


def plots_body(n: int, seed: int = 1) -> bytes:
    """A get_plots body for n plots: about 600 bytes a plot, as a real harvester answers."""
    rng = random.Random(seed)
    plots = []
    for i in range(n):
        v2 = i % 10 == 9
        pool = i % 3 != 0
        plots.append({
            "compression_level": rng.choice((0, 0, 0, 5, 7)) if not v2 else 0,
            "file_size": K32_BYTES - rng.randrange(1 << 20),
            "filename": f"/mnt/disk{i % 48:02d}/plots/plot-k32-2024-05-{i % 28 + 1:02d}-{rng.getrandbits(256):064x}.plot"
                        + ("2" if v2 else ""),
            "meta_group": 0, "plot_id": f"0x{rng.getrandbits(256):064x}", "plot_index": 0,
            "plot_public_key": f"0x{rng.getrandbits(384):096x}",
            "pool_contract_puzzle_hash": f"0x{rng.getrandbits(256):064x}" if pool else None,
            "pool_public_key": None if pool else f"0x{rng.getrandbits(384):096x}",
            "size": (0x80 | 2) if v2 else 32, "time_modified": 1795474602 + i,
        })
    body = {"failed_to_open_filenames": [], "not_found_filenames": [], "plots": plots, "success": True}
    return json.dumps(body, sort_keys=True).encode()


def harvesters_summary_body(harvesters: int, plots_each: int = 1000) -> bytes:
    rng = random.Random(harvesters)
    rows = [{
        "connection": {"host": f"10.0.{i // 250}.{i % 250 + 1}", "node_id": f"0x{rng.getrandbits(256):064x}", "port": 8448},
        "duplicates": 0, "failed_to_open_filenames": 0, "harvesting_mode": 1, "last_sync_time": 1795474912.5,
        "no_key_filenames": 0, "plots": plots_each, "syncing": None,
        "total_effective_plot_size": plots_each * K32_BYTES, "total_plot_size": plots_each * K32_BYTES,
    } for i in range(harvesters)]
    return json.dumps({"harvesters": rows, "success": True}, sort_keys=True).encode()


class SyntheticFarm:
    """Every service faked from the recorded set, with chosen endpoints replaced by big bodies."""

    def __init__(self, root: Path, raw: dict[str, dict[str, bytes]]) -> None:
        self.root = ChiaRoot(root, trustme.CA())
        self.raw = raw
        self.services: dict[str, FakeService] = {}

    async def start(self) -> dict[str, int]:
        bodies = load_set("chia-2.7.5")
        ports = {}
        for name in ("full_node", "farmer", "harvester", "wallet"):
            svc = FakeService(name, bodies[name], self.root.server_context())
            for endpoint, body in self.raw.get(name, {}).items():
                svc.faults[endpoint] = Fault(raw=body)
            await svc.start()
            self.services[name] = svc
            ports[name] = svc.port
        self.root.write_config(ports)
        return ports

    async def stop(self) -> None:
        for svc in self.services.values():
            await svc.stop()


def serve_in_process(raw: dict[str, dict[str, bytes]], ready, stop) -> None:
    """A multiprocessing target: serve a synthetic farm until ``stop`` is set; its CHIA_ROOT goes
    to ``ready``. Benchmarks keep the services' CPU out of the process they measure this way."""

    async def main() -> None:
        farm = SyntheticFarm(Path(tempfile.mkdtemp(prefix="bench-farm-")) / "root", raw)
        await farm.start()
        ready.put(str(farm.root.path))
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await farm.stop()

    asyncio.run(main())


async def _serve(args: argparse.Namespace) -> None:
    raw = {"harvester": {"get_plots": plots_body(args.plots)},
           "farmer": {"get_harvesters_summary": harvesters_summary_body(args.harvesters)}}
    farm = SyntheticFarm(Path(tempfile.mkdtemp(prefix="synthetic-farm-")) / "root", raw)
    ports = await farm.start()
    print(f"CHIA_ROOT={farm.root.path} ports={ports}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await farm.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plots", type=int, default=1000)
    parser.add_argument("--harvesters", type=int, default=10)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(_serve(parser.parse_args()))
