#!/usr/bin/env python3
"""Write the Grafana dashboards in grafana/dashboards/ from one description.

    python grafana/build_dashboards.py

Every panel's datasource is the `datasource` variable, every query is filtered by the `farm`, `job`
and `instance` variables (the Harvesters dashboard also by `node_id`), and units are set, so that
the four dashboards stay consistent. `farm` is the external label docs/scaling.md recommends where
several farms share one store; where no series has it, the variable has no values and its "All"
(`.*`) also matches series without the label, so the filter changes nothing. A panel never puts two units on one axis: a second unit goes to
the right axis (an override by query) or to a panel of its own. The generated JSON is committed; a
test checks that it is up to date and that every query parses and names only metrics the
exporter serves (or recording rules).

Money: XCH panels count only the wallets that hold XCH (`standard`, and `pooling`: a self-pooling
plot NFT's claimable rewards), 10^12 mojos to the XCH. CAT wallets (`cat`, `crcat`, `rcat`)
count their token's mojos, 1000 to a token, and have panels of their own. NFT and DID wallets
have no balance worth showing.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'farm=~"$farm", job=~"$job", instance=~"$instance"'
HARVESTER = 'node_id=~"$node_id"'  # the Harvesters dashboard's harvester selector
XCH_WALLETS = 'wallet_type=~"standard|pooling"'
CAT_WALLETS = 'wallet_type=~"cat|crcat|rcat"'
# Lookup buckets the alerts use: over 5 s is at risk (Chia's harvester warns over 8 s), over 30 s
# the proofs came after the infusion point (28-38 s after the signage point): lost.
LE_5S = 'le="5.0"'
LE_30S = 'le="30.0"'
XCH = "suffix: XCH"
MOJO_PER_COST = "suffix: mojo/cost"


def query_var(name: str, query: str, label: str | None = None, regex: str = "") -> dict:
    return {"name": name, "label": label or name, "type": "query", "datasource": DS, "refresh": 2, "includeAll": True,
            "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"},
            "query": {"query": query, "refId": name}, "definition": query, "sort": 1, "regex": regex}


def variables(extra: list[dict] | None = None) -> dict:
    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0},
        query_var("farm", "label_values(chia_exporter_build_info, farm)"),
        query_var("job", 'label_values(chia_exporter_build_info{farm=~"$farm"}, job)'),
        query_var("instance", 'label_values(chia_exporter_build_info{farm=~"$farm", job=~"$job"}, instance)'),
        *(extra or []),
    ]}


def right_axis(ref: str, unit: str, **extra) -> dict:
    """An override: the series of query `ref` on the right axis, in `unit`."""
    props = [{"id": "unit", "value": unit}, {"id": "custom.axisPlacement", "value": "right"}]
    props += [{"id": k, "value": v} for k, v in extra.items()]
    return {"matcher": {"id": "byFrameRefID", "options": ref}, "properties": props}


def by_name(name: str, **props) -> dict:
    """An override for the table column called `name` (after the organize transformation)."""
    return {"matcher": {"id": "byName", "options": name}, "properties": [{"id": k, "value": v} for k, v in props.items()]}


THRESHOLD_RED_FROM_1 = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}]}
SYNC_MAPPING = {"mappings": [{"type": "value", "options": {"0": {"text": "NOT SYNCED", "color": "red"},
                                                             "1": {"text": "Synced", "color": "green"}}}]}
HARVESTER_SYNC_MAPPING = [{"type": "value", "options": {"0": {"text": "idle", "color": "green"},
                                                        "1": {"text": "syncing plots", "color": "orange"}}}]
UP_MAPPING = {"mappings": [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"},
                                                           "1": {"text": "UP", "color": "green"}}}]}
# Harvesters answer every signage point (~9 s); ChiaHarvesterSilent fires over 300 s.
RESPONSE_AGE_THRESHOLDS = {"mode": "absolute", "steps": [{"color": "green", "value": None}, {"color": "orange", "value": 60},
                                                         {"color": "red", "value": 300}]}


class Board:
    def __init__(self, uid: str, title: str, description: str, extra_variables: list[dict] | None = None) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.extra_variables = extra_variables
        self.panels: list[dict] = []
        self.into: list[dict] = self.panels  # where new panels go: the board, or a collapsed row
        self.ids = 0
        self.y = 0
        self.x = 0
        self.row_h = 0

    def _id(self) -> int:
        self.ids += 1
        return self.ids

    def row(self, title: str, repeat: str | None = None, collapsed: bool = False) -> None:
        """A row; the panels that follow belong to it. A collapsed row holds its panels and
        queries nothing until opened (a row repeated for hundreds of harvesters stays cheap)."""
        self._newline()
        row = {"type": "row", "title": title, "collapsed": collapsed, "id": self._id(),
               "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []}
        if repeat:
            row["repeat"] = repeat
        self.panels.append(row)
        self.into = row["panels"] if collapsed else self.panels
        self.y += 1

    def _newline(self) -> None:
        if self.x:
            self.y += self.row_h
            self.x, self.row_h = 0, 0

    def _place(self, w: int, h: int) -> dict:
        if self.x + w > 24:
            self._newline()
        pos = {"h": h, "w": w, "x": self.x, "y": self.y}
        self.x += w
        self.row_h = max(self.row_h, h)
        return pos

    def panel(self, kind: str, title: str, targets: list[tuple[str, str]], unit: str = "short", w: int = 6, h: int = 6,
              description: str = "", **options) -> None:
        panel = {
            "id": self._id(), "type": kind, "title": title, "description": description, "datasource": DS,
            "gridPos": self._place(w, h),
            "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DS,
                         **({"format": "table", "instant": True} if kind == "table" else {}),
                         **({"format": "heatmap"} if kind == "heatmap" else {})}
                        for i, (expr, legend) in enumerate(targets)],
            "fieldConfig": {"defaults": {"unit": unit, **options.pop("defaults", {})}, "overrides": options.pop("overrides", [])},
            "options": options.pop("panel_options", {}),
        }
        if kind == "heatmap":
            panel["options"] = {"calculate": False, "yAxis": {"unit": unit}, "color": {"scheme": "Oranges", "mode": "scheme"},
                                "cellGap": 1}
        panel.update(options)
        self.into.append(panel)

    def stat(self, title: str, expr: str, unit: str = "short", legend: str = "{{instance}}", **kw) -> None:
        self.panel("stat", title, [(expr, legend)], unit, w=kw.pop("w", 4), h=kw.pop("h", 4), **kw)

    def series(self, title: str, targets: list[tuple[str, str]], unit: str = "short", **kw) -> None:
        self.panel("timeseries", title, targets, unit, w=kw.pop("w", 12), h=kw.pop("h", 8), **kw)

    def table(self, title: str, labels: list[tuple[str, str]], columns: list[tuple[str, str, dict]], w: int = 24, h: int = 8,
              description: str = "") -> None:
        """An instant table: one row per label set, one named column per query.

        labels: (label, column name) shown first, in this order; other labels are hidden.
        columns: (query, column name, field properties such as unit or mappings).
        """
        rename = {label: name for label, name in labels}
        rename.update({f"Value #{chr(65 + i)}": name for i, (_, name, _) in enumerate(columns)})
        order = [label for label, _ in labels] + [f"Value #{chr(65 + i)}" for i in range(len(columns))]
        self.panel("table", title, [(expr, name) for expr, name, _ in columns], "none", w=w, h=h, description=description,
                   overrides=[by_name(name, **props) for _, name, props in columns if props],
                   transformations=[
                       {"id": "merge"},
                       {"id": "organize", "options": {
                           "excludeByName": {"Time": True, "__name__": True, "job": True},
                           "indexByName": {name: i for i, name in enumerate(order)},
                           "renameByName": rename}},
                   ])

    def json(self) -> dict:
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["chia"],
            "editable": True, "schemaVersion": 39, "version": 1, "time": {"from": "now-6h", "to": "now"},
            "refresh": "1m", "timezone": "", "templating": variables(self.extra_variables), "panels": self.panels,
            "annotations": {"list": []},
            "links": [{"title": "Chia dashboards", "type": "dashboards", "tags": ["chia"], "asDropdown": True}],
        }


def s(metric: str, extra: str = "") -> str:
    """A selector with the dashboard's job and instance filters."""
    return f"{metric}{{{SEL}{', ' + extra if extra else ''}}}"


