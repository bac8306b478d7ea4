"""The /metrics text for each fixture set, compared byte for byte with tests/golden/*.prom.

Fake services over real mutual TLS answer with the bodies recorded from Chia 2.7.5 (and the
synthetic sets in tests/fixtures); ``pytest --update-golden`` rewrites the files.
"""

from __future__ import annotations

import pytest

from tests.harness import GOLDEN, assert_golden, config_for, render_once

# Sets rendered with every collector on; events off (their goldens are in test_events_golden.py).
SETS = ["chia-2.7.5", "full-node-down", "full-node-success-false", "full-node-not-tx-peak", "farmer-big-farm",
        "farmer-pool-state-error", "harvester-mixed-plots", "wallet-multi", "wallet-syncing-old", "daemon-partial",
        "data-layer-fresh", "data-layer-many", "data-layer-absent"]


@pytest.mark.parametrize("fixture_set", SETS)
async def test_golden(fixture_set, fake_farm_factory, update_golden):
    farm = await fake_farm_factory(fixture_set)
    text = await render_once(config_for(farm.root.path, **{"events.enabled": False}))
    assert_golden(fixture_set, text, update_golden)


@pytest.mark.parametrize("fixture_set", SETS)
async def test_golden_through_the_daemon(fixture_set, fake_farm_factory, update_golden):
    """The same collectors and goldens with every request routed through the daemon's WebSocket.

    Only a service that is down differs: the daemon drops a request to a service that is not
    connected, so the outcome is a timeout, not a refused connection (``<set>.daemon.prom``).
    """
    farm = await fake_farm_factory(fixture_set)
    quick = {f"collectors.{name}.timeout": "1s" for name in ("full_node", "farmer", "harvester", "wallet", "daemon")}
    config = config_for(farm.root.path, transport="daemon", **quick)
    text = await render_once(config)
    # The stream is up in this run: that one line differs from the https goldens by design.
    text = text.replace("chia_exporter_websocket_connected 1.0", "chia_exporter_websocket_connected 0.0")
    # --update-golden writes only an existing variant file; the base file belongs to the https run.
    variant_exists = (GOLDEN / f"{fixture_set}.daemon.prom").exists()
    assert_golden(fixture_set, text, update_golden and variant_exists, variant="daemon")
