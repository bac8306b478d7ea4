"""Soak and footprint beside the real Chia stack.

    eval "$(../shared/chia-sim/start.sh /tmp/chia-sim)"     # the real stack, events flowing
    python -m benchmarks.soak --minutes 10                   # CHIA_ROOT from the environment

Runs the installed exporter with no configuration but CHIA_ROOT, scraped every 15 s like a
Prometheus would, farms a block every 30 s so that block events flow beside the signage points
the stack's pump sends, and samples the exporter process from /proc: resident memory, open file
descriptors and CPU time. Reports RSS and descriptors after a one-minute warm-up (imports done,
first polls made, caches filled) and at the end (goals: RSS growth < 5 MB, descriptors flat), and
the CPU used between those two points as a share of one core; the RSS at the end is the idle
footprint (goals <= 0.5 % of a core, <= 45 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def proc_stats(pid: int) -> tuple[float, int, float]:
    """RSS in MB, open descriptors, CPU seconds (user + system)."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, fds, cpu


def farm_block(root: Path) -> None:
    import yaml

    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    ssl_dir = root / "config" / "ssl" / "full_node"
    ctx = ssl.create_default_context(cafile=str(root / "config/ssl/ca/private_ca.crt"))
    ctx.check_hostname = False
    ctx.load_cert_chain(ssl_dir / "private_full_node.crt", ssl_dir / "private_full_node.key")
    body = json.dumps({"address": config["simulator"]["farming_address"], "blocks": 1, "guarantee_tx_block": True}).encode()
    req = urllib.request.Request(f"https://127.0.0.1:{config['full_node']['rpc_port']}/farm_block", data=body)
    urllib.request.urlopen(req, context=ctx, timeout=30).read()


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--no-blocks", action="store_true", help="do not farm blocks (an idle chain)")
    args = p.parse_args(argv)
    root = Path(os.environ["CHIA_ROOT"])
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).parent / "chia-prometheus-exporter"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHIA_") or k == "CHIA_ROOT"}
    proc = subprocess.Popen([str(exe), "--web.listen-address", f"127.0.0.1:{port}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    for _ in range(100):  # scrape only once the exporter listens
        try:
            urllib.request.urlopen(url, timeout=5).read()
            break
        except OSError:
            time.sleep(0.1)
    end = time.monotonic() + 60 * args.minutes
    warm = time.monotonic() + 60
    first = None
    scrapes = errors = 0
    next_block = time.monotonic() + 30
    try:
        while time.monotonic() < end:
            try:
                urllib.request.urlopen(url, timeout=10).read()
                scrapes += 1
            except OSError:
                errors += 1
            now = time.monotonic()
            if first is None and now >= warm:
                first = (now, *proc_stats(proc.pid))
            if not args.no_blocks and now >= next_block:
                farm_block(root)
                next_block = now + 30
            time.sleep(15)
        last = (time.monotonic(), *proc_stats(proc.pid))
        text = urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert first is not None, "run for more than a minute"
    events = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("chia_exporter_events_total{"))
    cpu_pct = 100 * (last[3] - first[3]) / (last[0] - first[0])
    print("| minutes | scrapes (errors) | events | RSS after 1 min | RSS at end | growth | fds after 1 min | fds at end | CPU |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {args.minutes:g} | {scrapes} ({errors}) | {events:.0f} | {first[1]:.1f} MB | {last[1]:.1f} MB | "
          f"{last[1] - first[1]:+.1f} MB | {first[2]} | {last[2]} | {cpu_pct:.2f} % of a core |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