def h(metric: str, extra: str = "") -> str:
    """A selector for the harvesters the Harvesters dashboard's `node_id` variable selects."""
    return s(metric, HARVESTER + (", " + extra if extra else ""))


def with_host(expr: str) -> str:
    """Give a node_id-only (event) series the harvester's host, from the farmer's summary."""
    return f"({expr}) * ignoring (host) group_left (host) (0 * {h('chia_farmer_harvester_plots')} + 1)"


def farm_overview() -> Board:
    b = Board("chia-farm-overview", "Chia / Farm overview", "Is the farm farming, and how well?")
    b.row("Node")
    b.stat("Node synced", s("chia_full_node_synced"), defaults=SYNC_MAPPING)
    b.stat("Peak height", s("chia_full_node_peak_height"), "none")
    b.stat("Peak age", f"time() - {s('chia_full_node_peak_timestamp_seconds')}", "s")
    b.stat("Netspace", s("chia_full_node_netspace_bytes"), "bytes")
    b.stat("Expected time to win", f"chia:expected_time_to_win_seconds{{{SEL}}}", "s",
           description="As `chia farm summary` computes it (18.75 s per block); no value without plots or netspace.")
    b.panel("stat", "Harvesters", [
        (s("chia_farmer_harvesters"), "known {{instance}}"),
        (f"count by (instance) (time() - {s('chia_farmer_harvester_last_response_timestamp_seconds')} < 300)"
         f" or sum by (instance) (0 * {s('chia_farmer_harvesters')})", "responding {{instance}}"),
    ], "none", w=4, h=4, description="Harvesters the farmer lists, and those that answered a signage point in the last "
                                     "5 minutes (ChiaHarvesterSilent's default).")
    b.row("Farming")
    b.stat("Plots", f"chia:farm_plots{{{SEL}}}", "none")
    b.stat("Effective plot size", f"chia:farm_effective_plot_size_bytes{{{SEL}}}", "bytes")
    b.stat("Share of netspace", f"chia:farm_effective_plot_size_bytes{{{SEL}}} / {s('chia_full_node_netspace_bytes')}",
           "percentunit", defaults={"decimals": 6})
    b.stat("Signage points (1h)", f"sum by (instance) (increase({s('chia_farmer_signage_points_total')}[1h]))", "none")
    b.stat("Missed signage points (1h)", f"sum by (instance) (increase({s('chia_farmer_signage_points_missed_total')}[1h]))",
           "none", defaults={"thresholds": THRESHOLD_RED_FROM_1})
    b.stat("Proofs declared (24h)", f"sum by (instance) (increase({s('chia_farmer_proofs_declared_total')}[24h]))", "none")
    b.stat("Last signage point index", s("chia_farmer_last_signage_point_index"), "none")
    b.series("Signage points per minute", [
        (f"sum by (instance) (rate({s('chia_farmer_signage_points_total')}[$__rate_interval])) * 60", "received {{instance}}"),
        (f"sum by (instance) (rate({s('chia_farmer_signage_points_missed_total')}[$__rate_interval])) * 60", "missed {{instance}}"),
    ], "none")
    b.series("Proofs found per hour", [
        (f"sum by (instance) (rate({s('chia_farmer_harvester_proofs_found_total')}[$__rate_interval])) * 3600", "proofs {{instance}}"),
        (f"sum by (instance) (rate({s('chia_farmer_proofs_declared_total')}[$__rate_interval])) * 3600", "declared {{instance}}"),
    ], "none")
    b.series("Lookup time percentiles", [
        (f"histogram_quantile({q}, sum by (le) (rate({s('chia_farmer_harvester_lookup_duration_seconds_bucket')}[$__rate_interval])))",
         f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)
    ], "s", description="ChiaLookupsSlow warns over a 2 s p95; Chia's harvester warns over 8 s; proofs are lost past "
                        "~28 s (the infusion point).")
    b.panel("heatmap", "Lookup time heatmap",
            [(f"sum by (le) (increase({s('chia_farmer_harvester_lookup_duration_seconds_bucket')}[$__rate_interval]))", "{{le}}")],
            "s", w=12, h=8)
    b.series("Plots and effective size", [
        (f"chia:farm_plots{{{SEL}}}", "plots {{instance}}"),
        (f"chia:farm_effective_plot_size_bytes{{{SEL}}}", "effective size {{instance}}"),
    ], "none", w=12, overrides=[right_axis("B", "bytes")],
        description="Plots (left axis) and their effective size, compression counted (right axis).")
    b.series("Effective plot size vs. netspace share", [
        (f"chia:farm_effective_plot_size_bytes{{{SEL}}}", "effective size {{instance}}"),
        (f"chia:farm_effective_plot_size_bytes{{{SEL}}} / {s('chia_full_node_netspace_bytes')}", "share of netspace {{instance}}"),
    ], "bytes", w=12, overrides=[right_axis("B", "percentunit", decimals=6)],
        description="Effective size (left axis) and the farm's share of the netspace (right axis): the chance to win each block.")
    b.row("Wallet and pools")
    b.stat("Wallet balance (XCH)", f"chia:wallet_confirmed_balance_xch{{{SEL}}}", XCH, legend="{{fingerprint}}", w=6,
           description="Confirmed XCH in standard and pooling wallets; CAT, NFT and DID wallets are not XCH.")
    b.stat("Farmed (XCH)", f"{s('chia_wallet_farmed_amount_mojos')} / 1e12", XCH, legend="{{fingerprint}}", w=6)
    b.stat("Blocks won", s("chia_wallet_blocks_won"), "none", legend="{{fingerprint}}", w=6)
    # 0 until the wallet has farmed a block: no value ("never"), not 1970.
    b.stat("Last block farmed", f"({s('chia_wallet_last_time_farmed_timestamp_seconds')} > 0) * 1000", "dateTimeFromNow",
           legend="{{fingerprint}}", w=6, defaults={"noValue": "never"})
    b.series("Pool points (24h)", [
        (s("chia_farmer_pool_points_found_24h"), "found {{pool_url}}"),
        (s("chia_farmer_pool_points_acknowledged_24h"), "acknowledged {{pool_url}}"),
    ], "none")
    b.series("Partials per hour and pool errors", [
        (f"sum by (pool_url, result) (rate({s('chia_farmer_pool_partials_since_start')}[$__rate_interval])) * 3600",
         "{{result}}/h {{pool_url}}"),
        (s("chia_farmer_pool_errors_24h"), "pool errors (24h) {{pool_url}}"),
    ], "none", overrides=[right_axis("B", "none")],
        description="Partials per hour by result, as the farmer counts them (valid: accepted; a pool's refusal or "
                    "HTTP error is invalid, stale or insufficient) (left axis); errors the pool returned over the "
                    "last 24 hours (right axis).")
    return b


