"""Property tests: random and mutated versions of the real fixtures through every parser, every
collector and every event state. Nothing but a shape error may leave a parser; a collector fed
such bodies raises nothing but the RPC client's counted ``RpcError`` (every call is counted, each
rejection as ``bad_response`` or ``error``); nothing at all leaves the event dispatcher (it counts
rejections)."""

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
from exporter.rpc import SHAPE_ERRORS, RpcError, RpcStats, check_success, counted
from tests.fakes.services import SHARED_FIXTURES, TEST_FIXTURES, load_set
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
    "full_node.parse_timestamp": (full_node.parse_timestamp, BODIES["full_node"]["get_block_record_by_height"]),
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
    "harvester.plots_from_body": (harvester.plots_from_body, BODIES["harvester"]["get_plots"]),
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
        action = draw(st.sampled_from(["delete", "none", "random", "stringify", "listify", "infinite"]))
        if action == "delete":
            del parent[key]
        elif action == "none":
            parent[key] = None
        elif action == "random":
            parent[key] = draw(json_values)
        elif action == "infinite":  # what Python's json reads from Infinity or 1e999
            parent[key] = float("inf")
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
    assert found <= set(PARSERS), f"add these to PARSERS: {found - set(PARSERS)}"


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
    except SHAPE_ERRORS:  # UnicodeDecodeError is a ValueError
        pass
    except RpcError as e:  # success is not true: Chia's error text is kept
        assert e.outcome in ("error", "bad_response")


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
    list(DISPATCHER.render_states(lambda state: True))


@settings(max_examples=200, deadline=None)
@given(message=json_values)
def test_dispatcher_on_random_json(message):
    DISPATCHER.dispatch(message)
    DISPATCHER.dispatch_text(json.dumps(message))
    list(DISPATCHER.render())
    list(DISPATCHER.render_states(lambda state: True))


class MutatingRpc:
    """A service answering every call with a mutated version of its real body, through the same
    counting and success check as the HTTPS client."""

    def __init__(self, bodies: dict, draw, stats: RpcStats) -> None:
        self.bodies, self.draw, self.stats, self.calls = bodies, draw, stats, 0

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        return None

    def body(self, endpoint: str, params: dict | None) -> object:
        first = next(iter((params or {}).values()), None)
        original = self.bodies.get(f"{endpoint}-{first}", self.bodies.get(endpoint, {"success": True}))
        return self.draw(mutated(original)) if self.draw(st.booleans()) else original

    async def call(self, endpoint, params=None, parse=None):
        self.calls += 1
        body = self.body(endpoint, params)
        if endpoint in ("running_services", "get_version") and isinstance(body, dict) and "data" in body:
            body = body["data"]  # the daemon's replies carry the body in data

        async def answer():
            return check_success(endpoint, body)
        return await counted(self.stats, "c", endpoint, answer(), parse)

    async def call_raw(self, endpoint, params=None, parse=None, parse_body=None):
        self.calls += 1
        raw = json.dumps(self.body(endpoint, params), sort_keys=True).encode()

        async def answer():
            try:
                return await parse(bytearray(raw))
            except SHAPE_ERRORS as e:
                raise RpcError("bad_response", endpoint, str(e)) from None
        return await counted(self.stats, "c", endpoint, answer(), None)


COLLECTOR_BODIES = {"full_node": BODIES["full_node"], "farmer": {**BODIES["farmer"], "get_pool_state": BIG_FARM},
                    "harvester": BODIES["harvester"], "wallet": BODIES["wallet"], "daemon": BODIES["daemon"],
                    "data_layer": BODIES["data_layer"]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_collectors_on_mutated_bodies_fail_only_as_counted_rpc_errors(data):
    name = data.draw(st.sampled_from(sorted(COLLECTOR_BODIES)))
    collector = next(c for c in build(COLLECTOR_CONFIG, None)[0] if c.name == name)  # fresh: no state between cases
    stats = RpcStats()
    rpc = MutatingRpc(COLLECTOR_BODIES[name], data.draw, stats)
    try:
        snapshot = asyncio.run(collector.fetch(rpc))
    except RpcError:
        snapshot = None
    assert sum(stats.counts.values()) == rpc.calls, "a call was not counted"
    if snapshot is not None:
        list(collector.render(snapshot))  # whatever was accepted renders


def _collector_config():
    from pathlib import Path
    import tempfile

    import trustme

    from tests.conftest import ChiaRoot
    from tests.harness import config_for

    root = ChiaRoot(Path(tempfile.mkdtemp()) / "root", trustme.CA())
    root.write_config({})
    return config_for(root.path, **{"collectors.data_layer.enabled": True})


COLLECTOR_CONFIG = _collector_config()
