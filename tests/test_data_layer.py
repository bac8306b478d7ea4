"""The DataLayer collector's enablement: on where config.yaml has a data_layer section, shown
only once the service has answered, and an ordinary collector after that."""

from __future__ import annotations

import yaml

from exporter.app import Exporter
from tests.harness import config_for, frozen_clock


def test_off_without_a_data_layer_section(chia_root):
    path = chia_root.write_config({})
    config = yaml.safe_load(path.read_text())
    del config["data_layer"]
    path.write_text(yaml.safe_dump(config))
    assert not config_for(chia_root.path).collectors["data_layer"].enabled
    assert config_for(chia_root.path, **{"collectors.data_layer.enabled": True}).collectors["data_layer"].enabled


async def test_absent_until_seen_then_failures_count(fake_farm_factory):
    farm = await fake_farm_factory()
    dl = farm.services["data_layer"]
    port = dl.port
    await dl.stop()
    exporter = Exporter(config_for(farm.root.path, **{"events.enabled": False}), clock=frozen_clock())
    await exporter.start(background=False)
    try:
        runner = exporter.runner("data_layer")
        await runner.poll_once()
        assert runner.absent and runner.state == "absent"
        text = "\n".join(str(s) for fam in exporter.collect() for s in fam.samples)
        assert "data_layer" not in text.replace('node_type="data_layer"', "").replace('component="data_layer"', "")
        await dl.start(port)
        await runner.poll_once()
        assert runner.success and not runner.absent
        await dl.stop()
        await runner.poll_once()
        assert not runner.absent and runner.state == "failing"  # seen once: now a real failure
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in exporter.collect() for s in fam.samples}
        assert samples[("chia_exporter_collector_success", (("collector", "data_layer"),))] == 0.0
    finally:
        await exporter.stop()
