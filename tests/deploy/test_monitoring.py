"""The operations pack in helm/damfleet/files: alert rules that promtool accepts, a unit test
for every alert, and a dashboard whose every expression reads metrics damfleet exports.

The slow test in tests/test_monitoring_live.py evaluates the same expressions against a
real Prometheus scraping a real fleet.
"""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

REPO = Path(__file__).resolve().parents[2]
FILES = REPO / "helm" / "damfleet" / "files"
RULES = FILES / "damfleet-rules.yaml"
RULE_TESTS = REPO / "monitoring" / "damfleet-rules.test.yaml"
DASHBOARD = FILES / "damfleet-dashboard.json"
#: Exported outside prometheus_client: the pipeline workflow's counter goes through the
#: Temporal SDK's metric meter, the scratch gauges through a collector read at scrape time.
OTHER_DAMFLEET_METRICS = {"damfleet_assets_total", "damfleet_scratch_free_bytes", "damfleet_scratch_size_bytes"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (scripts/bootstrap.sh)"
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=120, cwd=REPO, check=False)


def _rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def rule_expressions() -> list[str]:
    return [r["expr"] for r in _rules()]


def metric_names(expr: str) -> set[str]:
    """The series names an expression reads (damfleet's, recording rules', the SDK's)."""
    names = set(re.findall(r"\b(?:damfleet|temporal)[a-z0-9_:]*[a-z0-9_]", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) if n.startswith("damfleet_") else n for n in names}


def exported_damfleet_metrics() -> set[str]:
    # Importing the modules registers their metrics in prometheus_client's registry.
    for module in ("workers.common", "workers.metrics", "workers.fleet_metrics"):
        importlib.import_module(module)
    names = set(OTHER_DAMFLEET_METRICS)
    for family in REGISTRY.collect():
        if family.name.startswith("damfleet_"):
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def test_promtool_accepts_the_rules() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass_and_cover_every_alert() -> None:
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    alerts = {r["alert"] for r in _rules() if "alert" in r}
    assert alerts and alerts == tested, f"alerts without a unit test: {alerts - tested}"


def test_every_expression_reads_metrics_damfleet_exports() -> None:
    exported = exported_damfleet_metrics()
    recorded = {r["record"] for r in _rules() if "record" in r}
    for expr in dashboard_expressions() + rule_expressions():
        for name in metric_names(expr):
            if name.startswith("temporal_"):
                continue  # the SDK's; checked against a live scrape in the slow test
            assert name in exported | recorded, f"{name} in {expr!r} is not exported by damfleet"


def test_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    """promtool has no "check expression": each dashboard expression becomes a recording
    rule in a scratch file, which ``promtool check rules`` parses with Prometheus' own parser."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{i}", "expr": expr} for i, expr in enumerate(dashboard_expressions())
    ]}]}
    scratch = tmp_path / "dashboard-exprs.yaml"
    scratch.write_text(yaml.safe_dump(rules))
    result = _promtool("check", "rules", str(scratch))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_panels_have_titles_units_and_unique_ids() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"] and panel["fieldConfig"]["defaults"]["unit"]
