"""get_plots counting: batches cut at object boundaries, v2 decoding, and bad bodies."""

from __future__ import annotations

import asyncio
import json

import pytest

import exporter.collectors.harvester as harvester
from benchmarks.synthetic_farm import plots_body
from exporter.collectors.harvester import parse_plots
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


@pytest.mark.parametrize("batch", [300, 5000, 1 << 20])
async def test_batches_count_every_plot_once(batch, monkeypatch):
    monkeypatch.setattr(harvester, "BATCH_BYTES", batch)
    body = plots_body(2500)
    result = await parse_plots(bytearray(body))
    assert result.total == 2500
    assert counts_of(result) == counts_by_plain_json(body)
    assert sum(size for _, _, size in result.by_kind) == sum(p["file_size"] for p in json.loads(body)["plots"])


async def test_a_separator_inside_a_file_name_falls_back_to_one_by_one(monkeypatch):
    monkeypatch.setattr(harvester, "BATCH_BYTES", 200)
    data = json.loads(plots_body(300))
    data["plots"][5]["filename"] = "/mnt/a/}, {odd}, {name-ü.plot"
    data["plots"][200]["filename"] = "/mnt/b/}, {.plot"
    body = json.dumps(data, sort_keys=True, ensure_ascii=False).encode()
    result = await parse_plots(body)
    assert result.total == 300
    assert counts_of(result) == counts_by_plain_json(body)


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
    b'{"plots": [], "success": false}',
])
async def test_bad_bodies_raise_shape_errors_only(body):
    with pytest.raises((ValueError, TypeError, KeyError, AttributeError, IndexError)):
        await parse_plots(bytearray(body))


async def test_the_loop_keeps_running_during_a_large_parse(monkeypatch):
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


async def test_get_plots_is_fetched_only_when_the_plot_count_changed(fake_farm_factory):
    from exporter.app import Exporter
    from tests.harness import config_for

    farm = await fake_farm_factory()
    exporter = Exporter(config_for(farm.root.path, **{"events.enabled": False}))
    await exporter.start(background=False)
    try:
        runner = exporter.runner("harvester")
        collector = runner.collector
        now = [1000.0]
        collector._monotonic = lambda: now[0]
        calls = lambda: sum(1 for endpoint, _ in farm.services["harvester"].calls if endpoint == "get_plots")  # noqa: E731
        info = {"time": 0.01, "eligible_plots": 1, "found_proofs": 0}
        await runner.poll_once()
        assert calls() == 1
        collector.events.handle("farming_info", {**info, "total_plots": 6}, now=1.0)  # same count as get_plots
        await runner.poll_once()
        assert calls() == 1
        collector.events.handle("farming_info", {**info, "total_plots": 7}, now=2.0)  # a plot was added
        await runner.poll_once()
        assert calls() == 2
        collector.events.handle("farming_info", {**info, "total_plots": 6}, now=3.0)  # matches the new list
        await runner.poll_once()
        await runner.poll_once()
        assert calls() == 2
        now[0] += harvester.PLOTS_MAX_AGE + 1  # an hour on: recount even if the count is the same
        await runner.poll_once()
        assert calls() == 3
        assert runner.success
    finally:
        await exporter.stop()
