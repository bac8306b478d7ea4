"""/metrics with about 2,000 series under 10 concurrent scrapers.

    python -m benchmarks.bench_metrics [--quick]
    python -m benchmarks.bench_metrics --scrapers 50 --seconds 60 --runs 3    # the load test

The exporter serves the synthetic big farm (farmer with 260 harvesters and pools, every other
collector from the recorded 2.7.5 set, event states fed by the recorded event stream). Ten
scraper threads in another process request /metrics for a fixed time; reported: p50 and p99
latency. Timed in the serving process just before the load: the floor, a bare
``generate_latest`` of the same families built once beforehand, and a render, what a scrape costs
when nothing is cached (the exporter builds its families from the snapshots, then
``generate_latest``). Goals: p99 <= 20 ms, render <= 1.3x the floor. The load comes from wrk
(Debian's package; 2 threads, 10 connections, gzip like Prometheus) when installed, else from
Python threads.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def serve(ready, stop, floor_q, events_per_second: float = 0.0) -> None:
    from aiohttp import web
    from prometheus_client.exposition import generate_latest

    from benchmarks.synthetic_farm import SyntheticFarm, harvesters_summary_body
    from exporter.app import Exporter
    from exporter.server import create_app
    from tests.fakes.services import SHARED_FIXTURES
    from tests.harness import config_for

    async def main() -> None:
        farm = SyntheticFarm(Path(tempfile.mkdtemp(prefix="bench-metrics-")) / "root",
                             {"farmer": {"get_harvesters_summary": harvesters_summary_body(260, 500)}})
        await farm.start()
        exporter = Exporter(config_for(farm.root.path, **{"events.enabled": False, "collectors.daemon.enabled": False}))
        app = create_app(exporter)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        for r in exporter.runners:
            await r.poll_once()
        events = (SHARED_FIXTURES / "daemon" / "events-metrics.jsonl").read_text().splitlines()
        for line in events:
            exporter.dispatcher.dispatch(json.loads(line))
        text = generate_latest(exporter.registry).decode()
        series = sum(1 for line in text.splitlines() if line and not line.startswith("#"))

        class Prebuilt:  # the same families, built once: what generate_latest alone costs
            def __init__(self, families) -> None:
                self.families = families

            def collect(self):
                return iter(self.families)

        prebuilt = Prebuilt(list(exporter.registry.collect()))
        # Timed here before the load (during it, they would block the loop serving the scrapers).
        # Alternating, each after a full collection, so that neither pays for the other's garbage.
        floors, renders = [], []
        for _ in range(30):
            gc.collect()
            t = time.perf_counter()
            generate_latest(prebuilt)
            floors.append(time.perf_counter() - t)
            gc.collect()
            t = time.perf_counter()
            generate_latest(exporter.registry)
            renders.append(time.perf_counter() - t)
        floor_q.put((floors, renders))
        ready.put((site._server.sockets[0].getsockname()[1], series))
        # Events arriving during the load change what /metrics shows, so scrapes render anew.
        replay = [json.loads(line) for line in events if '"new_farming_info"' in line or '"farming_info"' in line]
        i = 0
        while not stop.is_set():
            if events_per_second:
                exporter.dispatcher.dispatch(replay[i % len(replay)])
                i += 1
                await asyncio.sleep(1 / events_per_second)
            else:
                await asyncio.sleep(0.05)
        await runner.cleanup()
        await farm.stop()

    asyncio.run(main())


def load(port: int, seconds: float, scrapers: int) -> tuple[list[float], int]:
    latencies: list[float] = []
    errors = [0]
    deadline = time.monotonic() + seconds
    lock = threading.Lock()

    def worker() -> None:
        url = f"http://127.0.0.1:{port}/metrics"
        while time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    resp.read()
                    ok = resp.status == 200
            except OSError:
                ok = False
            d = time.perf_counter() - t
            with lock:
                latencies.append(d)
                errors[0] += not ok

    threads = [threading.Thread(target=worker) for _ in range(scrapers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors[0]


def load_wrk(port: int, seconds: float, scrapers: int) -> tuple[float, float, int, int] | None:
    """wrk (Debian's package), a C load generator: p50, p99 in seconds, requests, errors."""
    import re
    import shutil
    import subprocess

    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    out = subprocess.run([wrk, "-t2", f"-c{scrapers}", f"-d{int(seconds)}s", "--latency", "-H", "Accept-Encoding: gzip",
                          f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True, timeout=seconds + 60).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)$", out, re.M)
        assert m, out
        return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0}[m.group(2)]

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    # "Socket errors: connect 0, read 12, write 0, timeout 3" and "Non-2xx or 3xx responses: 5"
    socket = re.search(r"Socket errors: (.*)$", out, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = (sum(int(n) for n in re.findall(r"\d+", socket.group(1))) if socket else 0) + (int(non_2xx.group(1)) if non_2xx else 0)
    return ms("50"), ms("99"), requests, errors


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--scrapers", type=int, default=10, help="concurrent scrapers (connections)")
    p.add_argument("--seconds", type=float, default=20, help="length of one run")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--events-per-second", type=float, default=0.0,
                   help="daemon events folded in during the load (each one makes the next scrape render anew)")
    args = p.parse_args(argv)
    runs, seconds = (1, 3) if args.quick else (args.runs, args.seconds)
    ctx = mp.get_context("spawn")
    rows = []
    for _ in range(runs):
        ready, stop, floor_q = ctx.Queue(), ctx.Event(), ctx.Queue()
        server = ctx.Process(target=serve, args=(ready, stop, floor_q, args.events_per_second))
        server.start()
        port, series = ready.get(timeout=120)
        measured = load_wrk(port, seconds, args.scrapers)
        if measured is None:  # no wrk: Python threads, whose own overhead shows in the figures
            latencies, errors = load(port, seconds, args.scrapers)
            measured = (pct(latencies, 0.5), pct(latencies, 0.99), len(latencies), errors)
        stop.set()
        floors, renders = floor_q.get(timeout=60)
        server.join()
        p50, p99, requests, errors = measured
        rows.append((series, requests, errors, p50, p99, statistics.median(floors), statistics.median(renders)))
    med = lambda i: statistics.median(r[i] for r in rows)  # noqa: E731
    print("| series | scrapes | errors | p50 | p99 | generate_latest floor | render (uncached) | render / floor |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {rows[0][0]:,} | {int(med(1)):,} | {sum(r[2] for r in rows)} | {med(3) * 1000:.1f} ms | {med(4) * 1000:.1f} ms "
          f"| {med(5) * 1000:.1f} ms | {med(6) * 1000:.1f} ms | {med(6) / med(5):.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
