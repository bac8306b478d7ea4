"""Rules, configs and deployment files, checked by the real tools: promtool, amtool, hadolint,
docker compose (config only: no engine is needed)."""

from __future__ import annotations

import os
import re
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


SHIPPED_RULES = ["chia-alerts.rules.yml", "chia-recording.rules.yml", "chia-thresholds.rules.yml"]
UNIT_TESTS = ["tests/alerts.test.yml", "tests/thresholds.test.yml"]


def test_promtool_checks_every_rule_file():
    # a farm's own local*.rules.yml (git ignores them) may sit beside the shipped files
    shipped = sorted(p.name for p in (PROM / "rules").glob("*.yml") if not p.name.startswith("local"))
    assert shipped == SHIPPED_RULES
    run(tool("promtool"), "check", "rules", *(str(PROM / "rules" / f) for f in shipped),
        str(PROM / "examples/local-thresholds.rules.yml"), str(PROM / "tests/override-thresholds.rules.yml"))


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load((PROM / "rules/chia-alerts.rules.yml").read_text())["groups"] for r in g["rules"]
            if "alert" in r]


def duration_minutes(text: str) -> float:
    units = {"s": 1 / 60, "m": 1, "h": 60, "d": 1440}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhd])", str(text)))


def shards(unit: str, directory: Path, count: int = 2) -> list[Path]:
    """The unit file's cases cut into ``count`` files of about equal cost (promtool evaluates every
    rule at every step, so a case costs about its longest eval_time), to run side by side on
    separate cores. The rule files are named by absolute path from the shards' folder."""
    doc = yaml.safe_load((PROM / unit).read_text())
    base = (PROM / unit).parent
    doc["rule_files"] = [str((base / f).resolve()) for f in doc["rule_files"]]
    cost = lambda case: max([duration_minutes(t.get("eval_time", 0)) for t in case.get("alert_rule_test", [])]
                            + [duration_minutes(t.get("eval_time", 0)) for t in case.get("promql_expr_test", [])] + [1])
    buckets: list[list] = [[] for _ in range(count)]
    totals = [0.0] * count
    for case in sorted(doc["tests"], key=cost, reverse=True):
        i = totals.index(min(totals))
        buckets[i].append(case)
        totals[i] += cost(case)
    paths = []
    for i, cases in enumerate(b for b in buckets if b):
        path = directory / f"{Path(unit).stem}-{i}.yml"
        path.write_text(yaml.safe_dump({**doc, "tests": cases}))
        paths.append(path)
    return paths


def test_promtool_unit_tests_of_every_alert(tmp_path):
    # The shipped files as they are, cut into shards that run at once (about half the time on 2 cores).
    files = [path for unit in UNIT_TESTS for path in shards(unit, tmp_path)]
    runs = [(f, subprocess.Popen([tool("promtool"), "test", "rules", str(f)], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)) for f in files]
    for f, proc in runs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0 and "SUCCESS" in out, f"promtool test rules {f.name} failed:\n{out}"
    assert sum(len(yaml.safe_load(f.read_text())["tests"]) for f in files) == sum(
        len(yaml.safe_load((PROM / u).read_text())["tests"]) for u in UNIT_TESTS)  # no case left out
    # Every alert (every severity of it) has a case where it fires, and a case where it must not:
    # `exp_alerts: []` at some eval_time (promtool then fails if it fires there).
    fires: dict[str, set[str]] = {}
    quiet: set[str] = set()
    for case in (c for unit in UNIT_TESTS for c in yaml.safe_load((PROM / unit).read_text())["tests"]):
        for t in case.get("alert_rule_test", []):
            if "exp_alerts" in t and t["exp_alerts"] == []:
                quiet.add(t["alertname"])
            for alert in t.get("exp_alerts") or []:
                fires.setdefault(t["alertname"], set()).add(alert["exp_labels"]["severity"])
    expected: dict[str, set[str]] = {}
    for rule in alert_rules():
        expected.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    assert fires == expected, "alerts (and severities) without a firing case, or cases for unknown alerts"
    assert quiet == set(expected), f"alerts without a must-not-fire case: {sorted(set(expected) - quiet)}"


