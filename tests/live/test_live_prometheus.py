"""A real Prometheus (Debian's) with the shipped rules scrapes the exporter running against the
real Chia stack: every dashboard query returns data, and no alert fires, or is even pending, on
the healthy stack."""

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
import yaml

from tests.live.conftest import free_port, samples
from tests.promql import substitute as _substitute

REPO = Path(__file__).resolve().parents[2]

# Queries that cannot return data on the simulated stack, and why.
NEEDS_WHAT_THE_SIMULATOR_LACKS = {
    "chia_farmer_pool_": "no plot NFT on a pool in the simulator: pool state, points and errors are empty",
    "chia_farmer_partials_": "no pool, so no partials are submitted or failed",
    "chia_full_node_last_reorg_depth": "the simulator never reorganises its chain",
    'wallet_type=~"cat|crcat|rcat"': "the simulator's wallet has no CAT wallet",
}

# Dashboard variables beyond the ones tests/promql.py knows: match every value.
BOARD_VARS = {"$node_id": ".*"}

# Alerts that may be pending (their expression true) on the healthy stack, and why. Prometheus
# runs about a minute here, so an alert with `for: 2m` or more can never reach `firing`: any alert
# whose expression is true on a healthy stack is a bug and shows up as `pending`. Considered and
# not exempt: ChiaPeakNotAdvancing and ChiaPeakTooOld (the simulator makes blocks only on demand,
# but the test farms one after Prometheus' first scrape, so the peak has moved and is fresh),
# ChiaWalletNotSynced (a wallet whose last block is old may say "not synced" until that block
# arrives, seconds later), ChiaNoSignagePoints, ChiaHarvesterSilent and the lookup alerts
# (sp_pump.py sends a signage point every 5 s and the harvester answers each one in
# milliseconds), ChiaCollectorFailing (every service of the stack runs; the DataLayer, not
# started, stays out of the self-metrics), the pool alerts (no plot NFT, no series).
MAY_BE_PENDING: dict[str, str] = {}


def substitute(expr: str) -> str:
    for var, value in BOARD_VARS.items():
        expr = expr.replace(var, value)
    return _substitute(expr)


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


def lookups(text: str) -> float:
    """Lookups the farmer reported (new_farming_info), over every harvester."""
    return sum(v for k, v in samples(text).items() if k.startswith("chia_farmer_harvester_lookup_duration_seconds_count"))


def dashboard_queries() -> list[tuple[str, str, str]]:
    out = []
    for path in sorted((REPO / "grafana" / "dashboards").glob("*.json")):
        board = json.loads(path.read_text())["panels"]
        for panel in board + [p for row in board for p in row.get("panels", [])]:  # and collapsed rows' panels
            for target in panel.get("targets", []):
                out.append((path.name, panel["title"], target["expr"]))
    return out


def test_dashboards_and_alerts_against_a_real_prometheus(chia_stack, run_exporter):
    exporter = run_exporter("--collector.full_node.interval", "5s", "--collector.farmer.interval", "5s",
                            "--collector.wallet.interval", "5s", "--collector.harvester.interval", "5s")
    exporter.wait_for(lambda t: "chia_exporter_websocket_connected 1.0" in t
                      and samples(t).get("chia_harvester_total_plots") == 6
                      and lookups(t) >= 1, timeout=60)  # the farmer's new_farming_info flows
    with tempfile.TemporaryDirectory() as tmp:
        prom = Prometheus(exporter.port, Path(tmp))
        try:
            prom.wait('up{job="chia"} == 1', timeout=40)
            chia_stack.farm_blocks(1)  # a transaction block: last block cost and fees appear
            prom.wait("chia_full_node_last_block_fees_mojos", timeout=40)
            try:
                prom.wait("chia:harvester_lookup_duration_seconds:p95 >= 0", timeout=60)
            except AssertionError:  # say what was there: the rule's input, as Prometheus and the exporter saw it
                raise AssertionError(
                    f"no lookup p95; Prometheus has {prom.query('chia_farmer_harvester_lookup_duration_seconds_count')}, "
                    f"increase over 1m {prom.query('increase(chia_farmer_harvester_lookup_duration_seconds_count[1m])')}; "
                    f"the exporter now has {lookups(exporter.get('/metrics'))} lookups") from None
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

            active = [a for a in prom.api("alerts")["alerts"] if a["state"] in ("firing", "pending")
                      and a["labels"]["alertname"] not in MAY_BE_PENDING]
            assert not active, "alerts fire or are pending on a healthy stack:\n" + "\n".join(
                f"{a['state']} {a['labels']} value={a.get('value')}" for a in active)
            rules = prom.api("rules")["groups"]
            shipped = sum(len(g["rules"]) for f in (REPO / "prometheus" / "rules").glob("*.yml")
                          for g in yaml.safe_load(f.read_text())["groups"])
            assert sum(len(g["rules"]) for g in rules) == shipped  # every recording rule and alert loaded
            assert all(r["health"] == "ok" for g in rules for r in g["rules"]), rules
        finally:
            prom.stop()
