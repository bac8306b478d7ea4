"""A real Prometheus (Debian's) with the shipped rules scrapes the exporter running against the
real Chia stack: every dashboard query returns data, and no alert fires on the healthy stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.live.conftest import free_port, samples
from tests.promql import substitute

REPO = Path(__file__).resolve().parents[2]

# Queries that cannot return data on the simulated stack, and why.
NEEDS_WHAT_THE_SIMULATOR_LACKS = {
    "chia_farmer_pool_": "no plot NFT on a pool in the simulator: pool state, points and errors are empty",
    "chia_farmer_partials_": "no pool, so no partials are submitted or failed",
    "chia_full_node_last_reorg_depth": "the simulator never reorganises its chain",
}


def exempt(expr: str) -> str | None:
    for needle, reason in NEEDS_WHAT_THE_SIMULATOR_LACKS.items():
        if needle in expr:
            return reason
    return None


class Prometheus:
    def __init__(self, exporter_port: int, workdir: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed: bash scripts/test.sh installs Debian's package")
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "2s", "evaluation_interval": "2s"},
            "rule_files": [str(p) for p in sorted((REPO / "prometheus" / "rules").glob("*.yml"))],
            "scrape_configs": [{"job_name": "chia", "static_configs": [{"targets": [f"127.0.0.1:{exporter_port}"]}]}],
        }))
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def api(self, path: str, **params) -> dict:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list:
        return self.api("query", query=expr)["result"]

    def wait(self, expr: str, timeout: float = 60) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = self.query(expr)
                if result:
                    return result
            except OSError:
                pass
            time.sleep(1)
        raise AssertionError(f"Prometheus has no data for {expr} after {timeout}s")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self.log.close()


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def test_dashboards_and_alerts_against_a_real_prometheus(chia_stack, run_exporter):
    exporter = run_exporter("--collector.full_node.interval", "5s", "--collector.farmer.interval", "5s",
                            "--collector.wallet.interval", "5s", "--collector.harvester.interval", "5s")
    exporter.wait_for(lambda t: "chia_exporter_websocket_connected 1.0" in t
                      and samples(t).get("chia_harvester_total_plots") == 6, timeout=60)
    with tempfile.TemporaryDirectory() as tmp:
        prom = Prometheus(exporter.port, Path(tmp))
        try:
            prom.wait('up{job="chia"} == 1', timeout=40)
            chia_stack.farm_blocks(1)  # a transaction block: last block cost and fees appear
            prom.wait("chia_full_node_last_block_fees_mojos", timeout=40)
            prom.wait("chia:harvester_lookup_duration_seconds:p95 >= 0", timeout=60)
            time.sleep(6)  # a few more samples so that every rate has two inside its window

            empty, skipped = [], []
            for board, title, expr in dashboard_queries():
                reason = exempt(expr)
                result = prom.query(substitute(expr))
                if reason:
                    skipped.append((title, reason))
                elif not result:
                    empty.append(f"{board} / {title}: {expr}")
            assert not empty, "dashboard queries without data:\n" + "\n".join(empty)
            assert len(skipped) < len(dashboard_queries()) / 5  # the exemptions stay few

            firing = [a for a in prom.api("alerts")["alerts"] if a["state"] == "firing"]
            assert not firing, f"alerts fire on a healthy stack: {firing}"
            rules = prom.api("rules")["groups"]
            assert sum(len(g["rules"]) for g in rules) == 25  # 8 recording rules and 17 alerts loaded
            assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
        finally:
            prom.stop()
