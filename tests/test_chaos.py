"""The chaos suite: a batch through the real fleet while pools and the dev server are SIGKILLed
and the S3 endpoint is unreachable for a minute mid-ingest and mid-delivery.

Runs ``bench/chaos.py``'s schedule on a small batch (the bench runs 200 assets) and asserts
every invariant count is zero. Minutes long: marked ``chaos`` and ``slow``
(``pytest -m chaos``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))


async def test_nothing_lost_or_left_behind_under_chaos() -> None:
    import chaos

    report = await chaos.chaos_report(10, outage_seconds=60, kills=6, seed=15, timeout_seconds=1800, baseline=False)
    summary = report["summary"]
    print(summary)
    assert report["chaos"]["problems"] == [], report["chaos"]["problems"]
    for key in ("stuck", "lost", "duplicated_outputs", "hash_mismatches", "leftover_scratch", "orphaned_tools",
                "open_multipart_uploads", "objects_under_failed_assets"):
        assert summary[key] == 0, (key, summary)
    kinds = {f["kind"] for f in summary["faults"]}
    assert {"s3_unreachable_mid_ingest", "s3_unreachable_mid_delivery", "dev_server_sigkill_restart",
            "pool_sigkill"} <= kinds
    assert sum(1 for f in summary["faults"] if f["kind"] == "dev_server_sigkill_restart") == 2
    assert summary["retries_per_stage"].get("ingest", 0) > 0, "the ingest outage should have cost retries"