def harvesters() -> Board:
    node_id = query_var(
        "node_id", f"query_result(max by (node_id, host) (chia_farmer_harvester_plots{{{SEL}}}))", label="Harvester",
        # shows each harvester's host, selects its node_id (the farmer's summary labels sort host first)
        regex='/host="(?<text>[^"]*)".*node_id="(?<value>[^"]*)"/')
    b = Board("chia-harvesters", "Chia / Harvesters",
              "Every harvester as the farmer sees it (node_id, host), one repeated row per selected harvester, "
              "and this host's own harvester.", extra_variables=[node_id])
    b.row("All harvesters")
    b.table("Harvesters", [("host", "Host"), ("node_id", "Node ID"), ("instance", "Farmer")], [
        (h("chia_farmer_harvester_plots"), "Plots", {}),
        (h("chia_farmer_harvester_effective_plot_size_bytes"), "Effective size", {"unit": "bytes"}),
        (h("chia_farmer_harvester_plot_size_bytes"), "Raw size", {"unit": "bytes"}),
        (h("chia_farmer_harvester_plots_failed_to_open"), "Failed to open",
         {"thresholds": THRESHOLD_RED_FROM_1, "custom.cellOptions": {"type": "color-text"}}),
        (h("chia_farmer_harvester_plots_no_key"), "No key",
         {"thresholds": THRESHOLD_RED_FROM_1, "custom.cellOptions": {"type": "color-text"}}),
        (h("chia_farmer_harvester_plots_duplicate"), "Duplicates", {}),
        (with_host(f"time() - {h('chia_farmer_harvester_last_response_timestamp_seconds')}"), "Last response",
         {"unit": "s", "thresholds": RESPONSE_AGE_THRESHOLDS, "custom.cellOptions": {"type": "color-text"}}),
        (h("chia_farmer_harvester_syncing"), "Plot sync", {"mappings": HARVESTER_SYNC_MAPPING,
                                                           "custom.cellOptions": {"type": "color-text"}}),
        (f"time() - {h('chia_farmer_harvester_last_sync_timestamp_seconds')}", "Last plot sync", {"unit": "s"}),
    ], h=9, description="One row per harvester the farmer lists. Last response: seconds since it answered a signage point "
                        "(empty once the exporter forgot a silent harvester; ChiaHarvesterSilent fires over 300 s).")
    b.series("Plots per harvester", [(h("chia_farmer_harvester_plots"), "{{host}} {{node_id}}")], "none")
    b.series("Effective size per harvester", [(h("chia_farmer_harvester_effective_plot_size_bytes"), "{{host}} {{node_id}}")],
             "bytes")
    b.series("Failed, no-key and duplicate plots", [
        (h("chia_farmer_harvester_plots_failed_to_open"), "failed {{host}}"),
        (h("chia_farmer_harvester_plots_no_key"), "no key {{host}}"),
        (h("chia_farmer_harvester_plots_duplicate"), "duplicate {{host}}"),
    ], "none")
    b.series("Last response age", [
        (with_host(f"time() - {h('chia_farmer_harvester_last_response_timestamp_seconds')}"), "{{host}} {{node_id}}"),
    ], "s", description="Seconds since each harvester answered a signage point (ChiaHarvesterSilent over 300 s).",
        defaults={"thresholds": RESPONSE_AGE_THRESHOLDS, "custom": {"thresholdsStyle": {"mode": "line"}}})
    b.series("Lookup time p95 per harvester",
             [(with_host(f"chia:harvester_lookup_duration_seconds:p95{{{SEL}, {HARVESTER}}}"), "{{host}} {{node_id}}")], "s")
    b.series("Slow lookups per hour: over 5 s (at risk), over 30 s (proofs lost)", [
        (with_host(f"increase({h('chia_farmer_harvester_lookup_duration_seconds_count')}[1h])"
                   f" - ignoring (le) increase({h('chia_farmer_harvester_lookup_duration_seconds_bucket', LE_5S)}[1h])"),
         "over 5 s {{host}} {{node_id}}"),
        (with_host(f"increase({h('chia_farmer_harvester_lookup_duration_seconds_count')}[1h])"
                   f" - ignoring (le) increase({h('chia_farmer_harvester_lookup_duration_seconds_bucket', LE_30S)}[1h])"),
         "over 30 s {{host}} {{node_id}}"),
    ], "none", description="ChiaLookupsTooSlow: critical from 3 over 30 s in an hour, warning from 3 over 5 s in 6 hours "
                           "(defaults). Chia's harvester warns over 8 s; proofs are lost past ~28 s.")
    b.panel("heatmap", "Lookup time heatmap (selected harvesters)",
            [(f"sum by (le) (increase({h('chia_farmer_harvester_lookup_duration_seconds_bucket')}[$__rate_interval]))", "{{le}}")],
            "s", w=12, h=8)
    b.series("Plots passing the filter per minute", [
        (with_host(f"rate({h('chia_farmer_harvester_plots_passed_filter_total')}[$__rate_interval]) * 60"),
         "{{host}} {{node_id}}"),
    ], "none")
    b.series("Plot sync", [
        (h("chia_farmer_harvester_syncing"), "syncing {{host}}"),
        (f"time() - {h('chia_farmer_harvester_last_sync_timestamp_seconds')}", "since last sync {{host}}"),
    ], "none", w=24, overrides=[right_axis("B", "s")],
        description="1 while the farmer syncs a harvester's plot list (left axis); time since the last completed sync (right).")

    # One row per selected harvester (Grafana repeats it for each value of the node_id variable),
    # collapsed: open the harvesters you want to look at.
    b.row("Harvester ${node_id:text} (${node_id})", repeat="node_id", collapsed=True)
    b.stat("Plots", h("chia_farmer_harvester_plots"), "none", legend="{{host}}", w=3)
    b.stat("Effective size", h("chia_farmer_harvester_effective_plot_size_bytes"), "bytes", legend="{{host}}", w=3)
    b.stat("Raw size", h("chia_farmer_harvester_plot_size_bytes"), "bytes", legend="{{host}}", w=3)
    b.stat("Failed to open", h("chia_farmer_harvester_plots_failed_to_open"), "none", legend="{{host}}", w=3,
           defaults={"thresholds": THRESHOLD_RED_FROM_1})
    b.stat("No key", h("chia_farmer_harvester_plots_no_key"), "none", legend="{{host}}", w=3,
           defaults={"thresholds": THRESHOLD_RED_FROM_1})
    b.stat("Duplicates", h("chia_farmer_harvester_plots_duplicate"), "none", legend="{{host}}", w=3)
    b.stat("Last response", f"time() - {h('chia_farmer_harvester_last_response_timestamp_seconds')}", "s",
           legend="{{node_id}}", w=3, defaults={"thresholds": RESPONSE_AGE_THRESHOLDS})
    b.stat("Plot sync", h("chia_farmer_harvester_syncing"), "none", legend="{{host}}", w=3,
           defaults={"mappings": HARVESTER_SYNC_MAPPING})
    b.panel("heatmap", "Lookup time heatmap",
            [(f"sum by (le) (increase({h('chia_farmer_harvester_lookup_duration_seconds_bucket')}[$__rate_interval]))", "{{le}}")],
            "s", w=12, h=8)
    b.series("Lookup time percentiles", [
        (f"histogram_quantile({q}, sum by (le) (rate({h('chia_farmer_harvester_lookup_duration_seconds_bucket')}[$__rate_interval])))",
         f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)
    ], "s", description="ChiaLookupsSlow warns over a 2 s p95; Chia's harvester warns over 8 s; proofs are lost past "
                        "~28 s.")

    b.row("This host's harvester")
    b.series("Plots by kind", [(s("chia_harvester_plots"), "k{{k_size}} {{plot_format}} C{{compression_level}} {{pool_type}}")], "none")
    b.series("Local lookup time percentiles", [
        (f"histogram_quantile({q}, sum by (instance, le) (rate({s('chia_harvester_lookup_duration_seconds_bucket')}[$__rate_interval])))",
         f"p{int(q * 100)} {{{{instance}}}}") for q in (0.5, 0.95)
    ], "s")
    b.stat("Plots failing to open", s("chia_harvester_plots_failed_to_open"), "none", defaults={"thresholds": THRESHOLD_RED_FROM_1})
    b.stat("Plots without this farm's keys", s("chia_harvester_plots_not_found"), "none",
           description="Plots whose farmer or pool key is not one of this farm's (Chia lists them as not found): "
                       "they are not farmed. Add the key, or move the plots to the farm they belong to.")
    b.stat("Proofs found (24h)", f"increase({s('chia_harvester_proofs_found_total')}[24h]) + "
                                 f"increase({s('chia_harvester_v2_partial_proofs_found_total')}[24h])", "none",
           description="Proofs from v1 plots and partial proofs from v2 plots that this harvester found.")
    b.stat("Plot directories", s("chia_harvester_plot_directories"), "none")
    b.stat("Total plots (lookups)", s("chia_harvester_total_plots"), "none")
    return b


