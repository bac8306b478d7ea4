"""The /metrics text for each fixture set, compared byte for byte with tests/golden/*.prom.

Fake services over real mutual TLS answer with the bodies recorded from Chia 2.7.5 (and the
synthetic sets in tests/fixtures); ``pytest --update-golden`` rewrites the files.
"""

from __future__ import annotations

import pytest

from tests.harness import GOLDEN, assert_golden, config_for, render_once

# Sets rendered with every collector on and the event stream up, no event replayed (the replayed
# streams' goldens are in test_events.py).
SETS = ["chia-2.7.5", "full-node-down", "full-node-success-false", "full-node-not-tx-peak", "full-node-initializing",
        "farmer-big-farm", "farmer-pool-state-error", "farmer-pools-null-difficulty",
        "harvester-mixed-plots", "wallet-multi", "wallet-syncing-old",
        "daemon-partial", "data-layer-fresh", "data-layer-many", "data-layer-absent"]
# Settings a set is rendered with: a full node the user enabled is expected on this host, so its
# refused port is a failure; left on by default (data-layer-absent) it is "not installed here".
FLAGS = {"full-node-down": {"collectors.full_node.enabled": True}}


@pytest.mark.parametrize("fixture_set", SETS)
async def test_golden(fixture_set, fake_farm_factory, update_golden):
    farm = await fake_farm_factory(fixture_set)
    text = await render_once(config_for(farm.root.path, **FLAGS.get(fixture_set, {})))
    assert_golden(fixture_set, text, update_golden)


@pytest.mark.parametrize("fixture_set", SETS)
async def test_golden_through_the_daemon(fixture_set, fake_farm_factory, update_golden):
    """The same collectors and the same goldens with every request routed through the daemon's WebSocket.

    A service that is down gives the same outcome too: the daemon drops a request to a service
    that is not connected, and the exporter, asking the daemon's ``is_running``, counts it as
    ``refused``, as a closed port is over HTTPS (so an absent DataLayer stays out of the output).
    A set whose output could still differ by design would keep it in ``<set>.daemon.prom``.
    """
    farm = await fake_farm_factory(fixture_set)
    quick = {f"collectors.{name}.timeout": "1s"
             for name in ("full_node", "farmer", "harvester", "wallet", "daemon", "data_layer")}
    config = config_for(farm.root.path, transport="daemon", **quick, **FLAGS.get(fixture_set, {}))
    text = await render_once(config)
    # --update-golden writes only an existing variant file; the base file belongs to the https run.
    variant_exists = (GOLDEN / f"{fixture_set}.daemon.prom").exists()
    assert_golden(fixture_set, text, update_golden and variant_exists, variant="daemon")
