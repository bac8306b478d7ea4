"""Property tests: random and mutated versions of the real fixtures through every parser and
every event state. Nothing but a shape error may leave a parser (the RPC client turns those into
``bad_response``), and nothing at all leaves the event dispatcher (it counts rejections)."""

from __future__ import annotations

import asyncio
import copy
import inspect
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.collectors import MODULES, build
from exporter.collectors import crawler, daemon, data_layer, farmer, full_node, harvester, wallet
from exporter.daemon_ws import EventDispatcher
from tests.fakes.services import SHARED_FIXTURES, TEST_FIXTURES, load_set

SHAPE_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError)
BODIES = load_set("chia-2.7.5")
BIG_FARM = json.loads((TEST_FIXTURES / "farmer-big-farm" / "farmer" / "get_pool_state.json").read_text())

# Every parser of an RPC body, with a real body it is meant for.
PARSERS = {
    "full_node.BlockchainState.parse": (full_node.BlockchainState.parse, BODIES["full_node"]["get_blockchain_state"]),
    "full_node.BlockCounts.parse": (full_node.BlockCounts.parse, BODIES["full_node"]["get_block_count_metrics"]),
    "full_node.NetworkInfo.parse": (full_node.NetworkInfo.parse, BODIES["full_node"]["get_network_info"]),
    "full_node.parse_connection_types": (full_node.parse_connection_types, BODIES["full_node"]["get_connections"]),
    "full_node.parse_version": (full_node.parse_version, BODIES["full_node"]["get_version"]),
    "full_node.parse_fee_estimates": (full_node.parse_fee_estimates, BODIES["full_node"]["get_fee_estimate"]),
    "farmer.parse_harvesters": (farmer.parse_harvesters, BODIES["farmer"]["get_harvesters_summary"]),
    "farmer.parse_pools": (farmer.parse_pools, BIG_FARM),
    "farmer.HarvesterSummary.parse": (farmer.HarvesterSummary.parse, BODIES["farmer"]["get_harvesters_summary"]["harvesters"][0]),
    "farmer.PoolState.parse": (farmer.PoolState.parse, BIG_FARM["pool_state"][0]),
    "farmer.parse_reward_targets": (farmer.parse_reward_targets, BODIES["farmer"]["get_reward_targets"]),
    "farmer.parse_last_signage_point": (farmer.parse_last_signage_point, BODIES["farmer"]["get_signage_points"]),
    "wallet.SyncStatus.parse": (wallet.SyncStatus.parse, BODIES["wallet"]["get_sync_status"]),
    "wallet.FarmedAmount.parse": (wallet.FarmedAmount.parse, BODIES["wallet"]["get_farmed_amount"]),
    "wallet.parse_wallets": (wallet.parse_wallets, BODIES["wallet"]["get_wallets"]),
    "wallet.Balance.parse": (lambda b: wallet.Balance.parse(b["wallet_balance"], {1: 0}), BODIES["wallet"]["get_wallet_balance"]),
    "daemon.parse_running": (daemon.parse_running, BODIES["daemon"]["running_services"]["data"]),
    "data_layer.parse_store_ids": (data_layer.parse_store_ids, BODIES["data_layer"]["get_owned_stores"]),
    "data_layer.parse_sync_status": (data_layer.parse_sync_status,
                                     next(v for k, v in BODIES["data_layer"].items() if k.startswith("get_sync_status"))),
    "data_layer.parse_root_timestamp": (data_layer.parse_root_timestamp,
                                        next(v for k, v in BODIES["data_layer"].items() if k.startswith("get_root"))),
    "data_layer.parse_mirrors": (data_layer.parse_mirrors,
                                 next(v for k, v in BODIES["data_layer"].items() if k.startswith("get_mirrors"))),
    "crawler.PeerCounts.parse": (crawler.PeerCounts.parse, {"peer_counts": {"total_last_5_days": 4, "reliable_nodes": 1,
                                                                            "versions": {"2.7.5": 3}}}),
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats(allow_nan=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated(draw, original):
    """The real body with a few of its nodes deleted, nulled, retyped or replaced."""
    data = copy.deepcopy(original)
    for _ in range(draw(st.integers(1, 4))):
        path = []
        node = data
        while isinstance(node, (dict, list)) and node and draw(st.booleans()):
            key = draw(st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node))))
            path.append((node, key))
            node = node[key]
        if not path:
            continue
        parent, key = path[-1]
        action = draw(st.sampled_from(["delete", "none", "random", "stringify", "listify"]))
        if action == "delete":
            del parent[key]
        elif action == "none":
            parent[key] = None
        elif action == "random":
            parent[key] = draw(json_values)
        elif action == "stringify":
            parent[key] = str(parent[key])
        else:
            parent[key] = [parent[key]]
    return data


