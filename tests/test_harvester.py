"""get_plots counting: batches cut at object boundaries, v2 decoding, and bad bodies."""

from __future__ import annotations

import asyncio
import json

import pytest

import exporter.collectors.harvester as harvester
from benchmarks.synthetic_farm import plots_body
from exporter.collectors.harvester import parse_plots
from exporter.rpc import SHAPE_ERRORS, RpcError
from tests.fakes.services import Fault
from tests.fakes.services import SHARED_FIXTURES


def counts_by_plain_json(body: bytes) -> dict:
    """The expected counts, the obvious way."""
    out: dict = {}
    for p in json.loads(body)["plots"]:
        key = ("v2" if p["size"] & 0x80 else "v1", p["compression_level"], p["pool_contract_puzzle_hash"] is not None)
        out[key] = out.get(key, 0) + 1
    return out


def counts_of(result) -> dict:
    out: dict = {}
    for (k, fmt, comp, pool), n, _ in result.by_kind:
        key = (fmt, int(comp), pool == "pool")
        out[key] = out.get(key, 0) + n
    return out


@pytest.fixture
def always_batched(monkeypatch):
    """Cut even small bodies into batches (by default they are parsed whole)."""
    monkeypatch.setattr(harvester, "WHOLE_BODY_BYTES", 0)


@pytest.mark.parametrize("batch", [300, 5000, 1 << 20])
async def test_batches_count_every_plot_once(batch, monkeypatch, always_batched):
    monkeypatch.setattr(harvester, "BATCH_BYTES", batch)
    body = plots_body(2500)
    result = await parse_plots(bytearray(body))
    assert result.total == 2500
    assert counts_of(result) == counts_by_plain_json(body)
    assert sum(size for _, _, size in result.by_kind) == sum(p["file_size"] for p in json.loads(body)["plots"])


@pytest.mark.parametrize("name", ["/mnt/a/}, {odd}, {name-ü.plot", "/mnt/b/}, {.plot", '/mnt/c/}], "success": x.plot'])
@pytest.mark.parametrize("where", [5, 200, 299])
async def test_a_cut_inside_a_file_name_moves_to_the_next_boundary(name, where, monkeypatch, always_batched):
    data = json.loads(plots_body(300))
    data["plots"][where]["filename"] = name
    body = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
    # The first cut lands on the separator inside the name (where the name holds one).
    at = body.find(name.encode())
    inside = body.find(harvester.PLOT_SEPARATOR, at, at + len(name.encode()))
    start = body.find(harvester.PLOTS_KEY) + len(harvester.PLOTS_KEY)
    monkeypatch.setattr(harvester, "BATCH_BYTES", max(1, (inside if inside > 0 else at) - start - 1))
    result = await parse_plots(body)
    assert result.total == 300
    assert counts_of(result) == counts_by_plain_json(body)


async def test_small_bodies_are_parsed_whole(monkeypatch):
    calls = []
    monkeypatch.setattr(harvester, "_one_by_one", lambda *a: calls.append(a))
    body = plots_body(1000)
    assert len(body) < harvester.WHOLE_BODY_BYTES
    assert (await parse_plots(body)).total == 1000
    assert calls == []


async def test_success_false_keeps_chia_error_text():
    from exporter.rpc import RpcError

    with pytest.raises(RpcError) as e:
        await parse_plots(b'{"error": "plot manager not started", "success": false}')
    assert e.value.outcome == "error" and "plot manager not started" in str(e.value)


async def test_v2_size_is_decoded_never_printed_as_k():
    body = (SHARED_FIXTURES / "harvester" / "get_plots.json").read_bytes()  # pretty-printed: other layout
    result = await parse_plots(body)
    kinds = {k: n for k, n, _ in result.by_kind}
    assert kinds[("19", "v1", "0", "og")] == 3
    assert kinds[("20", "v2", "0", "og")] == 3  # size 130/131 = 0x80 | strength; k from the file name
    assert dict(result.by_strength) == {2: 2, 3: 1}
    assert not any(k[0] in ("130", "131", "147") for k in kinds)


@pytest.mark.parametrize("body", [
    b"", b"not json", b'{"plots": [', b'{"plots": [{"size": 32}]}', b'{"success": true, "plots": [1, 2]}',
    b'{"failed_to_open_filenames": [], "not_found_filenames": [], "plots": [{"size": "32", "file_size": 1, '
    b'"compression_level": 0, "pool_contract_puzzle_hash": null, "filename": "x"}], "success": true}',
])
async def test_bad_bodies_raise_shape_errors_only(body):
    with pytest.raises((*SHAPE_ERRORS, RpcError)):
        await parse_plots(bytearray(body))


async def test_the_loop_keeps_running_during_a_large_parse(monkeypatch, always_batched):
    monkeypatch.setattr(harvester, "BATCH_BYTES", 64 * 1024)
    body = bytearray(plots_body(20000))
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await parse_plots(body)
    task.cancel()
    assert ticks >= 100  # the parse yielded between its ~180 batches


