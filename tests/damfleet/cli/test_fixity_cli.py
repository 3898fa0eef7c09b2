"""``damfleet fixity`` as a script sees it: a subprocess against a dev server and fixity workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from damfleet.cli.fixity import parse_sample
from damfleet.storage import path_from_uri
from tests.fixity_support import fixity_lane, ingest_asset
from tests.jobs_support import run_cli


async def test_fixity_run_report_and_schedule_commands(temporal_env, tmp_path: Path) -> None:
    from damfleet import samples

    image = samples.make_image(tmp_path / "in" / "photo.png", 96, 64)
    async with fixity_lane(temporal_env.client, tmp_path) as lane:
        good = await ingest_asset(lane, image, "asset-cli1")
        path = path_from_uri(good.original_uri)
        data = bytearray(path.read_bytes())
        data[-5] ^= 0xFF
        path.write_bytes(bytes(data))

        code, out, err = await run_cli(lane, tmp_path, "fixity", "run", "--no-repair", "--json")
        assert code == 1, err  # damage found: a cron job or CI step sees it in the exit code
        summary = json.loads(out)
        assert summary["failures"] == 1 and summary["counts"]["mismatch"] == 1
        (finding,) = summary["failed"]
        assert finding["status"] == "MISMATCH" and finding["expected_sha256"] == good.sha256
        assert finding["actual_sha256"] and finding["actual_sha256"] != good.sha256

        code, out, err = await run_cli(lane, tmp_path, "fixity", "report", summary["audit_id"], "--json")
        assert code == 1, err
        report = json.loads(out)
        assert report["counts"]["checked"] == 1
        assert [f["asset_id"] for f in report["failures"]] == ["asset-cli1"]

        code, out, err = await run_cli(lane, tmp_path, "fixity", "report", "no-such-audit", "--json")
        assert code == 1 and "no-such-audit" in err and out == ""

        schedule_id = f"fixity-cli-{lane.lane.strip('-')}"
        code, out, err = await run_cli(lane, tmp_path, "fixity", "schedule", "create", "--every", "7d",
                                       "--sample", "5%", "--id", schedule_id, "--paused", "--json")
        try:
            assert code == 0, err
            created = json.loads(out)
            assert (created["buckets"], created["cycle_seconds"]) == (20, 140 * 86400)
        finally:
            await lane.client.get_schedule_handle(schedule_id).delete()


def test_sample_is_a_percentage() -> None:
    assert (parse_sample("5%"), parse_sample(" 12.5 "), parse_sample("100%")) == (5.0, 12.5, None)
    for bad, words in (("0%", "must be above 0%"), ("150%", "at most 100%"), ("five", "use a percentage")):
        with pytest.raises(ValueError, match=words):
            parse_sample(bad)