def thresholds() -> dict[str, str]:
    """The shipped thresholds: name -> default, each `override or vector(default)`."""
    import re
    out = {}
    for rule in yaml.safe_load((PROM / "rules/chia-thresholds.rules.yml").read_text())["groups"][0]["rules"]:
        name = rule["record"].removeprefix("chia:alert_threshold:")
        m = re.fullmatch(rf"chia:alert_threshold_override:{name} or vector\(([0-9.]+)\)", rule["expr"].strip())
        assert m, f"{rule['record']}: not `chia:alert_threshold_override:{name} or vector(N)`"
        out[name] = m.group(1)
    return out


def test_every_threshold_is_used_overridable_and_documented():
    """Alerts compare against scalar(chia:alert_threshold:NAME); every such series is shipped with
    its default, the operator's example lists it with the same default, and the runbook's Tuning
    table names it with that default and the alerts that use it."""
    import re
    defaults = thresholds()
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in re.findall(r"chia:alert_threshold:(\w+)", rule["expr"]):
            assert f"scalar(chia:alert_threshold:{name})" in rule["expr"], f"{rule['alert']}: use scalar() for {name}"
            used.setdefault(name, set()).add(rule["alert"])
    assert set(used) == set(defaults), "thresholds unused, or used and not shipped"
    example = yaml.safe_load((PROM / "examples/local-thresholds.rules.yml").read_text())["groups"][0]["rules"]
    assert {r["record"].removeprefix("chia:alert_threshold_override:"): r["expr"] for r in example} == \
        {name: f"vector({value})" for name, value in defaults.items()}
    tuning = (REPO / "docs/runbook.md").read_text().split("\n## Tuning\n", 1)[1].split("\n## ", 1)[0]
    rows = {m.group(1): (m.group(2), m.group(3)) for m in
            re.finditer(r"^\| `(\w+)` \| ([0-9.]+) \| ([^|]+) \|", tuning, re.M)}
    assert set(rows) == set(defaults), "the runbook's Tuning table and the shipped thresholds differ"
    for name, (value, alerts) in rows.items():
        assert value == defaults[name], f"runbook: {name} = {value}, shipped {defaults[name]}"
        assert set(re.findall(r"Chia\w+", alerts)) == used[name], f"runbook: {name} is used by {sorted(used[name])}"


def test_every_config_that_loads_the_alerts_loads_the_thresholds():
    """Without the thresholds file the alerts that use one compare against NaN and never fire."""
    import fnmatch
    for config in ("prometheus.yml", "prometheus-demo.yml", "examples/file_sd.yml"):
        globs = yaml.safe_load((PROM / config).read_text())["rule_files"]
        loaded = {f for f in SHIPPED_RULES if any(fnmatch.fnmatch(f"rules/{f}", g.removeprefix("../")) for g in globs)}
        assert loaded == set(SHIPPED_RULES), f"{config} loads {sorted(loaded)}"
        # and a farm's local.rules.yml, which the runbook tells it to create
        assert any(fnmatch.fnmatch("rules/local.rules.yml", g.removeprefix("../")) for g in globs), config
    for unit in UNIT_TESTS:  # thresholds first: the alerts see them in the same evaluation
        assert yaml.safe_load((PROM / unit).read_text())["rule_files"][0] == "../rules/chia-thresholds.rules.yml"
    # a central Prometheus does not pull the sites' thresholds next to its own
    match = yaml.safe_load((PROM / "examples/federation.yml").read_text())["scrape_configs"][0]["params"]["match[]"]
    assert any('__name__!~"chia:alert_threshold.*"' in m for m in match if "chia:" in m)