def test_every_parser_is_covered():
    found = set()
    for name in MODULES:
        module = __import__(f"exporter.collectors.{name}", fromlist=["x"])
        for attr, value in vars(module).items():
            if attr.startswith("parse") and inspect.isfunction(value) and value.__module__ == module.__name__:
                found.add(f"{name}.{attr}")
            if inspect.isclass(value) and value.__module__ == module.__name__ and "parse" in vars(value):
                found.add(f"{name}.{attr}.parse")
    found.discard("harvester.parse_plots")  # async, bytes: tested below
    assert found == set(PARSERS), f"add these to PARSERS: {found - set(PARSERS)}"


def check(parse, body) -> None:
    try:
        parse(body)
    except SHAPE_ERRORS:
        pass  # the client reports it as bad_response


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_parsers_raise_only_shape_errors_on_mutated_bodies(data):
    for parse, body in PARSERS.values():
        check(parse, data.draw(mutated(body)))


@settings(max_examples=150, deadline=None)
@given(body=json_values)
def test_parsers_raise_only_shape_errors_on_random_json(body):
    for parse, _ in PARSERS.values():
        check(parse, body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_get_plots_parser_on_mutated_bodies(data):
    body = data.draw(mutated(BODIES["harvester"]["get_plots"]))
    raw = json.dumps(body, sort_keys=True).encode()
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]  # truncated on the wire
    try:
        asyncio.run(harvester.parse_plots(bytearray(raw)))
    except SHAPE_ERRORS + (UnicodeDecodeError,):
        pass


EVENTS = [json.loads(line) for line in (SHARED_FIXTURES / "daemon" / "events-metrics.jsonl").read_text().splitlines()]
SYNTHETIC = [json.loads(line) for line in (TEST_FIXTURES / "events" / "node-reorg-timelord-crawler.jsonl").read_text().splitlines()]
BY_COMMAND = {m["command"]: m for m in EVENTS + SYNTHETIC}


def dispatcher() -> EventDispatcher:
    from pathlib import Path
    import tempfile

    import trustme

    from tests.conftest import ChiaRoot
    from tests.harness import config_for

    root = ChiaRoot(Path(tempfile.mkdtemp()) / "root", trustme.CA())
    root.write_config({})
    _, states = build(config_for(root.path), None)
    return EventDispatcher(states, clock=lambda: 1000.0)


DISPATCHER = dispatcher()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_dispatcher_never_raises_and_counts_rejections(data):
    original = data.draw(st.sampled_from(sorted(BY_COMMAND)))
    message = data.draw(mutated(BY_COMMAND[original]))
    before = sum(DISPATCHER.events.values()) + sum(DISPATCHER.errors.values())
    DISPATCHER.dispatch(message)
    DISPATCHER.dispatch_text(json.dumps(message)[: data.draw(st.integers(0, 400))])
    after = sum(DISPATCHER.events.values()) + sum(DISPATCHER.errors.values())
    assert after >= before + 2  # both messages were counted: each as an event, a rejection, or both
    list(DISPATCHER.render())  # and the states still render


@settings(max_examples=200, deadline=None)
@given(message=json_values)
def test_dispatcher_on_random_json(message):
    DISPATCHER.dispatch(message)
    DISPATCHER.dispatch_text(json.dumps(message))
    list(DISPATCHER.render())
