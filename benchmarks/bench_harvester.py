"""The local harvester's get_plots poll at 1k, 10k and 100k plots.

    python -m benchmarks.bench_harvester            # full run: 5 repetitions per size
    python -m benchmarks.bench_harvester --quick    # 1k and 10k plots, 2 repetitions

Each repetition runs in a fresh process (so peak RSS is the poll's own) against a synthetic
harvester served over mutual TLS from another process, and reports:
- the CPU seconds (user and kernel: receiving the body is the kernel's share) of one poll of a
  running exporter (TLS, HTTP, the batched parse, the counts;
  the median of three polls after a first one, so that building the TLS context and connecting
  are not in it) and, in the same process, of a bare ``json.loads`` of the same body (the median
  of three): the floor; their ratio (goal <= 1.3);
- the peak RSS of the process after the polls (goal <= 250 MB at 100k plots);
- the p99 latency of /metrics scraped in a loop by another process while the poll runs
  (goal <= 50 ms), and, in the measuring process with nothing else in the way, the longest the
  event loop went without a turn during a poll.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
POLLS = 3  # polls (and json.loads floors) per process: the median of each is reported
sys.path.insert(0, str(REPO))


def exporter_config(root: str):
    from tests.harness import config_for

    off = {f"collectors.{n}.enabled": False for n in ("full_node", "farmer", "wallet", "daemon")}
    return config_for(Path(root), **off, **{"events.enabled": False, "collectors.harvester.timeout": "60s",
                                             "collectors.harvester.interval": "10m"})


def measure_poll(root: str, body_file: str, out) -> None:
    """One poll in this fresh process: CPU, peak RSS, then the json.loads floor."""
    from exporter.app import Exporter

    async def main() -> tuple[float, int]:
        exporter = Exporter(exporter_config(root))
        await exporter.start(background=False)
        runner = exporter.runners[0]
        await runner.poll_once()  # a running exporter has its TLS context and connection already
        cpus, kernel, stalls = [], [], []
        for _ in range(POLLS):
            runner.collector._plots = None  # the plot count changed: this poll fetches get_plots again
            gc.collect()
            ticks = asyncio.create_task(longest_stall(stalls))
            before = os.times()
            await runner.poll_once()
            after = os.times()
            cpus.append(after.user + after.system - before.user - before.system)
            kernel.append(after.system - before.system)
            ticks.cancel()
            assert runner.success, runner.last_error
        await exporter.stop()
        return statistics.median(cpus), statistics.median(kernel), runner.snapshot.plots.total, max(stalls)

    cpu, kernel, plots, stall = asyncio.run(main())
    peak_mb = peak_rss_mb()
    body = Path(body_file).read_bytes()
    floors = []
    for _ in range(POLLS):
        gc.collect()
        start = time.process_time()
        json.loads(body)
        floors.append(time.process_time() - start)
    out.put({"cpu": cpu, "kernel": kernel, "floor": statistics.median(floors), "peak_mb": peak_mb, "plots": plots,
             "stall": stall})


async def longest_stall(out: list[float]) -> None:
    """The longest time the event loop went without running this task: what any other task (a
    /metrics request, an event) could have had to wait, with no other process in the way."""
    loop = asyncio.get_running_loop()
    last, longest = loop.time(), 0.0
    try:
        while True:
            await asyncio.sleep(0)
            now = loop.time()
            longest, last = max(longest, now - last), now
    finally:
        out.append(longest)


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not getrusage's ru_maxrss: on Linux that carries the
    peak of the parent it was forked from across the exec of a spawned process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def serve_exporter_and_poll(root: str, port_q, window_q, go) -> None:
    """The exporter's /metrics served while one poll runs; reports the poll's wall window."""
    from aiohttp import web

    from exporter.app import Exporter
    from exporter.server import create_app

    async def main() -> None:
        exporter = Exporter(exporter_config(root))
        app = create_app(exporter)
        exporter.start = _start_without_loops(exporter)  # the benchmark triggers the poll itself
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_q.put(site._server.sockets[0].getsockname()[1])
        while not go.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)  # the scraper is warm
        t0 = time.time()
        await exporter.runners[0].poll_once()
        window_q.put((t0, time.time()))
        await asyncio.sleep(0.2)
        await runner.cleanup()

    asyncio.run(main())


def _start_without_loops(exporter):
    original = exporter.start

    async def start(background: bool = True) -> None:
        await original(background=False)
    return start


def scrape(port: int, stop, out) -> None:
    samples = []
    url = f"http://127.0.0.1:{port}/metrics"
    while not stop.is_set():
        t0 = time.time()
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
        samples.append((t0, time.time() - t0))
    out.put(samples)


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(0.99 * (len(values) - 1))))]


def run_size(n: int, repeats: int) -> dict:
    from benchmarks.synthetic_farm import plots_body, serve_in_process

    ctx = mp.get_context("spawn")
    body_file = Path(tempfile.mkdtemp(prefix="bench-plots-")) / "get_plots.json"
    body_file.write_bytes(plots_body(n))
    ready, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=serve_in_process, args=({"harvester": {"get_plots": body_file.read_bytes()}}, ready, stop))
    server.start()
    root = ready.get(timeout=120)
    polls, latencies = [], []
    try:
        for _ in range(repeats):
            out = ctx.Queue()
            p = ctx.Process(target=measure_poll, args=(root, str(body_file), out))
            p.start()
            polls.append(out.get(timeout=300))
            p.join()
            port_q, window_q, go, scraper_stop, scraped = ctx.Queue(), ctx.Queue(), ctx.Event(), ctx.Event(), ctx.Queue()
            exp = ctx.Process(target=serve_exporter_and_poll, args=(root, port_q, window_q, go))
            exp.start()
            port = port_q.get(timeout=60)
            scraper = ctx.Process(target=scrape, args=(port, scraper_stop, scraped))
            scraper.start()
            go.set()
            t0, t1 = window_q.get(timeout=300)
            scraper_stop.set()
            samples = scraped.get(timeout=60)
            scraper.join()
            exp.join()
            during = [d for t, d in samples if t0 <= t <= t1] or [d for _, d in samples]
            latencies.append(p99(during) * 1000)
    finally:
        stop.set()
        server.join()
    return {
        "plots": n, "body_mb": body_file.stat().st_size / 2**20,
        "cpu_s": statistics.median(p["cpu"] for p in polls),
        "floor_s": statistics.median(p["floor"] for p in polls),
        "ratio": statistics.median(p["cpu"] / p["floor"] for p in polls),
        "kernel_s": statistics.median(p["kernel"] for p in polls),
        "user_ratio": statistics.median((p["cpu"] - p["kernel"]) / p["floor"] for p in polls),
        "peak_rss_mb": statistics.median(p["peak_mb"] for p in polls),
        "metrics_p99_ms": statistics.median(latencies),
        "stall_ms": statistics.median(p["stall"] for p in polls) * 1000,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    sizes, repeats = ((1000, 10000), 2) if args.quick else ((1000, 10000, 100000), 5)
    print("| plots | body | poll CPU | of it in the kernel | json.loads floor | ratio | ratio without the kernel | peak RSS "
          "| /metrics p99 during poll | longest loop stall |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n in sizes:
        r = run_size(n, repeats)
        print(f"| {r['plots']:,} | {r['body_mb']:.1f} MB | {r['cpu_s']:.3f} s | {r['kernel_s']:.3f} s | {r['floor_s']:.3f} s "
              f"| {r['ratio']:.2f}x | {r['user_ratio']:.2f}x "
              f"| {r['peak_rss_mb']:.0f} MB | {r['metrics_p99_ms']:.1f} ms | {r['stall_ms']:.1f} ms |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
