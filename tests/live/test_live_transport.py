"""Every collector through the daemon's WebSocket only, against the real stack."""

from __future__ import annotations

import json

from tests.live.conftest import promtool_check, samples


def test_daemon_transport_serves_every_collector(chia_stack, run_exporter):
    # Every collector on, the DataLayer's too: the stack runs none (test_live_data_layer.py stops
    # the one it starts), and the daemon, asked is_running, says so: the collector is absent, not
    # failing on a timeout.
    exporter = run_exporter("--transport", "daemon")
    wanted = ("full_node", "farmer", "harvester", "wallet", "daemon")
    text = exporter.wait_for(lambda t: all(f'chia_exporter_collector_success{{collector="{c}"}} 1.0' in t
                                           for c in wanted), timeout=60)
    health = json.loads(exporter.wait_for(
        lambda t: json.loads(t)["collectors"]["data_layer"]["state"] in ("absent", "ok"), timeout=30, path="/healthz"))
    data_layer = health["collectors"]["data_layer"]
    if data_layer["state"] == "absent":  # unless a DataLayer was left running beside the stack
        assert "chia_data_layer is not running under the daemon" in data_layer["last_error"]
        assert 'collector="data_layer"' not in exporter.get()
    got = samples(text)
    state = chia_stack.rpc("full_node", "get_blockchain_state")["blockchain_state"]
    assert got["chia_full_node_peak_height"] >= state["peak"]["height"] - 1
    assert got["chia_exporter_websocket_connected"] == 1.0
    # Every request went over the one WebSocket: none was refused, timed out or failed.
    got = samples(exporter.get())
    failures = {k: v for k, v in got.items() if k.startswith("chia_exporter_rpc_requests_total")
                and 'outcome="ok"' not in k}
    assert not failures, failures
    promtool_check(text)
