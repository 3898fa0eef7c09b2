"""The operations pack against the real thing: the five worker pools as separate processes
process the demo set (plus a corrupt upload and a delivery to a broken target) while a real
Prometheus (Debian's ``prometheus``, on a loopback port) scrapes them and evaluates the
alert rules. Every dashboard expression and every recording rule must return data; every
alert rule must evaluate without error; every metric an alert reads must exist.

The same run shows the JSON logs: each pool writes JSON lines for one asset, all with the
same workflow id.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from damfleet import samples
from damfleet.client import FleetClient
from damfleet.launcher import Fleet
from damfleet.v1 import common_pb2
from tests.conftest import free_port, free_port_block, make_settings
from tests.deploy.test_monitoring import RULES, dashboard_expressions, metric_names
from workers import POOLS

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _query(prom: str, expr: str) -> list[dict]:
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:  # loopback only
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def _get(prom: str, path: str) -> dict:
    with urllib.request.urlopen(f"{prom}{path}", timeout=10) as response:
        return json.load(response)


async def _until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(1.0)


async def test_prometheus_scrapes_the_fleet_and_every_expression_returns_data(tmp_path: Path) -> None:
    prometheus = shutil.which("prometheus")
    assert prometheus, "Debian's prometheus package (scripts/bootstrap.sh)"
    metrics_base = free_port_block(len(POOLS))
    targets = {"nas": {"type": "local", "path": str(tmp_path / "delivered")},
               "broken": {"type": "http", "url": "not-a-url"}}
    env = {
        "DAMFLEET_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DAMFLEET_TEMPORAL_DEV_UI_PORT": str(free_port()),
        "DAMFLEET_WORKER_METRICS_PORT": str(metrics_base),
        "DAMFLEET_LOG_FORMAT": "json",
        "DAMFLEET_DISTRIBUTION_TARGETS_JSON": json.dumps(targets),
    }
    settings = make_settings(tmp_path, **env)
    fleet = Fleet(settings, extra_env={k: v for k, v in env.items() if k != "DAMFLEET_WORKER_METRICS_PORT"})

    prom_port = free_port()
    prom_url = f"http://127.0.0.1:{prom_port}"
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{
            "job_name": "damfleet",
            "static_configs": [{"targets": [f"127.0.0.1:{metrics_base + i}" for i in range(len(POOLS))]}],
        }],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - closed in finally
    prom = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{prom_port}", "--web.enable-lifecycle"],
        stdout=prom_log, stderr=subprocess.STDOUT,
    )
    try:
        await fleet.start()
        client = await FleetClient.connect(settings)
        sources = samples.make_demo_set(tmp_path / "media")
        corrupt = tmp_path / "media" / "corrupt.mp4"
        corrupt.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 64)
        handles = [await client.submit(str(s), dedup=False, targets=["nas"]) for s in sources]
        handles.append(await client.submit(str(corrupt), dedup=False))
        # The image again, to a working and a broken target: COMPLETED_WITH_ERRORS, failed deliveries.
        handles.append(await client.submit(str(sources[0]), dedup=False, targets=["nas", "broken"], title="cwe"))
        results = []
        for handle in handles:
            results.append(await asyncio.wait_for(handle.wait(), 900))
            assert not fleet.check_workers(), "a worker died"
        states = [common_pb2.JobState.Name(r.state) for r in results]
        assert states == ["COMPLETED", "COMPLETED", "COMPLETED", "FAILED", "COMPLETED_WITH_ERRORS"], [
            (s, r.error, list(r.failures)) for s, r in zip(states, results, strict=True)]

        # Every pool is scraped and healthy.
        up = await _until(lambda: [t for t in _get(prom_url, "/api/v1/targets")["data"]["activeTargets"]
                                   if t["health"] == "up"], 60, "scrape targets up")
        assert len(up) == len(POOLS), up

        # Let a few scrapes and rule evaluations land after the last run ended.
        await asyncio.sleep(8)
        empty = []
        report = []
        recorded = [r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
                    if "record" in r]
        for expr in dashboard_expressions() + recorded:
            result = await _until(lambda e=expr: _query(prom_url, e) or None, 30, expr) if expr else []
            report.append(f"{len(result):3d} series  {expr}")
            if not result:
                empty.append(expr)
        print("\n".join(report))
        assert not empty, empty

        # Alert rules: all evaluate cleanly, and every metric they read is there.
        groups = _get(prom_url, "/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        assert rules and all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
        for rule in rules:
            for name in metric_names(rule["query"]):
                assert _query(prom_url, f"count({name})"), f"{rule['name']} reads {name}, which has no series"
        # The pipeline pool's queue probe runs every 15 s, and its first round can land before
        # the last pool polls (an honest 0 that DamfleetNoPollers' 5-minute `for` absorbs). On a
        # fast machine the whole batch finishes inside that window, so wait until the probe has
        # seen every pool polling and a rule evaluation has followed; only then judge alerts.
        def polled() -> dict[str, str] | None:
            seen = {r["metric"].get("task_queue"): r["value"][1] for r in _query(prom_url, "damfleet_queue_pollers")}
            return seen if len(seen) == len(POOLS) and all(float(v) > 0 for v in seen.values()) else None

        await _until(polled, 60, "every queue's pollers seen by the probe")
        await asyncio.sleep(3)  # evaluation_interval is 1 s
        firing = {a["labels"]["alertname"] for a in _get(prom_url, "/api/v1/alerts")["data"]["alerts"]}
        print("alerts pending or firing:", sorted(firing))
        # Only what this run provoked on purpose (a broken target, a corrupt upload) may be on.
        pollers = {r["metric"].get("task_queue"): r["value"][1] for r in _query(prom_url, "damfleet_queue_pollers")}
        assert firing <= {"DamfleetDeliveriesFailing", "DamfleetFailureRatioHigh"}, (firing, pollers)

        # JSON logs: a line from each pool for the video (it runs all four stages), same workflow
        # id; images transcode on the light lane, so that pool's line is the image's.
        cwe = handles[1].workflow_id
        logs = settings.state_path / "logs"
        for pool in POOLS:
            wanted = handles[0].workflow_id if pool == "transcode_light" else cwe
            lines = [json.loads(line) for line in (logs / f"{pool}.log").read_text().splitlines() if line.strip()]
            mine = [entry for entry in lines if entry.get("workflow_id") == wanted]
            assert mine, f"{pool} wrote no JSON line for {wanted}"
            print(pool, json.dumps(mine[0]))
            assert all(entry["pool"] == pool for entry in mine)
        ingest = [json.loads(line) for line in (logs / "ingest.log").read_text().splitlines() if line.strip()]
        failed = [e for e in ingest if e.get("workflow_id") == handles[3].workflow_id and e["level"] == "WARNING"]
        assert failed and all("exception" not in e for e in failed), "expected bad input: one line, no traceback"
    finally:
        fleet.stop()
        prom.terminate()
        try:
            prom.wait(15)
        except subprocess.TimeoutExpired:
            prom.kill()
        prom_log.close()
