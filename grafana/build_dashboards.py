#!/usr/bin/env python3
"""Write the Grafana dashboards in grafana/dashboards/ from one description.

    python grafana/build_dashboards.py

Every panel's datasource is the `datasource` variable, every query is filtered by the `job` and
`instance` variables, and units are set, so that the four dashboards stay consistent. The
generated JSON is committed; a test checks that it is up to date and that every query parses and
names only metrics the exporter serves (or recording rules).
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'job=~"$job", instance=~"$instance"'


def variables() -> dict:
    def query_var(name: str, query: str) -> dict:
        return {"name": name, "label": name, "type": "query", "datasource": DS, "refresh": 2, "includeAll": True,
                "multi": True, "allValue": ".*", "current": {"text": "All", "value": "$__all"},
                "query": {"query": query, "refId": name}, "definition": query, "sort": 1}

    return {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0},
        query_var("job", "label_values(chia_exporter_build_info, job)"),
        query_var("instance", 'label_values(chia_exporter_build_info{job=~"$job"}, instance)'),
    ]}


class Board:
    def __init__(self, uid: str, title: str, description: str) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.panels: list[dict] = []
        self.y = 0
        self.x = 0
        self.row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "id": len(self.panels) + 1,
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}, "panels": []})
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
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description, "datasource": DS,
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
        self.panels.append(panel)

    def stat(self, title: str, expr: str, unit: str = "short", legend: str = "{{instance}}", **kw) -> None:
        self.panel("stat", title, [(expr, legend)], unit, w=kw.pop("w", 4), h=kw.pop("h", 4), **kw)

    def series(self, title: str, targets: list[tuple[str, str]], unit: str = "short", **kw) -> None:
        self.panel("timeseries", title, targets, unit, w=kw.pop("w", 12), h=kw.pop("h", 8), **kw)

    def json(self) -> dict:
        return {
            "uid": self.uid, "title": self.title, "description": self.description, "tags": ["chia"],
            "editable": True, "schemaVersion": 39, "version": 1, "time": {"from": "now-6h", "to": "now"},
            "refresh": "1m", "timezone": "", "templating": variables(), "panels": self.panels,
            "annotations": {"list": []},
            "links": [{"title": "Chia dashboards", "type": "dashboards", "tags": ["chia"], "asDropdown": True}],
        }


def s(metric: str, extra: str = "") -> str:
    """A selector with the dashboard's job and instance filters."""
    return f"{metric}{{{SEL}{', ' + extra if extra else ''}}}"


SYNC_MAPPING = {"mappings": [{"type": "value", "options": {"0": {"text": "NOT SYNCED", "color": "red"},
                                                             "1": {"text": "Synced", "color": "green"}}}]}


def farm_overview() -> Board:
    b = Board("chia-farm-overview", "Chia / Farm overview", "Is the farm farming, and how well?")
    b.row("Node")
    b.stat("Node synced", s("chia_full_node_synced"), defaults=SYNC_MAPPING)
    b.stat("Peak height", s("chia_full_node_peak_height"), "none")
    b.stat("Peak age", f"time() - {s('chia_full_node_peak_timestamp_seconds')}", "s")
    b.stat("Netspace", s("chia_full_node_netspace_bytes"), "bytes")
    b.stat("Expected time to win", f"chia:expected_time_to_win_seconds{{{SEL}}}", "s")
    b.stat("Harvesters", s("chia_farmer_harvesters"), "none")
    b.row("Farming")
    b.stat("Plots", f"chia:farm_plots{{{SEL}}}", "none")
    b.stat("Effective plot size", f"chia:farm_effective_plot_size_bytes{{{SEL}}}", "bytes")
    b.stat("Signage points (1h)", f"sum by (instance) (increase({s('chia_farmer_signage_points_total')}[1h]))", "none")
    b.stat("Missed signage points (1h)", f"sum by (instance) (increase({s('chia_farmer_signage_points_missed_total')}[1h]))",
           "none", defaults={"thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None},
                                                                          {"color": "red", "value": 1}]}})
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
    ], "s", description="Over 5 s a lookup loses the signage point; warnings start at 1-2 s.")
    b.panel("heatmap", "Lookup time heatmap",
            [(f"sum by (le) (increase({s('chia_farmer_harvester_lookup_duration_seconds_bucket')}[$__rate_interval]))", "{{le}}")],
            "s", w=12, h=8)
    b.series("Plots and effective size", [
        (f"chia:farm_plots{{{SEL}}}", "plots {{instance}}"),
    ], "none", w=12)
    b.series("Effective plot size vs. netspace share", [
        (f"chia:farm_effective_plot_size_bytes{{{SEL}}}", "effective size {{instance}}"),
    ], "bytes", w=12)
    b.row("Wallet and pools")
    b.stat("Wallet balance (XCH)", f"chia:wallet_confirmed_balance_xch{{{SEL}}}", "none", legend="{{fingerprint}}", w=6)
    b.stat("Farmed (XCH)", f"{s('chia_wallet_farmed_amount_mojos')} / 1e12", "none", legend="{{fingerprint}}", w=6)
    b.stat("Blocks won", s("chia_wallet_blocks_won"), "none", legend="{{fingerprint}}", w=6)
    b.stat("Last block farmed", f"{s('chia_wallet_last_time_farmed_timestamp_seconds')} * 1000", "dateTimeFromNow",
           legend="{{fingerprint}}", w=6)
    b.series("Pool points (24h)", [
        (s("chia_farmer_pool_points_found_24h"), "found {{pool_url}}"),
        (s("chia_farmer_pool_points_acknowledged_24h"), "acknowledged {{pool_url}}"),
    ], "none")
    b.series("Partials per hour", [
        (f"sum by (pool_url) (rate({s('chia_farmer_partials_submitted_total')}[$__rate_interval])) * 3600", "submitted {{pool_url}}"),
        (f"sum by (pool_url) (rate({s('chia_farmer_partials_failed_total')}[$__rate_interval])) * 3600", "failed {{pool_url}}"),
        (s("chia_farmer_pool_errors_24h"), "pool errors 24h {{pool_url}}"),
    ], "none")
    return b


