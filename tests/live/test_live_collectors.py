"""Every polled collector against the real stack: 6 plots (three k19 v1, three k20 v2), a farmer
with one local harvester, a standard wallet with farmed coins, the daemon."""

from __future__ import annotations

from tests.live.conftest import promtool_check, samples


def _all_collectors_ok(text: str) -> bool:
    return all(f'chia_exporter_collector_success{{collector="{c}"}} 1.0' in text
               for c in ("full_node", "farmer", "harvester", "wallet", "daemon"))


def test_every_collector_serves_the_stack_values(chia_stack, run_exporter):
    exporter = run_exporter()
    text = exporter.wait_for(_all_collectors_ok, timeout=60)
    got = samples(text)

    # Farmer: the one local harvester, seen through get_harvesters_summary.
    summary = chia_stack.rpc("farmer", "get_harvesters_summary")["harvesters"]
    assert got["chia_farmer_harvesters"] == len(summary) == 1
    h = summary[0]["connection"]
    key = f'node_id="{h["node_id"]}"'
    plots = [v for k, v in got.items() if k.startswith("chia_farmer_harvester_plots{") and key in k]
    assert plots == [6.0]
    assert any(k.startswith("chia_farmer_reward_target_info{") for k in got)
    assert got['chia_farmer_connections{node_type="full_node"}'] >= 1
    assert got['chia_farmer_connections{node_type="harvester"}'] == 1

    # Harvester: plots by format, never a k-size of 147 for v2 plots.
    by_plot = {k: v for k, v in got.items() if k.startswith("chia_harvester_plots{")}
    assert sum(by_plot.values()) == 6
    assert sum(v for k, v in by_plot.items() if 'plot_format="v1"' in k and 'k_size="19"' in k) == 3
    assert sum(v for k, v in by_plot.items() if 'plot_format="v2"' in k and 'k_size="20"' in k) == 3
    assert not any(f'k_size="{0x80 | s}"' in k for k in by_plot for s in range(16))  # 0x80|strength is no k
    strengths = {k: v for k, v in got.items() if k.startswith("chia_harvester_v2_plots{")}
    assert sum(strengths.values()) == 3
    assert got["chia_harvester_plots_failed_to_open"] == 0
    assert got["chia_harvester_plot_directories"] >= 1

    # Wallet: synced, the standard wallet's balance as the wallet reports it, farmed coins.
    balance = chia_stack.rpc("wallet", "get_wallet_balance", {"wallet_id": 1})["wallet_balance"]
    wallet = [k for k in got if k.startswith("chia_wallet_confirmed_balance_mojos{") and 'wallet_id="1"' in k]
    assert len(wallet) == 1 and 'wallet_type="standard"' in wallet[0]
    assert got[wallet[0]] == balance["confirmed_wallet_balance"] > 0
    synced = [v for k, v in got.items() if k == "chia_wallet_synced" or k.startswith("chia_wallet_synced{")]
    assert synced == [1.0]
    farmed = [v for k, v in got.items() if k.startswith("chia_wallet_farmed_amount_mojos")]
    assert farmed and farmed[0] > 0

    # Daemon: the services it runs, and every component's version.
    for component in ("full_node", "farmer", "harvester", "wallet"):
        assert got[f'chia_daemon_service_running{{component="{component}"}}'] == 1.0
        assert got[f'chia_version_info{{component="{component}",version="2.7.5"}}'] == 1.0
    assert got['chia_version_info{component="daemon",version="2.7.5"}'] == 1.0
    promtool_check(text)
