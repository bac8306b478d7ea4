"""The farmer poll with 1, 100 and 1000 harvesters, each holding 100 or 10,000 plots.

    python -m benchmarks.bench_farmer [--quick]

The farmer collector only calls get_harvesters_summary (counts per harvester), so its CPU must
follow the number of harvesters and stay flat when each harvester holds 100x more plots. Median
CPU seconds of one poll over repeated polls, in one process, against a synthetic farmer over
mutual TLS in another.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def measure(root: str, repeats: int) -> list[float]:
    from exporter.app import Exporter
    from tests.harness import config_for

    off = {f"collectors.{n}.enabled": False for n in ("full_node", "harvester", "wallet", "daemon")}

    async def main() -> list[float]:
        exporter = Exporter(config_for(Path(root), **off, **{"events.enabled": False}))
        await exporter.start(background=False)
        runner = exporter.runners[0]
        await runner.poll_once()  # connection and TLS set up once, as in a long-running exporter
        cpu = []
        for _ in range(repeats):
            t = time.process_time()
            await runner.poll_once()
            cpu.append(time.process_time() - t)
            assert runner.success, runner.last_error
        await exporter.stop()
        return cpu

    return asyncio.run(main())


def main(argv: list[str]) -> int:
    from benchmarks.synthetic_farm import harvesters_summary_body, serve_in_process

    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--quick", action="store_true")
    quick = args.parse_args(argv).quick
    repeats = 3 if quick else 15
    ctx = mp.get_context("spawn")
    print("| harvesters | plots each | body | poll CPU (median) |")
    print("| ---: | ---: | ---: | ---: |")
    for harvesters in ((1, 100) if quick else (1, 100, 1000)):
        for plots_each in (100, 10_000):
            body = harvesters_summary_body(harvesters, plots_each)
            ready, stop = ctx.Queue(), ctx.Event()
            server = ctx.Process(target=serve_in_process, args=({"farmer": {"get_harvesters_summary": body}}, ready, stop))
            server.start()
            try:
                cpu = measure(ready.get(timeout=60), repeats)
            finally:
                stop.set()
                server.join()
            print(f"| {harvesters:,} | {plots_each:,} | {len(body) / 1024:.0f} KB | {statistics.median(cpu) * 1000:.1f} ms |",
                  flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
