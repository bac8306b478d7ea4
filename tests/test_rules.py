"""Rules, configs and deployment files, checked by the real tools: promtool, amtool, hadolint,
docker compose (config only: no engine is needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROM = REPO / "prometheus"


def tool(name: str) -> str:
    found = shutil.which(name) or (str(Path(sys.executable).parent / name)
                                   if (Path(sys.executable).parent / name).exists() else None)
    if found is None:
        pytest.fail(f"{name} is not installed: bash scripts/test.sh installs it")
    return found


def run(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_promtool_checks_every_rule_file():
    files = sorted(str(p) for p in (PROM / "rules").glob("*.yml"))
    assert len(files) == 2
    run(tool("promtool"), "check", "rules", *files)


def test_promtool_unit_tests_of_every_alert():
    out = run(tool("promtool"), "test", "rules", "tests/alerts.test.yml", cwd=PROM)
    assert "SUCCESS" in out.stdout + out.stderr
    # Every alert has a test case.
    alerts = {r["alert"] for g in yaml.safe_load((PROM / "rules/chia-alerts.rules.yml").read_text())["groups"]
              for r in g["rules"]}
    tested = {t["alertname"] for case in yaml.safe_load((PROM / "tests/alerts.test.yml").read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    assert alerts == tested


def test_every_alert_has_for_severity_annotations_and_a_runbook_section():
    runbook = (REPO / "docs" / "runbook.md").read_text()
    for group in yaml.safe_load((PROM / "rules/chia-alerts.rules.yml").read_text())["groups"]:
        for rule in group["rules"]:
            assert "for" in rule and rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            notes = rule["annotations"]
            assert "{{ $labels.instance }}" in notes["summary"] + notes["description"], rule["alert"]
            anchor = notes["runbook_url"].rsplit("#", 1)[1]
            assert anchor == rule["alert"].lower() and f"## {rule['alert']}\n" in runbook, rule["alert"]


@pytest.mark.parametrize("config,agent", [("prometheus.yml", False), ("prometheus-demo.yml", False), ("examples/file_sd.yml", False),
                                          ("examples/federation.yml", False), ("examples/agent.yml", True)])
def test_promtool_accepts_the_scrape_configs(config, agent):
    args = [tool("promtool"), "check", "config"] + (["--agent"] if agent else []) + [config]
    run(*args, cwd=PROM)


def test_alertmanager_example_route():
    run(tool("amtool"), "check-config", str(PROM / "alertmanager.yml"))


def test_dockerfile_is_hadolint_clean_and_runs_as_non_root():
    run(tool("hadolint"), str(REPO / "Dockerfile"))
    text = (REPO / "Dockerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text


def test_compose_file_is_valid():
    env = {**os.environ, "CHIA_ROOT": str(REPO)}
    proc = subprocess.run([tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"exporter", "prometheus", "alertmanager", "grafana"}
    assert any(v.endswith(":/chia:ro") for v in compose["services"]["exporter"]["volumes"])


def test_demo_image_and_compose_file():
    run(tool("hadolint"), str(REPO / "docker" / "demo.Dockerfile"))
    proc = subprocess.run([tool("docker-compose"), "-f", "docker-compose.demo.yml", "config", "-q"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    compose = yaml.safe_load((REPO / "docker-compose.demo.yml").read_text())
    assert set(compose["services"]) == {"demo", "prometheus", "alertmanager", "grafana"}


def test_systemd_unit_example():
    unit = (REPO / "examples" / "chia-prometheus-exporter.service").read_text()
    for line in ("ExecStart=/usr/local/bin/chia-prometheus-exporter", "NoNewPrivileges=true", "ProtectSystem=strict",
                 "RestartPreventExitStatus=2", "User=chia"):
        assert line in unit
