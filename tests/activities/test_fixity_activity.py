"""Fixity activities in an ActivityEnvironment: registered names, heartbeats with progress, the throttle."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.common import StageContext
from activities.fixity import FixityActivities, build_activities
from damfleet import fixity
from damfleet.v1 import fixity_pb2
from tests.conftest import make_settings


def test_the_ingest_pool_serves_the_fixity_activities(tmp_path: Path) -> None:
    names = {fn.__temporal_activity_definition.name  # type: ignore[attr-defined]
             for fn in build_activities(StageContext(make_settings(tmp_path)))}
    assert names == {"plan_fixity_audit", "verify_fixity_page", "write_fixity_report"}


async def test_page_verification_heartbeats_bytes_hashed_within_the_byte_budget(tmp_path: Path) -> None:
    ctx = StageContext(make_settings(tmp_path, DAMFLEET_FIXITY_BYTES_PER_SECOND=str(1024 * 1024)))
    storage = ctx.storage
    data = os.urandom(3 * 1024 * 1024)
    keys = storage.keys("asset-beat")
    stored = await storage.write_bytes(keys.original("big.bin"), data)
    record = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "original_uri": stored.uri}
    await storage.write_bytes(keys.technical_metadata(), json.dumps(record).encode())

    acts = FixityActivities(ctx)
    env = ActivityEnvironment()
    # A 2 s heartbeat timeout: the activity beats every 0.5 s; 3 MiB at 1 MiB/s takes at least 2 s.
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=2))
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    plan = await env.run(acts.plan_fixity_audit, fixity_pb2.FixityPlanInput(audit_id="beat"))
    assert (plan.total_assets, plan.page_count) == (1, 1)
    result = await env.run(acts.verify_fixity_page, fixity_pb2.FixityPageInput(
        audit_id="beat", pages_prefix=plan.pages_prefix, page=0, findings_prefix=plan.audit_prefix + "findings/"))

    assert (result.counts.ok, result.counts.bytes_read) == (1, len(data))
    progress = [b for b in beats if isinstance(b, dict) and "bytes_done" in b]
    assert len(progress) >= 2, beats
    done = [b["bytes_done"] for b in progress]
    assert done == sorted(done) and 0 < done[0] and done[-1] <= len(data)
    assert all(b["bytes_total"] == len(data) and b["page"] == 0 and b["asset"] == 0 for b in progress)
    assert acts.throttle.waited_seconds > 0, "the byte budget held the reads back"

    report_uri = await env.run(acts.write_fixity_report, fixity_pb2.FixityReportInput(audit_id="beat", plan=plan,
                                                                                      counts=result.counts))
    report = json.loads(await storage.read_bytes(report_uri))
    assert report["counts"]["ok"] == 1 and report["failures"] == []
    assert await fixity.read_report(storage, "beat") == report
    await storage.aclose()
