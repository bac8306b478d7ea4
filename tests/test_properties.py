"""Property tests: random and mutated versions of the real fixtures through every parser, every
collector and every event state, each with its own budget of examples.

Nothing but a shape error may leave a parser; a collector fed such bodies raises nothing but the
RPC client's counted ``RpcError``, and every call it made is counted, the one that failed it with
that error's outcome; nothing at all leaves the event dispatcher, which counts a rejection for
exactly the events it could not use (not an object, no command, data not an object, or a state's
``handle`` raised).

Examples per case come from a Hypothesis profile: ``ci`` (the default: 9,300 examples over 77
cases) or ``quick``; ``HYPOTHESIS_PROFILE=quick`` picks the other.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import json
import os
import tempfile
from pathlib import Path

import pytest
import trustme
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.collectors import MODULES, build
from exporter.collectors import crawler, daemon, data_layer, farmer, full_node, harvester, wallet
from exporter.daemon_ws import EventDispatcher
from exporter.rpc import OUTCOMES, SHAPE_ERRORS, RpcError, RpcStats, check_success, counted
from tests.conftest import ChiaRoot
from tests.fakes.services import SHARED_FIXTURES, TEST_FIXTURES, load_set
from tests.harness import config_for

# Measured on a 2-core machine with other test runs beside it: the file takes 36-40 s with ci,
# 6 s with quick.
settings.register_profile("ci", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("quick", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
EXAMPLES = settings.default.max_examples

BODIES = load_set("chia-2.7.5")
BIG_FARM = json.loads((TEST_FIXTURES / "farmer-big-farm" / "farmer" / "get_pool_state.json").read_text())
# get_peer_counts as Chia 2.7.5 answers it (chia/seeder/crawler_rpc_api.py: the four counts and
# the crawler's versions dict, version string -> peers; the RPC server adds success). The
# recorded stack runs no crawler, so the numbers are made up.
PEER_COUNTS = {"peer_counts": {"total_last_5_days": 4120, "reliable_nodes": 1733, "ipv4_last_5_days": 3900,
                               "ipv6_last_5_days": 220, "versions": {"2.7.5": 1200, "2.5.4": 300, "1.8.2": 12}},
               "success": True}

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
    "crawler.PeerCounts.parse": (crawler.PeerCounts.parse, PEER_COUNTS),
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


@pytest.mark.parametrize("name", sorted(PARSERS))
@given(data=st.data())
def test_parser_raises_only_shape_errors_on_mutated_bodies(name, data):
    parse, body = PARSERS[name]
    check(parse, data.draw(mutated(body)))


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=max(1, EXAMPLES // 2))  # the same random values for each: fewer are enough
@given(body=json_values)
def test_parser_raises_only_shape_errors_on_random_json(name, body):
    check(PARSERS[name][0], body)


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


def chia_root(**flags):
    root = ChiaRoot(Path(tempfile.mkdtemp()) / "root", trustme.CA())
    root.write_config({})
    return config_for(root.path, **flags)


# Every event the fixtures hold, by (origin, command): the recorded stream and the synthetic one
# (a reorg, timelord proofs and peaks, a crawler batch, pool partials, an unknown command). The
# daemon's own reply to register_service is not an event: the stream takes it before dispatch.
RECORDED_EVENTS = [json.loads(line) for f in (SHARED_FIXTURES / "daemon" / "events-metrics.jsonl",
                                              TEST_FIXTURES / "events" / "node-reorg-timelord-crawler.jsonl")
                   for line in f.read_text().splitlines() if line.strip()]
EVENTS: dict[tuple[str, str], list[dict]] = {}
for _m in RECORDED_EVENTS:
    if _m.get("origin") != "daemon":
        EVENTS.setdefault((_m["origin"], _m["command"]), []).append(_m)


class Spy:
    """Wraps a state's handle: how often it was called, and how often it raised."""

    def __init__(self, state) -> None:
        self.handle, self.calls, self.raised = state.handle, 0, 0
        state.handle = self

    def __call__(self, command: str, data: dict, now: float) -> None:
        self.calls += 1
        try:
            self.handle(command, data, now)
        except BaseException:
            self.raised += 1
            raise


def spied_dispatcher() -> tuple[EventDispatcher, dict]:
    _, states = build(chia_root(**{"collectors.crawler.enabled": True}), None)
    return EventDispatcher(states, clock=lambda: 1000.0), {id(s): Spy(s) for s in states}


DISPATCHER, SPIES = spied_dispatcher()


def test_every_event_state_command_has_fixtures():
    for state in DISPATCHER.states:
        for command in state.commands:
            assert (state.origin, command) in EVENTS, f"no fixture for {state.origin} {command}"


