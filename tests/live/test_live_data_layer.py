"""The DataLayer beside the real stack: a store created and confirmed on the simulator chain,
seen by the exporter with no configuration but CHIA_ROOT, over HTTPS and through the daemon."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from tests.live.conftest import promtool_check, samples


@pytest.fixture(scope="module")
def data_layer(chia_stack):
    config_path = chia_stack.root / "config" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    # The stack shifted the wallet's port; the DataLayer must reach it there.
    if config["data_layer"]["wallet_peer"]["port"] != config["wallet"]["rpc_port"]:
        config["data_layer"]["wallet_peer"]["port"] = config["wallet"]["rpc_port"]
        config_path.write_text(yaml.safe_dump(config))
    chia = [f"{chia_stack.env['CHIA_VENV']}/bin/chia"]
    env = {**__import__("os").environ, "CHIA_ROOT": str(chia_stack.root), "CHIA_KEYS_ROOT": chia_stack.env["CHIA_KEYS_ROOT"]}
    subprocess.run(chia + ["start", "data"], env=env, check=True, capture_output=True, timeout=120)
    chia_stack.env["CHIA_DATA_LAYER_RPC_PORT"] = str(config["data_layer"]["rpc_port"])
    for _ in range(60):
        try:
            chia_stack.rpc("data_layer", "healthz")
            break
        except OSError:
            time.sleep(0.5)
    owned = _owned(chia_stack)
    if not owned:
        store = chia_stack.rpc("data_layer", "create_data_store", {"fee": 0})["id"]
        for _ in range(30):  # confirmed once blocks include it
            chia_stack.farm_blocks(1)
            time.sleep(1)
            if store in _owned(chia_stack):
                break
        owned = _owned(chia_stack)
    assert owned, "the DataLayer store was not confirmed"
    yield owned
    # The daemon takes about 13 s to stop it: the next tests need not wait (the stack's stop waits).
    chia_stack.background.append(subprocess.Popen(chia + ["stop", "data"], env=env, stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL))


def _owned(stack) -> list[str]:
    try:
        return stack.rpc("data_layer", "get_owned_stores")["store_ids"]
    except Exception:  # a fresh DataLayer answers success: false until a store exists
        return []


def test_data_layer_stores_with_zero_config(chia_stack, data_layer, run_exporter):
    exporter = run_exporter()
    text = exporter.wait_for(lambda t: 'chia_exporter_collector_success{collector="data_layer"} 1.0' in t, timeout=60)
    got = samples(text)
    assert got["chia_data_layer_owned_stores"] == len(data_layer)
    store = data_layer[0]
    status = chia_stack.rpc("data_layer", "get_sync_status", {"id": store})["sync_status"]
    key = f'{{owned="1",store_id="{store}"}}'
    assert got["chia_data_layer_store_generation" + key] == status["generation"]
    assert got["chia_data_layer_store_target_generation" + key] == status["target_generation"]
    assert got["chia_data_layer_store_synced" + key] == float(status["generation"] == status["target_generation"])
    assert got["chia_data_layer_store_root_timestamp_seconds" + key] > 1.7e9
    assert got['chia_version_info{component="data_layer",version="2.7.5"}'] == 1.0
    promtool_check(text)


def test_data_layer_through_the_daemon(chia_stack, data_layer, run_exporter):
    """The same families with every request routed by the daemon to chia_data_layer."""
    exporter = run_exporter("--transport", "daemon")
    text = exporter.wait_for(lambda t: 'chia_exporter_collector_success{collector="data_layer"} 1.0' in t, timeout=60)
    got = samples(text)
    assert got["chia_data_layer_owned_stores"] == len(data_layer)
    assert got["chia_data_layer_subscriptions"] >= 0
    store = data_layer[0]
    status = chia_stack.rpc("data_layer", "get_sync_status", {"id": store})["sync_status"]
    key = f'{{owned="1",store_id="{store}"}}'
    assert got["chia_data_layer_store_generation" + key] == status["generation"]
    assert got["chia_data_layer_store_root_timestamp_seconds" + key] > 1.7e9
    assert got['chia_version_info{component="data_layer",version="2.7.5"}'] == 1.0
    calls = {k: v for k, v in got.items() if k.startswith('chia_exporter_rpc_requests_total{collector="data_layer"')}
    assert calls and all('outcome="ok"' in k for k in calls), calls
    promtool_check(text)
