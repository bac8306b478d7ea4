"""The /metrics text for each fixture set, compared byte for byte with tests/golden/*.prom.

Fake services over real mutual TLS answer with the bodies recorded from Chia 2.7.5 (and the
synthetic sets in tests/fixtures); ``pytest --update-golden`` rewrites the files.
"""

from __future__ import annotations

import pytest

from tests.harness import assert_golden, config_for, render_once

# Sets rendered with every collector on; events off (their goldens are in test_events_golden.py).
SETS = ["chia-2.7.5", "full-node-down", "full-node-success-false", "full-node-not-tx-peak"]


@pytest.mark.parametrize("fixture_set", SETS)
async def test_golden(fixture_set, fake_farm_factory, update_golden):
    farm = await fake_farm_factory(fixture_set)
    text = await render_once(config_for(farm.root.path, **{"events.enabled": False}))
    assert_golden(fixture_set, text, update_golden)