def handled_and_rejected(message) -> tuple[int, int]:
    """What dispatching ``message`` must do, worked out from the message alone: how many states
    get it, and how many rejections it costs before any state is called."""
    if not isinstance(message, dict) or not isinstance(message.get("command"), str):
        return 0, 1
    origin = message.get("origin") if isinstance(message.get("origin"), str) else "unknown"
    states = [s for s in DISPATCHER.states if s.origin == origin and message["command"] in s.commands]
    if not isinstance(message.get("data"), dict):
        return 0, len(states)
    return len(states), 0


def dispatch_checked(message=None, text: str | None = None) -> None:
    """Dispatch ``message`` (or ``text``, as read off the socket) and check that the states got
    it as its shape says and that the rejections counted are exactly those its shape calls for,
    plus one for each time a state's handle raised."""
    if text is None:
        handled, rejected = handled_and_rejected(message)
    else:
        try:
            handled, rejected = handled_and_rejected(json.loads(text))
        except (ValueError, RecursionError):
            handled, rejected = 0, 1
    calls, raised = sum(s.calls for s in SPIES.values()), sum(s.raised for s in SPIES.values())
    errors = sum(DISPATCHER.errors.values())
    if text is None:
        DISPATCHER.dispatch(message)
    else:
        DISPATCHER.dispatch_text(text)
    new_calls = sum(s.calls for s in SPIES.values()) - calls
    new_raised = sum(s.raised for s in SPIES.values()) - raised
    assert new_calls == handled, f"{new_calls} states handled it, not {handled}"
    assert sum(DISPATCHER.errors.values()) - errors == rejected + new_raised, "rejections miscounted"


@pytest.mark.parametrize("event", sorted(EVENTS), ids=lambda e: f"{e[0]}-{e[1]}")
@given(data=st.data())
def test_dispatcher_never_raises_and_counts_each_rejection(event, data):
    original = data.draw(st.sampled_from(EVENTS[event]))
    message = data.draw(mutated(original))
    dispatch_checked(message)
    text = json.dumps(message)
    dispatch_checked(text=text[: data.draw(st.integers(0, len(text)))])  # cut short on the wire
    list(DISPATCHER.render())  # and the states still render
    list(DISPATCHER.render_states(lambda state: True))


@given(message=json_values)
def test_dispatcher_on_random_json(message):
    dispatch_checked(message)
    dispatch_checked(text=json.dumps(message))
    list(DISPATCHER.render())
    list(DISPATCHER.render_states(lambda state: True))


def test_a_handle_that_raises_is_seen_and_counted():
    """The spies see a state's handle raise, and the dispatcher counts it once: the check above
    compares the two on every example."""
    spy = next(SPIES[id(s)] for s in DISPATCHER.states if s.origin == "chia_timelord")
    raised, errors = spy.raised, sum(DISPATCHER.errors.values())
    dispatch_checked({"command": "finished_pot", "origin": "chia_timelord", "data": {}})  # no estimated_ips
    assert spy.raised == raised + 1 and sum(DISPATCHER.errors.values()) == errors + 1


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


class RecordingStats(RpcStats):
    """RpcStats that also keeps every outcome in order."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded: list[tuple[str, str]] = []

    def record(self, collector: str, endpoint: str, outcome: str) -> None:
        super().record(collector, endpoint, outcome)
        self.recorded.append((endpoint, outcome))


COLLECTOR_BODIES = {"full_node": BODIES["full_node"], "farmer": {**BODIES["farmer"], "get_pool_state": BIG_FARM},
                    "harvester": BODIES["harvester"], "wallet": BODIES["wallet"], "daemon": BODIES["daemon"],
                    "data_layer": BODIES["data_layer"], "crawler": {"get_peer_counts": PEER_COUNTS}}
COLLECTOR_CONFIG = chia_root(**{"collectors.data_layer.enabled": True, "collectors.crawler.enabled": True})


def test_every_collector_is_covered():
    assert {c.name for c in build(COLLECTOR_CONFIG, None)[0]} == set(COLLECTOR_BODIES)


@pytest.mark.parametrize("name", sorted(COLLECTOR_BODIES))
@settings(max_examples=max(1, EXAMPLES // 2))  # a poll is a dozen calls
@given(data=st.data())
def test_collector_on_mutated_bodies_fails_only_as_a_counted_rpc_error(name, data):
    collector = next(c for c in build(COLLECTOR_CONFIG, None)[0] if c.name == name)  # fresh: no state between cases
    stats = RecordingStats()
    rpc = MutatingRpc(COLLECTOR_BODIES[name], data.draw, stats)
    try:
        snapshot = asyncio.run(collector.fetch(rpc))
    except RpcError as e:
        # The error the poll failed with is a call's, counted with its outcome.
        assert e.outcome in OUTCOMES and e.outcome != "ok"
        assert (e.endpoint, e.outcome) in stats.recorded, f"{e} was not counted: {stats.recorded}"
        snapshot = None
    assert len(stats.recorded) == rpc.calls, "a call was not counted"
    if snapshot is not None:
        list(collector.render(snapshot))  # whatever was accepted renders

