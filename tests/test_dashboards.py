"""The Grafana dashboards: structure, variables, units, and queries that parse and name only
metrics the exporter serves (checked against the golden files) or the shipped recording rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.promql import metric_names, served_family

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS = sorted((REPO / "grafana" / "dashboards").glob("*.json"))


def golden_names() -> set[str]:
    names = set()
    for golden in (REPO / "tests" / "golden").glob("*.prom"):
        for line in golden.read_text().splitlines():
            if line.startswith("# TYPE "):
                names.add(line.split()[2])
    return names


def recording_rules() -> set[str]:
    rules = set()
    for f in (REPO / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(f.read_text())["groups"]:
            rules |= {r["record"] for r in group["rules"] if "record" in r}
    return rules


KNOWN = golden_names() | recording_rules() | {"up"}


def panels(board: dict) -> list[dict]:
    return [p for p in board["panels"] if p["type"] != "row"]


def queries() -> list[tuple[str, str, str]]:
    out = []
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for p in panels(board):
            for t in p["targets"]:
                out.append((path.name, p["title"], t["expr"]))
    return out


def test_four_dashboards_are_generated_and_current():
    assert {p.name for p in DASHBOARDS} == {"chia-farm-overview.json", "chia-harvesters.json", "chia-node-wallet.json",
                                            "chia-exporter.json"}
    sys.path.insert(0, str(REPO / "grafana"))
    try:
        import build_dashboards
    finally:
        sys.path.pop(0)
    for name, text in build_dashboards.render_all().items():
        assert (REPO / "grafana" / "dashboards" / name).read_text() == text, f"{name}: run python grafana/build_dashboards.py"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path):
    board = json.loads(path.read_text())
    names = [v["name"] for v in board["templating"]["list"]]
    assert names[:3] == ["datasource", "job", "instance"]
    assert '"uid": "prometheus"' not in path.read_text()  # no hard-coded datasource
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels(board):
        assert p["targets"], f"{p['title']} has no query"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']} has no unit"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job"' in t["expr"] or "$job" in t["expr"], f"{p['title']}: not filtered by job"


@pytest.mark.parametrize("board,title,expr", queries(), ids=lambda v: v if len(v) < 40 else None)
def test_every_query_parses_and_names_served_metrics(board, title, expr):
    names = metric_names(expr)
    assert names, f"{board} / {title}: no metric in {expr}"
    unknown = {n for n in names if served_family(n) not in KNOWN and n not in KNOWN}
    assert not unknown, f"{board} / {title}: {unknown} is neither served (goldens) nor a recording rule"


def test_rules_name_only_served_metrics():
    for f in (REPO / "prometheus" / "rules").glob("*.yml"):
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                names = metric_names(rule["expr"])
                unknown = {n for n in names if served_family(n) not in KNOWN and n not in KNOWN}
                assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def test_provisioning_points_at_the_dashboards():
    ds = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/chia.yml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
