"""The main job end to end: `damfleet demo --json` starts a real Temporal dev server and the five
worker pools as separate processes, runs the sample set through all four stages, and exits."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from damfleet.cli.render import print_assets
from damfleet.samples import SPEECH_TEXT
from damfleet.stages import POOLS
from tests.conftest import free_port, free_port_block

pytestmark = pytest.mark.e2e


def test_demo_runs_every_asset_through_all_four_stages(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update({
        "DAMFLEET_STATE_DIR": str(tmp_path / "state"),
        "DAMFLEET_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DAMFLEET_TEMPORAL_DEV_UI_PORT": str(free_port()),
        "DAMFLEET_WORKER_METRICS_PORT": str(free_port_block(len(POOLS))),  # one port per pool
    })
    env.pop("DAMFLEET_STORAGE_ROOT", None)
    proc = subprocess.run(
        [sys.executable, "-m", "damfleet.cli", "demo", "--json"],
        env=env, capture_output=True, text=True, timeout=540,
    )
    logs = tmp_path / "state" / "logs"
    if proc.returncode != 0:
        for log in sorted(logs.glob("*.log")):
            print(f"----- {log.name}\n{log.read_text()[-3000:]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])

    assert summary["all_completed"] is True
    assert len(summary["assets"]) == 3
    kinds = {}
    for asset in summary["assets"]:
        assert asset["state"] == "COMPLETED", asset
        stages = asset["stages"]
        assert set(stages) == {"ingest", "transcode", "ai_enrich", "distribution"}
        assert stages["ingest"]["status"] == "COMPLETED"
        assert stages["transcode"]["status"] == "COMPLETED" and stages["transcode"]["outputs"]
        assert stages["distribution"]["status"] == "COMPLETED"
        assert stages["distribution"]["receipts"] and all(r["ok"] for r in stages["distribution"]["receipts"])
        for output in asset["outputs"]:
            assert output["size"] > 0 and len(output["sha256"]) == 64
            assert Path(output["uri"].removeprefix("file://")).exists()
        kinds[Path(asset["source"]).suffix] = asset

    image = kinds[".jpg"]
    assert image["stages"]["ai_enrich"]["status"] == "SKIPPED" and image["stages"]["ai_enrich"]["reason"]
    for suffix in (".mp4", ".m4a"):
        enriched = kinds[suffix]
        assert enriched["stages"]["ai_enrich"]["status"] == "COMPLETED"
        excerpt = enriched["transcript"]["excerpt"].lower()
        assert "bicycle" in excerpt and "harbour" in excerpt.replace("harbor", "harbour"), excerpt
        assert any(o["stage"] == "ai_enrich" for o in enriched["outputs"])
    assert "bicycle" in SPEECH_TEXT

    # The same run as a person reads it: the demo's table on an 80-column terminal keeps
    # every asset's name and state whole (no cell cut, no line wider than the terminal).
    console = Console(width=80, record=True, file=io.StringIO(), color_system=None)
    print_assets(summary, console)
    text = console.export_text()
    print(text)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for asset in summary["assets"]:
        assert Path(asset["source"]).name in text and asset["state"] in text, text
    assert "…" not in text.split("\n\n")[0], "a table cell was cut"

    # It says how many pools it starts (every one: the light transcode lane is on by default),
    # each of them stopped cleanly on SIGTERM, and nothing was left running.
    assert f"and {len(POOLS)} worker pools" in " ".join(proc.stderr.split()), proc.stderr[:500]
    for pool in (pool.name for pool in POOLS):
        text = (logs / f"{pool}.log").read_text()
        assert "stopped" in text, f"{pool} did not shut down gracefully:\n{text[-1500:]}"
    assert _processes_of(tmp_path / "state") == []


def _processes_of(state_dir: Path) -> list[str]:
    """Processes started for this fleet: the dev server (by its db path) and workers (by env)."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(process.info["cmdline"] or [])
            if str(state_dir) in cmdline or process.environ().get("DAMFLEET_STATE_DIR") == str(state_dir):
                found.append(f"{process.info['pid']}: {cmdline}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found
