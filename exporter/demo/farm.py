"""The demo farm's side that needs Chia itself: run with the Chia virtualenv's Python.

    python farm.py prepare CHIA_ROOT MNEMONIC ADDRESS  # before `chia dev sim create`: config, free ports
    python farm.py configure CHIA_ROOT      # after `chia dev sim create`: constants, rewards
    python farm.py signage CHIA_ROOT SECS   # feed the farmer signage points (no timelord here)

The simulator makes blocks on request and never broadcasts signage points: only a timelord
would. Without them the farmer and harvester sit idle. `signage` connects to the farmer's peer
port as a full node and sends one NewSignagePoint every SECS seconds, 64 to a sub-slot, with a
difficulty low enough that the harvester finds a proof now and then, so that lookups, proofs and
farming counters move as on a real farm.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import sys
from pathlib import Path

import yaml

# Signage points per sub-slot, and proof odds that make a proof show up every few signage points.
SIGNAGE_POINTS_PER_SLOT = 64
DEMO_DIFFICULTY = 6_000_000
DEMO_SUB_SLOT_ITERS = 134_217_728


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, all different (each socket stays bound until all are chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def prepare(root: Path, mnemonic: str, reward_address: str) -> None:
    """Write the simulator's config before `chia dev sim create` runs, with a free port for every
    service. Left alone, create shifts Chia's default ports by a random offset and starts the
    daemon at once: that can land on a port a real node or another stack on this machine holds
    (the daemon then never comes up), and farmer and harvester keep the defaults a real farm uses.
    create keeps the ports of a config it finds."""
    from chia.cmds.sim_funcs import create_chia_directory, generate_and_return_fingerprint
    from chia.util.config import lock_and_load_config, save_config

    fingerprint = generate_and_return_fingerprint(mnemonic)
    create_chia_directory(root, fingerprint, reward_address, None, False, False)
    with lock_and_load_config(root, "config.yaml") as c:
        daemon, node, node_rpc, wallet_rpc, farmer, farmer_rpc, harvester_rpc, *others = free_ports(10)
        c["daemon_port"] = c["ui"]["daemon_port"] = daemon
        c["full_node"]["port"], c["full_node"]["rpc_port"] = node, node_rpc
        c["network_overrides"]["config"][c["selected_network"]]["default_full_node_port"] = node
        c["wallet"]["rpc_port"] = wallet_rpc
        c["farmer"]["port"], c["farmer"]["rpc_port"] = farmer, farmer_rpc
        c["harvester"]["rpc_port"] = harvester_rpc
        for service, port in zip(("data_layer", "timelord", "crawler"), others):
            if isinstance(c.get(service), dict) and "rpc_port" in c[service]:
                c[service]["rpc_port"] = port
        c["harvester"]["farmer_peers"] = c["full_node"]["farmer_peers"] = [{"host": "127.0.0.1", "port": farmer}]
        for service in ("farmer", "timelord", "wallet"):
            c[service]["full_node_peers"] = [{"host": "127.0.0.1", "port": node}]
        save_config(root, "config.yaml", c)


def configure(root: Path) -> None:
    """After `chia dev sim create`: farmer, harvester and wallet get the simulator's constants, and
    simulator blocks pay the demo wallet."""
    from chia.util.bech32m import encode_puzzle_hash
    from chia.util.config import lock_and_load_config, save_config
    from chia.util.keychain import Keychain
    from chia.wallet.derive_keys import master_sk_to_wallet_sk_unhardened
    from chia.wallet.puzzles.p2_delegated_puzzle_or_hidden_puzzle import puzzle_hash_for_pk

    with lock_and_load_config(root, "config.yaml") as c:
        # The simulator runs on Chia's test constants; farmer, harvester and wallet start from
        # mainnet's: give them the simulator's plot filter and difficulty factor.
        constants = c["network_overrides"]["constants"].setdefault(c["selected_network"], {})
        constants.update(NUMBER_ZERO_BITS_PLOT_FILTER_V1=1, NUMBER_ZERO_BITS_PLOT_FILTER_V2=1, DIFFICULTY_CONSTANT_FACTOR=2**25)
        sk = Keychain().get_all_private_keys()[0][0]
        address = encode_puzzle_hash(puzzle_hash_for_pk(master_sk_to_wallet_sk_unhardened(sk, 0).get_g1()), "txch")
        c["simulator"]["farming_address"] = address
        save_config(root, "config.yaml", c)


def tls(root: Path, service: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(root / "config/ssl/ca/private_ca.crt"))
    ctx.check_hostname = False
    ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)
    d = root / "config" / "ssl" / service
    ctx.load_cert_chain(d / f"private_{service}.crt", d / f"private_{service}.key")
    return ctx


async def send_signage_points(root: Path, every: float) -> None:
    import aiohttp
    from chia import __version__
    from chia.protocols.farmer_protocol import NewSignagePoint
    from chia.protocols.outbound_message import NodeType, make_msg
    from chia.protocols.protocol_message_types import ProtocolMessageTypes
    from chia.protocols.shared_protocol import Handshake, default_capabilities, protocol_version
    from chia_rs.sized_bytes import bytes32
    from chia_rs.sized_ints import uint8, uint16, uint32, uint64

    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    node_rpc = f"https://127.0.0.1:{config['full_node']['rpc_port']}/get_blockchain_state"
    farmer_ws = f"wss://127.0.0.1:{config['farmer']['port']}/ws"
    as_node = tls(root, "full_node")
    sent = 0
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.ws_connect(farmer_ws, ssl=as_node) as ws:
                    hello = Handshake(config["farmer"]["selected_network"], protocol_version[NodeType.FULL_NODE], __version__,
                                      uint16(0), uint8(NodeType.FULL_NODE.value), default_capabilities[NodeType.FULL_NODE])
                    await ws.send_bytes(bytes(make_msg(ProtocolMessageTypes.handshake, hello)))
                    await ws.receive()
                    listener = asyncio.create_task(_ignore_replies(ws))
                    slot_challenge = bytes32.random()
                    while not ws.closed:
                        index = sent % SIGNAGE_POINTS_PER_SLOT
                        if index == 0:
                            slot_challenge = bytes32.random()  # a new sub-slot
                        async with http.post(node_rpc, json={}, ssl=as_node) as resp:
                            peak = (await resp.json())["blockchain_state"]["peak"]["height"]
                        point = NewSignagePoint(
                            challenge_hash=slot_challenge,
                            challenge_chain_sp=slot_challenge if index == 0 else bytes32.random(),
                            reward_chain_sp=bytes32.random(), difficulty=uint64(DEMO_DIFFICULTY),
                            sub_slot_iters=uint64(DEMO_SUB_SLOT_ITERS), signage_point_index=uint8(index),
                            peak_height=uint32(peak), last_tx_height=uint32(peak), filter_challenge=slot_challenge)
                        await ws.send_bytes(bytes(make_msg(ProtocolMessageTypes.new_signage_point, point)))
                        sent += 1
                        await asyncio.sleep(every)
                    listener.cancel()
            except (aiohttp.ClientError, OSError, KeyError) as e:
                print(f"signage points: farmer or node not ready ({type(e).__name__}), retrying", flush=True)
                await asyncio.sleep(2)


async def _ignore_replies(ws) -> None:
    async for _ in ws:  # the farmer answers with proofs for the node: not needed here
        pass


if __name__ == "__main__":
    command, root = sys.argv[1], Path(sys.argv[2])
    os.environ.setdefault("CHIA_ROOT", str(root))
    if command == "prepare":
        prepare(root, sys.argv[3], sys.argv[4])
    elif command == "configure":
        configure(root)
    elif command == "signage":
        try:
            asyncio.run(send_signage_points(root, float(sys.argv[3]) if len(sys.argv) > 3 else 5.0))
        except KeyboardInterrupt:
            pass
    else:
        raise SystemExit(f"unknown command {command}")