def node_and_wallet() -> Board:
    b = Board("chia-node-wallet", "Chia / Node and wallet", "Full node health, mempool, blocks, connections and wallets.")
    b.row("Full node")
    b.stat("Synced", s("chia_full_node_synced"), defaults=SYNC_MAPPING)
    b.stat("Sync mode", s("chia_full_node_sync_mode"), "none")
    b.stat("Difficulty", s("chia_full_node_difficulty"), "none")
    b.stat("Average block time", s("chia_full_node_average_block_time_seconds"), "s")
    b.stat("Database size", f"sum by (instance) ({s('chia_full_node_database_size_bytes')})", "bytes")
    b.stat("Reorgs (24h)", f"increase({s('chia_full_node_reorgs_total')}[24h])", "none")
    b.series("Height", [(s("chia_full_node_peak_height"), "peak {{instance}}"),
                        (s("chia_full_node_sync_tip_height"), "sync tip {{instance}}"),
                        (s("chia_full_node_sync_progress_height"), "sync progress {{instance}}")], "none")
    b.series("Connections by type", [(s("chia_full_node_connections"), "{{node_type}}")], "none")
    b.series("Mempool", [(s("chia_full_node_mempool_items"), "items"),
                         (f"{s('chia_full_node_mempool_cost')} / {s('chia_full_node_mempool_max_total_cost')}", "cost used")],
             "none", overrides=[right_axis("B", "percentunit")],
             description="Transactions waiting (left axis) and how full the mempool is by cost (right axis).")
    b.series("Fee rates", [(s("chia_full_node_fee_estimate_mojos_per_cost"), "estimate for {{target_seconds}} s"),
                           (s("chia_full_node_mempool_min_fee_mojos_per_cost"), "mempool minimum"),
                           (s("chia_full_node_last_block_fee_rate_mojos_per_cost"), "last transaction block")],
             MOJO_PER_COST,
             description="The fee per unit of cost the node estimates for inclusion within 60, 300 and 900 s, the "
                         "lowest fee rate the mempool accepts now, and the rate the last transaction block paid.")
    b.series("Fees (XCH)", [(f"{s('chia_full_node_mempool_fees_mojos')} / 1e12", "fees waiting in the mempool"),
                            (f"{s('chia_full_node_last_block_fees_mojos')} / 1e12", "fees of the last transaction block")], XCH)
    b.series("Block validation time", [
        (f"histogram_quantile(0.95, sum by (le) (rate({s('chia_full_node_block_validation_duration_seconds_bucket')}[$__rate_interval])))",
         "validation p95"),
        (f"histogram_quantile(0.95, sum by (le) (rate({s('chia_full_node_block_pre_validation_duration_seconds_bucket')}[$__rate_interval])))",
         "pre-validation p95"),
    ], "s")
    b.series("Blocks and reorgs per hour", [
        (f"rate({s('chia_full_node_blocks_total')}[$__rate_interval]) * 3600", "blocks/h"),
        (f"rate({s('chia_full_node_transaction_blocks_total')}[$__rate_interval]) * 3600", "transaction blocks/h"),
        (f"rate({s('chia_full_node_reorgs_total')}[$__rate_interval]) * 3600", "reorgs/h"),
        (s("chia_full_node_last_reorg_depth"), "last reorg depth (blocks)"),
    ], "none", overrides=[right_axis("D", "none")],
        description="Blocks and reorgs per hour (left axis); the depth of the last reorg in blocks (right axis).")
    b.series("Block cost", [(s("chia_full_node_last_block_cost"), "last block cost"),
                            (s("chia_full_node_block_max_cost"), "max block cost")], "none")
    b.series("Compact proofs", [(s("chia_full_node_compact_blocks"), "compact"), (s("chia_full_node_uncompact_blocks"), "uncompact")],
             "none")
    b.row("Wallet")
    b.stat("Wallet synced", s("chia_wallet_synced"), legend="{{fingerprint}}", defaults=SYNC_MAPPING)
    b.stat("Wallet height", s("chia_wallet_height"), "none", legend="{{fingerprint}}")
    b.table("XCH balances", [("fingerprint", "Key"), ("wallet_id", "Wallet"), ("wallet_type", "Type")], [
        (f"{s('chia_wallet_confirmed_balance_mojos', XCH_WALLETS)} / 1e12", "Confirmed", {"unit": XCH}),
        (f"{s('chia_wallet_spendable_balance_mojos', XCH_WALLETS)} / 1e12", "Spendable", {"unit": XCH}),
        (f"{s('chia_wallet_unconfirmed_balance_mojos', XCH_WALLETS)} / 1e12", "Unconfirmed", {"unit": XCH}),
        (s("chia_wallet_unspent_coins", XCH_WALLETS), "Coins", {}),
    ], w=16, h=8, description="Standard and pooling wallets (a self-pooling plot NFT's claimable rewards).")
    b.series("Confirmed XCH per wallet",
             [(f"{s('chia_wallet_confirmed_balance_mojos', XCH_WALLETS)} / 1e12", "{{fingerprint}} {{wallet_id}} {{wallet_type}}")],
             XCH)
    b.series("CAT balances (tokens)",
             [(f"{s('chia_wallet_confirmed_balance_mojos', CAT_WALLETS)} / 1000", "{{fingerprint}} {{wallet_id}} {{asset_id}}")],
             "none", description="CAT wallets count their token's mojos, 1000 to a token: shown here in tokens, by asset id.")
    b.series("Pending", [(f"{s('chia_wallet_pending_change_mojos', XCH_WALLETS)} / 1e12", "change {{wallet_id}}"),
                         (s("chia_wallet_pending_coin_removals", XCH_WALLETS), "coin removals {{wallet_id}}")], XCH,
             overrides=[right_axis("B", "none")],
             description="Change on its way back to XCH wallets (left axis) and coins being spent (right axis).")
    b.series("Wallet connections", [(s("chia_wallet_connections"), "{{node_type}}")], "none")
    b.series("Farming rewards (XCH)", [(f"{s('chia_wallet_farmer_reward_amount_mojos')} / 1e12", "farmer rewards"),
                                       (f"{s('chia_wallet_pool_reward_amount_mojos')} / 1e12", "pool rewards"),
                                       (f"{s('chia_wallet_fee_amount_mojos')} / 1e12", "fees")], XCH)
    return b


