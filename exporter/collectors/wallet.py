"""Wallet: sync, height, every wallet's balances and coins, farming rewards, peers.

Polls ``get_sync_status``, ``get_height_info``, ``get_wallets``, ``get_wallet_balances`` (one call
for every wallet; ``get_wallet_balance`` per wallet where that fails), ``get_farmed_amount``,
``get_connections`` and ``get_version``; the wallet's ``coin_added`` and ``sync_changed`` events ask
for a prompt poll (bursts coalesce). Example::

    chia_wallet_confirmed_balance_mojos{asset_id="",fingerprint="1532878573",wallet_id="1",wallet_type="standard"} 8e+12
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from prometheus_client.core import Metric

from exporter.collectors.base import (
    Collector, EventState, as_bool, as_float, as_int, connection_counts, gauge, labelled, optional, version_info,
)
from exporter.collectors.full_node import parse_connection_types, parse_version

# Chia's WalletType numbers (chia/wallet/util/wallet_types.py; DAO wallets, 14 and 15, existed in
# releases before 2.5). An unknown number is shown as itself.
WALLET_TYPES = {0: "standard", 2: "atomic_swap", 3: "authorized_payee", 4: "multi_sig", 5: "custody",
                6: "cat", 7: "recoverable", 8: "did", 9: "pooling", 10: "nft", 11: "data_layer",
                12: "data_layer_offer", 13: "vc", 14: "dao", 15: "dao_cat", 57: "crcat", 132: "rcat",
                205: "remote", 209: "plotnft_2"}
MOJO = "in mojos (1 XCH = 10^12 mojos)"


@dataclass(frozen=True)
class Balance:
    wallet_id: int
    wallet_type: str
    asset_id: str
    confirmed: int
    unconfirmed: int
    spendable: int
    pending_change: int
    max_send: int
    unspent_coins: int
    pending_removals: int

    @classmethod
    def parse(cls, b: dict, types: dict[int, int]) -> Balance:
        wallet_id = as_int(b["wallet_id"])
        kind = as_int(b["wallet_type"]) if b.get("wallet_type") is not None else types.get(wallet_id, -1)
        return cls(
            wallet_id=wallet_id, wallet_type=WALLET_TYPES.get(kind, str(kind)), asset_id=str(b.get("asset_id") or ""),
            confirmed=as_int(b["confirmed_wallet_balance"]), unconfirmed=as_int(b["unconfirmed_wallet_balance"]),
            spendable=as_int(b["spendable_balance"]), pending_change=as_int(b["pending_change"]),
            max_send=as_int(b["max_send_amount"]), unspent_coins=as_int(b["unspent_coin_count"]),
            pending_removals=as_int(b["pending_coin_removal_count"]),
        )


@dataclass(frozen=True)
class FarmedAmount:
    farmed: int
    pool_reward: int
    farmer_reward: int
    fees: int
    blocks_won: int
    last_height_farmed: int
    last_time_farmed: float

    @classmethod
    def parse(cls, body: dict) -> FarmedAmount:
        return cls(as_int(body["farmed_amount"]), as_int(body["pool_reward_amount"]), as_int(body["farmer_reward_amount"]),
                   as_int(body["fee_amount"]), as_int(body["blocks_won"]), as_int(body["last_height_farmed"]),
                   as_float(body["last_time_farmed"]))


@dataclass(frozen=True)
class SyncStatus:
    synced: bool
    syncing: bool

    @classmethod
    def parse(cls, body: dict) -> SyncStatus:
        return cls(as_bool(body["synced"]), as_bool(body["syncing"]))


def parse_wallets(body: dict) -> tuple[str, dict[int, int]]:
    """The logged-in fingerprint and each wallet's type number."""
    return str(body["fingerprint"]), {as_int(w["id"]): as_int(w["type"]) for w in body["wallets"]}


@dataclass(frozen=True)
class WalletSnapshot:
    sync: SyncStatus | None
    fingerprint: str
    height: int | None
    balances: tuple[Balance, ...] | None
    farmed: FarmedAmount | None
    connections: tuple[int, ...] | None
    version: str | None


