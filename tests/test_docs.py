"""The documentation that is generated stays in step with what the exporter serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_metric_reference_is_current():
    proc = subprocess.run([sys.executable, "scripts/metric_reference.py", "--check"], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_metric_reference_lists_every_golden_family():
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import metric_reference
    finally:
        sys.path.pop(0)
    readme = (REPO / "README.md").read_text()
    for name, family in metric_reference.families().items():
        shown = name
        assert f"| `{shown}` |" in readme, f"{shown} is served but missing from the README"
    contract = (REPO.parent / "shared" / "spec" / "metrics.md")
    if contract.exists():  # every full-node name of the contract is in the reference
        for name in ("chia_full_node_synced", "chia_full_node_peak_height", "chia_full_node_netspace_bytes",
                     "chia_exporter_collector_success", "chia_exporter_rpc_requests_total"):
            assert f"`{name}`" in readme