def exporter_health() -> Board:
    b = Board("chia-exporter", "Chia / Exporter health", "Is the exporter seeing everything?")
    b.stat("Exporter up", f'up{{{SEL}}}', defaults=UP_MAPPING)
    b.stat("WebSocket connected", s("chia_exporter_websocket_connected"), defaults=UP_MAPPING)
    b.stat("WebSocket reconnects (24h)", f"increase({s('chia_exporter_websocket_reconnects_total')}[24h])", "none")
    b.stat("Event errors (1h)", f"sum by (instance) (increase({s('chia_exporter_event_errors_total')}[1h]))", "none")
    b.panel("table", "Build", [(s("chia_exporter_build_info"), ""), (s("chia_version_info"), ""), (s("chia_network_info"), "")],
            "none", w=8, h=4, transformations=[{"id": "merge"}])
    b.series("Collector success", [(s("chia_exporter_collector_success"), "{{instance}} {{collector}}")], "none")
    b.series("Collector poll duration", [(s("chia_exporter_collector_duration_seconds"), "{{instance}} {{collector}}")], "s")
    b.series("Data age per collector", [
        (f"time() - {s('chia_exporter_collector_last_success_timestamp_seconds')} and {s('chia_exporter_collector_last_success_timestamp_seconds')} > 0",
         "{{instance}} {{collector}}")], "s")
    b.series("RPC calls per minute by outcome", [
        (f"sum by (collector, outcome) (rate({s('chia_exporter_rpc_requests_total')}[$__rate_interval])) * 60", "{{collector}} {{outcome}}")],
        "none")
    b.series("Events per minute", [
        (f"sum by (origin, command) (rate({s('chia_exporter_events_total')}[$__rate_interval])) * 60", "{{origin}} {{command}}")], "none")
    b.series("Time since the last event", [
        (f"time() - {s('chia_exporter_last_event_timestamp_seconds')}", "{{origin}}")], "s")
    b.series("Services the daemon runs", [(s("chia_daemon_service_running"), "{{component}}")], "none")
    return b


BOARDS = {"chia-farm-overview": farm_overview, "chia-harvesters": harvesters, "chia-node-wallet": node_and_wallet,
          "chia-exporter": exporter_health}


def render_all() -> dict[str, str]:
    return {f"{name}.json": json.dumps(make().json(), indent=2, sort_keys=True) + "\n" for name, make in BOARDS.items()}


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