class WalletCollector(Collector[WalletSnapshot]):
    name = "wallet"
    service = "wallet"

    async def fetch(self, rpc) -> WalletSnapshot:
        # Without the logged-in key's wallets there is nothing to label: that call alone fails the
        # poll; every other call loses only its own families.
        fingerprint, types = await rpc.call("get_wallets", parse=parse_wallets)
        return WalletSnapshot(
            sync=await optional(rpc.call("get_sync_status", parse=SyncStatus.parse)), fingerprint=fingerprint,
            height=await optional(rpc.call("get_height_info", parse=lambda b: as_int(b["height"]))),
            balances=await self._balances(rpc, types),
            farmed=await optional(rpc.call("get_farmed_amount", parse=FarmedAmount.parse)),
            connections=await optional(rpc.call("get_connections", parse=parse_connection_types)),
            version=await optional(rpc.call("get_version", parse=parse_version)),
        )

    async def _balances(self, rpc, types: dict[int, int]) -> tuple[Balance, ...] | None:
        every = await optional(rpc.call("get_wallet_balances", parse=lambda b: tuple(
            Balance.parse(v, types) for v in b["wallet_balances"].values())))
        if every is not None:
            return tuple(sorted(every, key=lambda b: b.wallet_id))
        found = []
        for wallet_id in sorted(types):  # older wallets: one call per wallet
            b = await optional(rpc.call("get_wallet_balance", {"wallet_id": wallet_id},
                                        parse=lambda body: Balance.parse(body["wallet_balance"], types)))
            if b is not None:
                found.append(b)
        return tuple(found) if found or not types else None

    def render(self, snap: WalletSnapshot) -> Iterator[Metric]:
        note = self.cached_note()
        fp = {"fingerprint": snap.fingerprint}
        if snap.sync is not None:
            yield gauge("chia_wallet_synced", "1 when the wallet is synced (get_sync_status synced)." + note, float(snap.sync.synced), fp)
            yield gauge("chia_wallet_syncing", "1 while the wallet is syncing (get_sync_status syncing)." + note, float(snap.sync.syncing), fp)
        if snap.height is not None:
            yield gauge("chia_wallet_height", "Height the wallet has synced to (get_height_info)." + note, snap.height, fp)
        if snap.balances is not None:
            labels = ["fingerprint", "wallet_id", "wallet_type", "asset_id"]
            rows = [((snap.fingerprint, str(b.wallet_id), b.wallet_type, b.asset_id), b) for b in snap.balances]

            def per_wallet(name: str, doc: str, value) -> Metric:
                return labelled(name, doc + note, labels, ((k, value(b)) for k, b in rows))

            yield per_wallet("chia_wallet_confirmed_balance_mojos", f"Confirmed balance of each wallet, {MOJO}; a CAT wallet counts "
                             "its token's mojos, 1000 to a token; NFT wallets report 0 and a DID wallet its singleton's "
                             "mojo (get_wallet_balances).", lambda b: b.confirmed)
            yield per_wallet("chia_wallet_unconfirmed_balance_mojos", f"Balance counting pending transactions, {MOJO}.", lambda b: b.unconfirmed)
            yield per_wallet("chia_wallet_spendable_balance_mojos", f"Balance that can be spent now, {MOJO}.", lambda b: b.spendable)
            yield per_wallet("chia_wallet_pending_change_mojos", f"Change still to come back from pending spends, {MOJO}.",
                             lambda b: b.pending_change)
            yield per_wallet("chia_wallet_max_send_amount_mojos", f"Largest amount one transaction can send, {MOJO}.", lambda b: b.max_send)
            yield per_wallet("chia_wallet_unspent_coins", "Unspent coins in each wallet (unspent_coin_count).", lambda b: b.unspent_coins)
            yield per_wallet("chia_wallet_pending_coin_removals", "Coins being spent by pending transactions (pending_coin_removal_count).",
                             lambda b: b.pending_removals)
        if snap.farmed is not None:
            f = snap.farmed
            yield gauge("chia_wallet_farmed_amount_mojos", f"Everything this wallet has farmed, {MOJO} (get_farmed_amount)." + note, f.farmed, fp)
            yield gauge("chia_wallet_pool_reward_amount_mojos", f"Pool rewards (7/8 of a block reward) received, {MOJO}." + note, f.pool_reward, fp)
            yield gauge("chia_wallet_farmer_reward_amount_mojos", f"Farmer rewards (1/8 of a block reward) received, {MOJO}." + note,
                        f.farmer_reward, fp)
            yield gauge("chia_wallet_fee_amount_mojos", f"Transaction fees received from farmed blocks, {MOJO}." + note, f.fees, fp)
            yield gauge("chia_wallet_blocks_won", "Blocks this wallet has won (get_farmed_amount blocks_won)." + note, f.blocks_won, fp)
            yield gauge("chia_wallet_last_height_farmed", "Height of the last block this wallet farmed (last_height_farmed)." + note,
                        f.last_height_farmed, fp)
            yield gauge("chia_wallet_last_time_farmed_timestamp_seconds", "Unix time of the last block this wallet farmed "
                        "(last_time_farmed)." + note, f.last_time_farmed, fp)
        if snap.connections is not None:
            yield connection_counts("chia_wallet_connections", "Wallet peers by node type (get_connections)." + note, snap.connections)
        yield from version_info("wallet", snap.version)


class WalletEvents(EventState):
    """coin_added and sync_changed mean the polled values are out of date: poll again soon."""

    origin = "chia_wallet"
    commands = frozenset({"coin_added", "sync_changed"})

    def __init__(self, exporter=None) -> None:
        self.exporter = exporter

    def handle(self, command: str, data: dict, now: float) -> None:
        if self.exporter is not None:
            self.exporter.refresh("wallet")  # the scheduler coalesces a burst into one poll

    def render(self, now: float) -> Iterator[Metric]:
        return iter(())


def make_event_states(config, exporter) -> list[EventState]:
    return [WalletEvents(exporter)]


def make_collector(config, states) -> WalletCollector:
    return WalletCollector(config.collectors["wallet"])
