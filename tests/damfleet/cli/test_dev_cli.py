"""`damfleet submit` and `damfleet redeliver` as scripts use them: a real CLI process against a
real dev server, with this test's workers serving the lane it names."""

from __future__ import annotations

import json
from pathlib import Path

from tests.jobs_support import run_cli, run_fleet


async def test_submit_json_then_wait_json(temporal_env, tmp_path: Path) -> None:
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        inbox = tmp_path / "inbox"
        inbox.mkdir()
        one, two, three = (inbox / name for name in ("one.mov", "two.mov", "three.mov"))
        for path in (one, two, three):
            path.write_bytes(b"stand-in ingest does not read it")
        code, out, err = await run_cli(fleet, tmp_path, "submit", str(one), str(two), "--json")
        assert code == 0, err
        started = json.loads(out)
        assert len(started["workflow_ids"]) == 2
        assert [r["source"] for r in started["runs"]] == [str(one), str(two)]

        code, out, err = await run_cli(fleet, tmp_path, "submit", str(three), "--wait", "--json",
                                    "--profile", "archive")
        assert code == 0, err
        (asset,) = json.loads(out)["assets"]
        assert asset["state"] == "COMPLETED"
        assert set(asset["stages"]) == {"ingest", "transcode", "ai_enrich", "distribution"}
        assert asset["stages"]["distribution"]["status"] == "SKIPPED"  # archive profile has no targets

        # Without --json, --wait shows live lines as the run moves, each within 80 columns.
        code, out, err = await run_cli(fleet, tmp_path, "submit", str(three), "--wait", "--profile", "archive",
                                       "--skip-ai", "--title", "Three", columns=80)
        assert code == 0, err
        live = [line for line in err.splitlines() if line.startswith("three.mov ")]
        assert live and live[-1].split()[:3] == ["three.mov", "COMPLETED", "100.0%"], err
        assert all(len(line) <= 80 for line in err.splitlines())

        # --target (repeatable) names the delivery targets, overriding the profile's
        four = inbox / "four.mov"
        four.write_bytes(b"stand-in ingest does not read it")
        code, out, err = await run_cli(fleet, tmp_path, "submit", str(four), "--wait", "--json",
                                    "--profile", "archive", "--target", "playout-sftp", "--target", "cdn")
        assert code == 0, err
        (asset,) = json.loads(out)["assets"]
        receipts = asset["stages"]["distribution"]["receipts"]
        assert {r["target"] for r in receipts} == {"playout-sftp", "cdn"} and all(r["ok"] for r in receipts)


async def test_redeliver_and_submit_errors_are_one_clear_line(temporal_env, tmp_path: Path) -> None:
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        code, out, err = await run_cli(fleet, tmp_path, "redeliver", "asset-no-such-run")
        assert code == 1, "an unknown id exits 1, like every job command"
        assert "no job with workflow id 'asset-no-such-run'" in err
        assert "Traceback" not in err

        code, out, err = await run_cli(fleet, tmp_path, "submit", "a.mov", "b.mov", "--sha256", "ab" * 32)
        assert code == 2 and "single source" in err

        code, out, err = await run_cli(fleet, tmp_path, "submit", "http://example.com/x.mov")
        assert code == 2 and "unsupported URI scheme 'http'" in err and "Traceback" not in err
