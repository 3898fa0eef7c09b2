"""`damfleet submit` and `damfleet redeliver` as scripts use them: a real CLI process against a
real dev server, with this test's workers serving the lane it names."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.jobs_support import Fleet, run_fleet

REPO = Path(__file__).resolve().parents[3]


async def _cli(fleet: Fleet, root: Path, *args: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "DAMFLEET_TEMPORAL_ADDRESS": fleet.client.service_client.config.target_host,
        "DAMFLEET_STATE_DIR": str(root / "state"),
        "DAMFLEET_STORAGE_ROOT": (root / "storage").as_uri(),
        "DAMFLEET_WORKER_QUEUE_SUFFIX": fleet.lane,
        "COLUMNS": "200",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "damfleet.cli", *args, cwd=REPO, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_submit_json_then_wait_json(temporal_env, tmp_path: Path) -> None:
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        code, out, err = await _cli(fleet, tmp_path, "submit", "/inbox/one.mov", "/inbox/two.mov", "--json")
        assert code == 0, err
        started = json.loads(out)
        assert len(started["workflow_ids"]) == 2
        assert [r["source"] for r in started["runs"]] == ["/inbox/one.mov", "/inbox/two.mov"]

        code, out, err = await _cli(fleet, tmp_path, "submit", "/inbox/three.mov", "--wait", "--json",
                                    "--profile", "archive")
        assert code == 0, err
        (asset,) = json.loads(out)["assets"]
        assert asset["state"] == "COMPLETED"
        assert set(asset["stages"]) == {"ingest", "transcode", "ai_enrich", "distribution"}
        assert asset["stages"]["distribution"]["status"] == "SKIPPED"  # archive profile has no targets


async def test_redeliver_and_submit_errors_are_one_clear_line(temporal_env, tmp_path: Path) -> None:
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        code, out, err = await _cli(fleet, tmp_path, "redeliver", "asset-no-such-run")
        assert code == 2
        assert "no job with workflow id 'asset-no-such-run'" in err
        assert "Traceback" not in err

        code, out, err = await _cli(fleet, tmp_path, "submit", "a.mov", "b.mov", "--sha256", "ab" * 32)
        assert code == 2 and "single source" in err

        code, out, err = await _cli(fleet, tmp_path, "submit", "http://example.com/x.mov")
        assert code == 2 and "unsupported URI scheme 'http'" in err and "Traceback" not in err
