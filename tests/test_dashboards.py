"""The Grafana dashboards: structure, variables, units, and queries that parse and name only
metrics the exporter serves (checked against the golden files) or the shipped recording rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.promql import metric_names as _metric_names, served_family

# Dashboard variables beyond the ones tests/promql.py knows, replaced by values that parse the same way.
BOARD_VARS = {"$node_id": ".*"}


def board_expr(expr: str) -> str:
    for var, value in BOARD_VARS.items():
        expr = expr.replace(var, value)
    return expr


def metric_names(expr: str) -> set[str]:
    return _metric_names(board_expr(expr))

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
    """Every panel but rows, also the ones inside a collapsed row."""
    out = []
    for p in board["panels"]:
        if p["type"] == "row":
            out += p.get("panels", [])
        else:
            out.append(p)
    return out


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
    assert names[:4] == ["datasource", "farm", "job", "instance"]
    farm = board["templating"]["list"][1]
    # harmless where no series has a farm label: "All" is .*, which matches a missing label too
    assert farm["includeAll"] and farm["allValue"] == ".*" and farm["current"]["value"] == "$__all"
    assert '"uid": "prometheus"' not in path.read_text()  # no hard-coded datasource
    ids = [p["id"] for p in board["panels"]] + [p["id"] for r in board["panels"] for p in r.get("panels", [])]
    assert len(ids) == len(set(ids))
    for p in panels(board):
        assert p["targets"], f"{p['title']} has no query"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']} has no unit"
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}"
            assert 'job=~"$job"' in t["expr"] or "$job" in t["expr"], f"{p['title']}: not filtered by job"
            assert 'farm=~"$farm"' in t["expr"], f"{p['title']}: not filtered by farm"


@pytest.mark.parametrize("board,title,expr", queries(), ids=lambda v: v if len(v) < 40 else None)
def test_every_query_parses_and_names_served_metrics(board, title, expr):
    names = metric_names(expr)
    assert names, f"{board} / {title}: no metric in {expr}"
    unknown = {n for n in names if served_family(n) not in KNOWN and n not in KNOWN}
    assert not unknown, f"{board} / {title}: {unknown} is neither served (goldens) nor a recording rule"


def boards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in DASHBOARDS}


def test_tables_name_every_column():
    """No "Value #A" headers: every query of an instant table has a column name."""
    for name, board in boards().items():
        for p in panels(board):
            if p["type"] != "table" or p["title"] == "Build":
                continue
            organize = [t for t in p["transformations"] if t["id"] == "organize"]
            assert organize, f"{name} / {p['title']}: no organize transformation"
            rename = organize[0]["options"]["renameByName"]
            for t in p["targets"]:
                assert rename.get(f"Value #{t['refId']}"), f"{name} / {p['title']}: query {t['refId']} has no column name"


def test_harvesters_table():
    board = boards()["chia-harvesters"]
    table = next(p for p in panels(board) if p["title"] == "Harvesters")
    rename = next(t for t in table["transformations"] if t["id"] == "organize")["options"]["renameByName"]
    columns = set(rename.values())
    assert {"Host", "Node ID", "Plots", "Effective size", "Failed to open", "No key", "Duplicates", "Last response",
            "Plot sync"} <= columns
    units = {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]} for o in table["fieldConfig"]["overrides"]}
    assert units["Effective size"]["unit"] == "bytes" and units["Last response"]["unit"] == "s"


def test_harvesters_board_per_harvester():
    board = boards()["chia-harvesters"]
    names = [v["name"] for v in board["templating"]["list"]]
    assert names == ["datasource", "farm", "job", "instance", "node_id"]
    rows = [p for p in board["panels"] if p["type"] == "row"]
    assert any(r.get("repeat") == "node_id" for r in rows)
    heatmaps = [p for p in panels(board) if p["type"] == "heatmap"]
    assert heatmaps and all("$node_id" in t["expr"] for p in heatmaps for t in p["targets"])
    for p in panels(board):
        for t in p["targets"]:
            if "chia_farmer_harvester_" in t["expr"]:
                assert "$node_id" in t["expr"], f"{p['title']}: not filtered by the harvester variable"


def test_no_panel_mixes_units_on_one_axis():
    """A timeseries whose queries have different units puts the others on the right axis."""
    for name, board in boards().items():
        for p in panels(board):
            if p["type"] != "timeseries" or len(p["targets"]) < 2:
                continue
            moved = {o["matcher"]["options"] for o in p["fieldConfig"]["overrides"] if o["matcher"]["id"] == "byFrameRefID"}
            kinds = {"xch" if "/ 1e12" in t["expr"] else "mojo_per_cost" if "mojos_per_cost" in t["expr"] else
                     "ratio" if "_max_total_cost" in t["expr"] or "netspace" in t["expr"] else
                     "bytes" if "bytes" in t["expr"] else "other"
                     for t in p["targets"] if t["refId"] not in moved}
            assert len(kinds) == 1, f"{name} / {p['title']}: {kinds} on one axis"


def test_xch_panels_count_only_xch_wallets():
    """Balances in XCH are standard and pooling wallets only; CATs are tokens (1000 mojos each)."""
    for name, board in boards().items():
        for p in panels(board):
            for t in p["targets"]:
                expr = t["expr"]
                for metric in ("confirmed_balance", "spendable_balance", "unconfirmed_balance", "pending_change"):
                    if f"chia_wallet_{metric}_mojos" in expr:
                        if "/ 1e12" in expr:
                            assert 'wallet_type=~"standard|pooling"' in expr, f"{name} / {p['title']}: {expr}"
                        else:
                            assert "/ 1000" in expr and "cat" in expr, f"{name} / {p['title']}: {expr}"


def test_rules_name_only_served_metrics():
    """Served metrics, recording rules, and the overrides a farm may record for the thresholds."""
    for f in (REPO / "prometheus" / "rules").glob("chia-*.yml"):
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                names = metric_names(rule["expr"])
                unknown = {n for n in names if served_family(n) not in KNOWN and n not in KNOWN
                           and not n.startswith("chia:alert_threshold_override:")}
                assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def overview_panel(title: str) -> dict:
    return next(p for p in panels(boards()["chia-farm-overview"]) if p["title"] == title)


def test_last_block_farmed_says_never_before_the_first_block():
    """The wallet reports last_time_farmed 0 until it wins: no value ("never"), not 1970."""
    panel = overview_panel("Last block farmed")
    assert "> 0)" in panel["targets"][0]["expr"] and panel["fieldConfig"]["defaults"]["noValue"] == "never"


def test_overview_harvesters_known_and_responding():
    exprs = [t["expr"] for t in overview_panel("Harvesters")["targets"]]
    assert len(exprs) == 2 and "chia_farmer_harvesters" in exprs[0]
    assert "chia_farmer_harvester_last_response_timestamp_seconds" in exprs[1]


def test_partials_come_from_the_farmers_own_counts():
    """The submitted_partial and failed_partial events miss a pool's refusals and HTTP errors."""
    exprs = " ".join(t["expr"] for p in panels(boards()["chia-farm-overview"]) for t in p["targets"])
    assert "chia_farmer_pool_partials_since_start" in exprs and "chia_farmer_partials_" not in exprs


def test_provisioning_points_at_the_dashboards():
    ds = yaml.safe_load((REPO / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load((REPO / "grafana/provisioning/dashboards/chia.yml").read_text())["providers"][0]
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