def harvesters() -> Board:
    b = Board("chia-harvesters", "Chia / Harvesters", "One row per harvester, as the farmer sees it.")
    b.row("All harvesters")
    table_targets = [
        (s("chia_farmer_harvester_plots"), "plots"),
        (s("chia_farmer_harvester_effective_plot_size_bytes"), "effective size"),
        (s("chia_farmer_harvester_plots_failed_to_open"), "failed"),
        (s("chia_farmer_harvester_plots_no_key"), "no key"),
        (s("chia_farmer_harvester_plots_duplicate"), "duplicates"),
        (s("chia_farmer_harvester_syncing"), "syncing"),
    ]
    b.panel("table", "Harvesters", table_targets, "short", w=24, h=8,
            transformations=[{"id": "merge"}, {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}}}])
    b.series("Plots per harvester", [(s("chia_farmer_harvester_plots"), "{{host}} {{node_id}}")], "none")
    b.series("Effective size per harvester", [(s("chia_farmer_harvester_effective_plot_size_bytes"), "{{host}} {{node_id}}")], "bytes")
    b.series("Failed, no-key and duplicate plots", [
        (s("chia_farmer_harvester_plots_failed_to_open"), "failed {{host}}"),
        (s("chia_farmer_harvester_plots_no_key"), "no key {{host}}"),
        (s("chia_farmer_harvester_plots_duplicate"), "duplicate {{host}}"),
    ], "none")
    b.series("Last response age", [
        (f"time() - {s('chia_farmer_harvester_last_response_timestamp_seconds')}", "{{node_id}}"),
    ], "s", description="Seconds since each harvester answered a signage point (alert over 300 s).")
    b.series("Lookup time p95 per harvester", [(f"chia:harvester_lookup_duration_seconds:p95{{{SEL}}}", "{{node_id}}")], "s")
    b.series("Share of lookups over 5 s", [(f"chia:harvester_lookups_over_5s:ratio_rate10m{{{SEL}}}", "{{node_id}}")], "percentunit")
    b.panel("heatmap", "Lookup time heatmap (all harvesters)",
            [(f"sum by (le) (increase({s('chia_farmer_harvester_lookup_duration_seconds_bucket')}[$__rate_interval]))", "{{le}}")],
            "s", w=12, h=8)
    b.series("Plots passing the filter per minute", [
        (f"sum by (node_id) (rate({s('chia_farmer_harvester_plots_passed_filter_total')}[$__rate_interval])) * 60", "{{node_id}}"),
    ], "none")
    b.series("Sync state and last plot sync", [
        (s("chia_farmer_harvester_syncing"), "syncing {{host}}"),
        (f"time() - {s('chia_farmer_harvester_last_sync_timestamp_seconds')}", "since last sync {{host}}"),
    ], "none", w=24)
    b.row("This host's harvester")
    b.series("Plots by kind", [(s("chia_harvester_plots"), "k{{k_size}} {{plot_format}} C{{compression_level}} {{pool_type}}")], "none")
    b.series("Local lookup time percentiles", [
        (f"histogram_quantile({q}, sum by (instance, le) (rate({s('chia_harvester_lookup_duration_seconds_bucket')}[$__rate_interval])))",
         f"p{int(q * 100)} {{{{instance}}}}") for q in (0.5, 0.95)
    ], "s")
    b.stat("Plots failing to open", s("chia_harvester_plots_failed_to_open"), "none")
    b.stat("Plots not found", s("chia_harvester_plots_not_found"), "none")
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
                         (f"{s('chia_full_node_mempool_cost')} / {s('chia_full_node_mempool_max_total_cost')}", "cost used (ratio)")],
             "none")
    b.series("Fees", [(s("chia_full_node_fee_estimate_mojos_per_cost"), "estimate {{target_seconds}} s (mojo/cost)"),
                      (s("chia_full_node_mempool_min_fee_mojos_per_cost"), "mempool minimum (mojo/cost)"),
                      (f"{s('chia_full_node_mempool_fees_mojos')} / 1e12", "mempool fees (XCH)"),
                      (f"{s('chia_full_node_last_block_fees_mojos')} / 1e12", "last block fees (XCH)")], "none")
    b.series("Block validation time", [
        (f"histogram_quantile(0.95, sum by (le) (rate({s('chia_full_node_block_validation_duration_seconds_bucket')}[$__rate_interval])))",
         "validation p95"),
        (f"histogram_quantile(0.95, sum by (le) (rate({s('chia_full_node_block_pre_validation_duration_seconds_bucket')}[$__rate_interval])))",
         "pre-validation p95"),
    ], "s")
    b.series("Blocks and reorgs per hour", [
        (f"rate({s('chia_full_node_blocks_total')}[$__rate_interval]) * 3600", "blocks"),
        (f"rate({s('chia_full_node_transaction_blocks_total')}[$__rate_interval]) * 3600", "transaction blocks"),
        (f"rate({s('chia_full_node_reorgs_total')}[$__rate_interval]) * 3600", "reorgs"),
        (s("chia_full_node_last_reorg_depth"), "last reorg depth"),
    ], "none")
    b.series("Block cost", [(s("chia_full_node_last_block_cost"), "last block cost"),
                            (s("chia_full_node_block_max_cost"), "max block cost")], "none")
    b.series("Compact proofs", [(s("chia_full_node_compact_blocks"), "compact"), (s("chia_full_node_uncompact_blocks"), "uncompact")],
             "none")
    b.row("Wallet")
    b.stat("Wallet synced", s("chia_wallet_synced"), legend="{{fingerprint}}", defaults=SYNC_MAPPING)
    b.stat("Wallet height", s("chia_wallet_height"), "none", legend="{{fingerprint}}")
    b.panel("table", "Balances", [
        (f"{s('chia_wallet_confirmed_balance_mojos')} / 1e12", "confirmed (XCH)"),
        (f"{s('chia_wallet_spendable_balance_mojos')} / 1e12", "spendable (XCH)"),
        (s("chia_wallet_unspent_coins"), "coins"),
    ], "none", w=16, h=8, transformations=[{"id": "merge"}])
    b.series("Confirmed balance per wallet (XCH; CATs in tokens x 10^-9)",
             [(f"{s('chia_wallet_confirmed_balance_mojos')} / 1e12", "{{wallet_id}} {{wallet_type}} {{asset_id}}")], "none")
    b.series("Pending", [(s("chia_wallet_pending_coin_removals"), "coin removals {{wallet_id}}"),
                         (f"{s('chia_wallet_pending_change_mojos')} / 1e12", "change (XCH) {{wallet_id}}")], "none")
    b.series("Wallet connections", [(s("chia_wallet_connections"), "{{node_type}}")], "none")
    b.series("Farming rewards (XCH)", [(f"{s('chia_wallet_farmer_reward_amount_mojos')} / 1e12", "farmer rewards"),
                                       (f"{s('chia_wallet_pool_reward_amount_mojos')} / 1e12", "pool rewards"),
                                       (f"{s('chia_wallet_fee_amount_mojos')} / 1e12", "fees")], "none")
    return b


def exporter_health() -> Board:
    b = Board("chia-exporter", "Chia / Exporter health", "Is the exporter seeing everything?")
    b.stat("Exporter up", f'up{{{SEL}}}', defaults={"mappings": [{"type": "value", "options": {
        "0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]})
    b.stat("WebSocket connected", s("chia_exporter_websocket_connected"), defaults={"mappings": [{"type": "value", "options": {
        "0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]})
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