async def harvester_runner(fake_farm_factory, **flags):
    from exporter.app import Exporter
    from tests.harness import config_for

    farm = await fake_farm_factory()
    exporter = Exporter(config_for(farm.root.path, **flags))
    await exporter.start(background=False)
    runner = exporter.runner("harvester")
    now = [1000.0]
    runner.collector._monotonic = lambda: now[0]

    def calls() -> int:
        return sum(1 for endpoint, _ in farm.services["harvester"].calls if endpoint == "get_plots")
    calls.service = farm.services["harvester"]
    return exporter, runner, now, calls


async def test_get_plots_is_fetched_when_the_count_changed_at_most_once_a_gap(fake_farm_factory):
    exporter, runner, now, calls = await harvester_runner(fake_farm_factory, **{"events.enabled": False})
    collector = runner.collector
    info = {"time": 0.01, "eligible_plots": 1, "found_proofs": 0}
    try:
        await runner.poll_once()
        assert calls() == 1
        # Plots being copied in: the count moves at every signage point, the list is not refetched.
        for i in range(20):
            collector.events.handle("farming_info", {**info, "total_plots": 7 + i}, now=float(i))
            now[0] += 10
            await runner.poll_once()
        assert calls() == 1, "get_plots again within PLOTS_MIN_GAP"
        assert runner.success
        now[0] += harvester.PLOTS_MIN_GAP  # the gap is over and the count differs: recount once
        await runner.poll_once()
        await runner.poll_once()
        assert calls() == 2
        collector.events.handle("farming_info", {**info, "total_plots": 6}, now=30.0)  # matches the list
        now[0] += harvester.PLOTS_MIN_GAP + 1
        await runner.poll_once()
        assert calls() == 2, "the count is the same: no refetch"
        now[0] += harvester.PLOTS_MAX_AGE  # an hour on: recount even if the count is the same
        await runner.poll_once()
        assert calls() == 3
        assert runner.success
    finally:
        await exporter.stop()


async def test_without_a_plot_count_the_list_is_refetched_every_gap(fake_farm_factory):
    exporter, runner, now, calls = await harvester_runner(fake_farm_factory, **{"events.enabled": False})
    try:
        await runner.poll_once()
        now[0] += harvester.PLOTS_MIN_GAP / 2
        await runner.poll_once()
        assert calls() == 1
        now[0] += harvester.PLOTS_MIN_GAP
        await runner.poll_once()
        assert calls() == 2
    finally:
        await exporter.stop()


@pytest.mark.parametrize("batch", [500, 5000])  # 500: smaller than one plot object, the window widens
async def test_an_unrecognised_layout_is_read_a_window_at_a_time(batch, monkeypatch, always_batched):
    monkeypatch.setattr(harvester, "BATCH_BYTES", batch)
    data = json.loads(plots_body(300))
    data["plots"][7]["filename"] = "/mnt/ü/plot-k32-ä.plot"  # multibyte characters across window ends
    body = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False).encode()  # "},\n    {": no separator found
    result = await parse_plots(body)
    assert result.total == 300
    assert counts_of(result) == counts_by_plain_json(body)


async def test_the_body_is_left_as_it_was(always_batched, monkeypatch):
    monkeypatch.setattr(harvester, "BATCH_BYTES", 3000)
    body = bytearray(plots_body(500))
    before = bytes(body)
    await parse_plots(body)
    assert body == before  # the brackets put in for each batch are taken out again



@pytest.mark.parametrize("fault", [Fault(status=500), Fault(raw=b'{"success": false, "error": "busy"}')])
async def test_a_failing_get_plots_waits_a_gap_and_the_last_list_stays(fake_farm_factory, fault):
    exporter, runner, now, calls = await harvester_runner(fake_farm_factory, **{"events.enabled": False})
    try:
        await runner.poll_once()
        calls.service.faults["get_plots"] = fault
        runner.collector._plots = None  # as at start: no list yet, and get_plots fails
        runner.collector._plots_error = None
        await runner.poll_once()
        assert not runner.success and calls() == 2
        for _ in range(4):  # polls every minute: the harvester is not asked again within the gap
            now[0] += 60
            await runner.poll_once()
        assert calls() == 2 and not runner.success and "get_plots" in runner.last_error
        del calls.service.faults["get_plots"]
        now[0] += harvester.PLOTS_MIN_GAP
        await runner.poll_once()
        assert calls() == 3 and runner.success
        calls.service.faults["get_plots"] = fault  # a list exists: a failed recount keeps it
        now[0] += harvester.PLOTS_MAX_AGE + 1
        await runner.poll_once()
        assert calls() == 4 and runner.success and runner.snapshot.plots.total == 6
        outcomes = {k[2] for k, n in exporter.stats.counts.items() if k[1] == "get_plots"}
        assert "error" in outcomes  # each failed attempt is counted
    finally:
        await exporter.stop()
