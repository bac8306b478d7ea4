"""Every collector through the daemon's WebSocket only, against the real stack."""

from __future__ import annotations

from tests.live.conftest import promtool_check, samples


def test_daemon_transport_serves_every_collector(chia_stack, run_exporter):
    # Through the daemon a service that is not running drops requests (timeouts, not refusals), so
    # a host without a DataLayer turns its collector off, as the README says.
    exporter = run_exporter("--transport", "daemon", "--no-collector.data_layer")
    wanted = ("full_node", "farmer", "harvester", "wallet", "daemon")
    text = exporter.wait_for(lambda t: all(f'chia_exporter_collector_success{{collector="{c}"}} 1.0' in t
                                           for c in wanted), timeout=60)
    got = samples(text)
    state = chia_stack.rpc("full_node", "get_blockchain_state")["blockchain_state"]
    assert got["chia_full_node_peak_height"] >= state["peak"]["height"] - 1
    assert got["chia_exporter_websocket_connected"] == 1.0
    # Every request went over the one WebSocket: no HTTPS connection was refused or failed.
    failures = {k: v for k, v in got.items() if k.startswith("chia_exporter_rpc_requests_total")
                and 'outcome="ok"' not in k}
    assert not failures, failures
    promtool_check(text)
