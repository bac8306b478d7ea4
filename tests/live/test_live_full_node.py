"""The installed exporter against the real Chia stack, configured by nothing but CHIA_ROOT."""

from __future__ import annotations

import re

from tests.live.conftest import promtool_check, samples


def test_full_node_metrics_with_zero_config(chia_stack, run_exporter):
    exporter = run_exporter()
    text = exporter.wait_for(lambda t: 'chia_exporter_collector_success{collector="full_node"} 1.0' in t)
    state = chia_stack.rpc("full_node", "get_blockchain_state")["blockchain_state"]
    got = samples(text)

    # The values are the node's own, read through the exporter.
    assert got["chia_full_node_synced"] == 1.0
    assert got["chia_full_node_peak_height"] >= state["peak"]["height"] - 1  # a block may land between
    assert got["chia_full_node_difficulty"] == state["difficulty"]
    assert got["chia_full_node_sub_slot_iters"] == state["sub_slot_iters"]
    assert got["chia_full_node_mempool_max_total_cost"] == state["mempool_max_total_cost"]
    assert got["chia_full_node_peak_timestamp_seconds"] > 1.7e9
    assert got['chia_full_node_connections{node_type="farmer"}'] >= 1
    assert got['chia_full_node_connections{node_type="wallet"}'] >= 1
    for target in (60, 300, 900):
        assert f'chia_full_node_fee_estimate_mojos_per_cost{{target_seconds="{target}"}}' in got
    assert got["chia_full_node_uncompact_blocks"] >= 1
    assert got['chia_full_node_database_size_bytes{file="db"}'] > 0
    assert got['chia_network_info{network_name="simulator0",network_prefix="txch"}'] == 1.0
    assert re.search(r'chia_version_info\{component="full_node",version="2\.7\.5"\} 1\.0', text)
    assert not any(k.startswith("chia_exporter_rpc_requests_total") and 'outcome="tls"' in k for k in got)
    promtool_check(text)


def test_peak_height_follows_the_chain(chia_stack, run_exporter):
    exporter = run_exporter("--collector.full_node.interval", "1s")
    text = exporter.wait_for(lambda t: "chia_full_node_peak_height" in t)
    before = samples(text)["chia_full_node_peak_height"]
    chia_stack.farm_blocks(2)
    exporter.wait_for(lambda t: samples(t).get("chia_full_node_peak_height", 0) >= before + 2, timeout=30)


async def test_the_real_node_is_verified_against_the_private_ca(chia_stack, tmp_path):
    """Chia's private CA accepts the node; its public CA (chia_ca.crt) and any other CA do not."""
    import aiohttp
    import trustme

    from exporter.rpc import RpcClient, RpcError, RpcStats, TlsFiles

    ssl_dir = chia_stack.root / "config" / "ssl"
    other = tmp_path / "other_ca.crt"
    trustme.CA().cert_pem.write_to_path(str(other))
    cert, key = ssl_dir / "full_node" / "private_full_node.crt", ssl_dir / "full_node" / "private_full_node.key"
    port = int(chia_stack.env["CHIA_FULL_NODE_RPC_PORT"])
    async with aiohttp.ClientSession() as session:
        def client(ca):
            return RpcClient(session, "full_node", "full_node", "127.0.0.1", port, TlsFiles(ca, cert, key), 5, 1 << 20,
                             RpcStats())

        assert (await client(ssl_dir / "ca" / "private_ca.crt").call("get_version"))["version"] == "2.7.5"
        for wrong in (ssl_dir / "ca" / "chia_ca.crt", other):
            try:
                await client(wrong).call("get_version")
            except RpcError as e:
                # chia_ca.crt names the same issuer, so OpenSSL says "signature failure" for it
                assert e.outcome == "tls" and "certificate" in e.detail.lower(), e.detail
            else:
                raise AssertionError(f"{wrong.name} was accepted")