def test_readme_scrape_job_is_one_the_rules_know():
    """ChiaExporterDown knows an exporter that never answered only by a job named chia*."""
    import re
    readme = (REPO / "README.md").read_text()
    jobs = re.findall(r"job_name: (\S+)", readme)
    assert jobs and all(re.fullmatch("chia.*", j) for j in jobs)
    assert 'up{job=~"chia.*"}' in next(r["expr"] for r in alert_rules() if r["alert"] == "ChiaExporterDown")


def test_rules_keep_target_and_external_labels():
    """A central ruler sees many farms whose exporters all answer on localhost:9914, told apart by
    an external label (`farm`): rules aggregate `without` and join `ignoring`, so no label they do
    not know of is dropped (`by (job, instance)` would merge the farms)."""
    import re
    for f in sorted((PROM / "rules").glob("*.yml")):
        for group in yaml.safe_load(f.read_text())["groups"]:
            for rule in group["rules"]:
                expr = re.sub(r"#.*", "", rule["expr"])
                assert not re.search(r"\b(by|on)\s*\(", expr), f"{rule.get('alert') or rule['record']}: use without/ignoring"


def test_every_alert_has_for_severity_annotations_and_a_runbook_section():
    runbook = (REPO / "docs" / "runbook.md").read_text()
    for group in yaml.safe_load((PROM / "rules/chia-alerts.rules.yml").read_text())["groups"]:
        for rule in group["rules"]:
            assert "for" in rule and rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
            notes = rule["annotations"]
            assert "{{ $labels.instance }}" in notes["summary"] + notes["description"], rule["alert"]
            # and the value: how long, which height, how many (a bare "is down" is not enough)
            assert "$value" in notes["summary"] + notes["description"], rule["alert"]
            if "node_id" in notes["summary"] + notes["description"]:
                assert "$labels.host" in notes["summary"] + notes["description"], rule["alert"]
            anchor = notes["runbook_url"].rsplit("#", 1)[1]
            assert anchor == rule["alert"].lower() and f"## {rule['alert']}\n" in runbook, rule["alert"]
            section = runbook.split(f"## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
            for part in ("**Means:**", "**Check", "Fix", "**Tune:**"):
                assert part in section, f"runbook section {rule['alert']} has no {part}"
    # and no section for an alert that no longer exists
    alerts = {r["alert"] for r in alert_rules()}
    assert {line[3:] for line in runbook.splitlines() if line.startswith("## ")} == alerts | {"Tuning"}


AGENTS = sorted(p.relative_to(PROM).as_posix() for p in (PROM / "examples").glob("agent*.yml"))


@pytest.mark.parametrize("config,agent", [("prometheus.yml", False), ("prometheus-demo.yml", False), ("examples/file_sd.yml", False),
                                          ("examples/federation.yml", False)] + [(a, True) for a in AGENTS])
def test_promtool_accepts_the_scrape_configs(config, agent):
    args = [tool("promtool"), "check", "config"] + (["--agent"] if agent else []) + [config]
    run(*args, cwd=PROM)


def test_agent_examples_keep_farms_apart():
    """Every farm's agent writes to the same store: each has a `farm` external label of its own,
    and a scrape of localhost gets the host's name as its instance."""
    assert len(AGENTS) >= 2
    farms = []
    for name in AGENTS:
        config = yaml.safe_load((PROM / name).read_text())
        farms.append(config["global"]["external_labels"]["farm"])
        for job in config["scrape_configs"]:
            local = [t for sc in job.get("static_configs", []) for t in sc["targets"]
                     if t.startswith(("localhost:", "127.0.0.1:"))]
            if local:
                relabel = [r for r in job.get("relabel_configs", []) if r.get("target_label") == "instance"]
                assert relabel and "localhost" not in relabel[0]["replacement"], f"{name}: localhost kept as instance"
    assert len(set(farms)) == len(farms), f"two agent examples share a farm label: {farms}"
    federation = (PROM / "examples" / "federation.yml").read_text()
    assert "honor_labels: true" in federation and "external_labels" in federation


def test_alertmanager_example_route():
    run(tool("amtool"), "check-config", str(PROM / "alertmanager.yml"))
    config = yaml.safe_load((PROM / "alertmanager.yml").read_text())
    sources = " ".join(m for rule in config["inhibit_rules"] for m in rule["source_matchers"])
    # the pages of a dead farm silence their own consequences (no duplicate noise)
    for alert in ("ChiaExporterDown", "ChiaFarmerDown", "ChiaFullNodeDown"):
        assert alert in sources, alert
    assert all("farm" in rule["equal"] and "instance" in rule["equal"] for rule in config["inhibit_rules"])

    def inhibits(source: str, target: str, **labels: str) -> bool:
        """Whether some inhibit rule lets an alert `source` silence `target` (regex matchers)."""
        import re
        def matches(matchers: list[str], alert: dict) -> bool:
            for m in matchers:
                key, op, value = re.fullmatch(r'(\w+)(=~|!=|=)"(.*)"', m).groups()
                got = alert.get(key, "")
                ok = re.fullmatch(value, got) if op == "=~" else got == value
                if bool(ok) == (op == "!="):
                    return False
            return True
        return any(matches(r["source_matchers"], {"alertname": source, **labels})
                   and matches(r["target_matchers"], {"alertname": target, **labels}) for r in config["inhibit_rules"])

    # the root cause silences what it causes, never the other way round
    for source, target in [("ChiaPeakNotAdvancing", "ChiaFullNodeNotSynced"), ("ChiaPeakNotAdvancing", "ChiaPeakTooOld"),
                           ("ChiaFullNodeNotSynced", "ChiaPeakTooOld"), ("ChiaNoValidPartials", "ChiaPartialsFailing"),
                           ("ChiaNoValidPartials", "ChiaPoolErrors"), ("ChiaPeakNotAdvancing", "ChiaNoSignagePoints")]:
        assert inhibits(source, target, severity="critical"), (source, target)
        assert not inhibits(target, source, severity="critical"), (target, source)


def test_dockerfile_is_hadolint_clean_and_runs_as_non_root():
    run(tool("hadolint"), str(REPO / "Dockerfile"))
    text = (REPO / "Dockerfile").read_text()
    assert "USER 10001" in text and "HEALTHCHECK" in text and "/healthz" in text
    assert "CHIA_EXPORTER_WEB_LISTEN_ADDRESS" in text  # the health check follows the configured port


def test_dockerfile_health_check_follows_the_listen_address(tmp_path):
    """The health check's Python, run here against a stand-in server on a free port: 200 is
    healthy, 503 is not, and nothing listening is not."""
    import http.server
    import json
    import re
    import socket
    import threading

    line = re.search(r'CMD (\["python", "-c", .*\])$', (REPO / "Dockerfile").read_text(), re.M).group(1)
    code = json.loads(line)[2]
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status["code"] if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def check(address: str) -> int:
            env = {**os.environ, "CHIA_EXPORTER_WEB_LISTEN_ADDRESS": address}
            return subprocess.run([sys.executable, "-c", code], env=env, timeout=30).returncode

        port = server.server_address[1]
        assert check(f"127.0.0.1:{port}") == 0
        assert check(f"0.0.0.0:{port}") == 0
        status["code"] = 503
        assert check(f":{port}") == 1
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        assert check(f"127.0.0.1:{free}") == 1
    finally:
        server.shutdown()


def test_compose_file_is_valid():
    env = {**os.environ, "CHIA_ROOT": str(REPO)}
    proc = subprocess.run([tool("docker-compose"), "-f", "docker-compose.yml", "config", "-q"], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert set(compose["services"]) == {"exporter", "prometheus", "alertmanager", "grafana"}
    assert any(v.endswith(":/chia:ro") for v in compose["services"]["exporter"]["volumes"])
    # Chia's private keys are 0600 for the Chia user: the exporter runs as that user, never root.
    assert compose["services"]["exporter"]["user"] == "${CHIA_UID:-1000}:${CHIA_GID:-1000}"


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
