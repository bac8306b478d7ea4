"""Daemon events: throughput on one core, and the delay from arrival to /metrics.

    python -m benchmarks.bench_events [--quick]

Throughput: a realistic mix taken from the recorded 2.7.5 stream (mostly the farmer's
new_farming_info and the harvester's farming_info, with signage points, proofs and blocks),
repeated, through ``EventDispatcher.dispatch_text`` (decode and fold into every state); the floor
is ``json.loads`` alone of the same messages in the same run (goals: >= 20k events/s, <= 2x the
floor). Delay: a fake daemon pushes new_signage_point over mutual-TLS WebSocket to a running
exporter, and /metrics is read until the counter shows it (goal <= 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WEIGHTS = {"new_farming_info": 40, "farming_info": 40, "new_signage_point": 8, "proof": 2, "block": 2,
           "get_blockchain_state": 2, "coin_added": 1, "harvester_update": 1}


def event_mix(n: int) -> list[str]:
    from tests.fakes.services import SHARED_FIXTURES

    by_command: dict[str, list[str]] = {}
    for line in (SHARED_FIXTURES / "daemon" / "events-metrics.jsonl").read_text().splitlines():
        by_command.setdefault(json.loads(line)["command"], []).append(line)
    pattern = [c for c, w in WEIGHTS.items() for _ in range(w)]
    return [by_command[c][i % len(by_command[c])] for i, c in zip(range(n), pattern * (n // len(pattern) + 1))]


def throughput(messages: list[str]) -> tuple[float, float]:
    from exporter.collectors import build
    from exporter.daemon_ws import EventDispatcher
    from tests.harness import config_for

    root = Path(tempfile.mkdtemp(prefix="bench-events-"))
    _chia_root(root)
    config = config_for(root / "root")
    _, states = build(config, None)
    dispatcher = EventDispatcher(states, clock=time.time)
    t = time.process_time()
    for m in messages:
        json.loads(m)
    floor = time.process_time() - t
    t = time.process_time()
    for m in messages:
        dispatcher.dispatch_text(m)
    full = time.process_time() - t
    assert not dispatcher.errors, dispatcher.errors
    return full, floor


def _chia_root(tmp: Path) -> None:
    import trustme

    from tests.conftest import ChiaRoot

    ChiaRoot(tmp / "root", trustme.CA()).write_config({})


async def delays(count: int) -> list[float]:
    import aiohttp
    import trustme
    from aiohttp import web

    from exporter.app import Exporter
    from exporter.server import create_app
    from tests.conftest import ChiaRoot
    from tests.fakes.daemon import FakeDaemon
    from tests.fakes.services import load_set
    from tests.harness import config_for

    root = ChiaRoot(Path(tempfile.mkdtemp(prefix="bench-delay-")) / "root", trustme.CA())
    daemon = FakeDaemon("daemon", load_set("chia-2.7.5")["daemon"], root.server_context())
    await daemon.start()
    root.write_config({"daemon": daemon.port})
    off = {f"collectors.{n}.enabled": False for n in ("full_node", "farmer", "harvester", "wallet", "daemon")}
    exporter = Exporter(config_for(root.path, **off))
    app = create_app(exporter)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    await daemon.wait_registered()
    signage = next(json.loads(line) for line in event_mix(200) if '"new_signage_point"' in line)
    out = []
    async with aiohttp.ClientSession() as http:
        for i in range(1, count + 1):
            t = time.perf_counter()
            await daemon.push(signage, "metrics")
            while True:
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    text = await resp.text()
                if f"chia_farmer_signage_points_total {float(i)}" in text:
                    break
            out.append(time.perf_counter() - t)
    await runner.cleanup()
    await daemon.stop()
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    quick = p.parse_args(argv).quick
    n, runs, pushes = (5_000, 2, 20) if quick else (100_000, 5, 200)
    messages = event_mix(n)
    results = [throughput(messages) for _ in range(runs)]
    full = statistics.median(r[0] for r in results)
    floor = statistics.median(r[1] for r in results)
    d = sorted(asyncio.run(delays(pushes)))
    print("| events | events/s (one core) | json.loads floor | ratio | delay p50 | delay p99 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {n:,} | {n / full:,.0f} | {n / floor:,.0f}/s | {full / floor:.2f}x | {statistics.median(d) * 1000:.1f} ms "
          f"| {d[min(len(d) - 1, int(0.99 * (len(d) - 1)))] * 1000:.1f} ms |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
