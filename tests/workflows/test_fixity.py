"""FixityAudit on a real dev server: real fixity activities over file:// and s3:// (moto) storage,
a Temporal Schedule that walks the sampling cycle, and a 100,000-asset audit (stand-in page
activities) whose every run stays under 10% of Temporal's history limits.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from prometheus_client import REGISTRY
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from damfleet import fixity
from damfleet import search_attributes as sa
from damfleet.client.fixity import audit_report, audit_request, create_audit_schedule, start_audit
from damfleet.delivery import Distributor, delivery_item
from damfleet.policies import ActivityName
from damfleet.storage import path_from_uri
from damfleet.v1 import common_pb2, fixity_pb2
from tests.fixity_support import Lane, fixity_lane, ingest_asset
from tests.jobs_support import eventually

HISTORY_EVENT_LIMIT = 51_200
HISTORY_BYTES_LIMIT = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from damfleet import samples

    folder = tmp_path_factory.mktemp("fixity-wf-media")
    return [samples.make_image(folder / f"img{i}.png", 128 + 16 * i, 96) for i in range(4)]


def _failures_metric(status: str) -> float:
    return sum(REGISTRY.get_sample_value("damfleet_fixity_failures_total", {"status": status, "repair": r}) or 0.0
               for r in ("NONE", "REPAIRED", "QUARANTINED", "MARKED"))


async def test_audit_reports_mismatch_and_missing_sets_the_search_attribute_and_metric(
    temporal_env, tmp_path: Path, images: list[Path]
) -> None:
    async with fixity_lane(temporal_env.client, tmp_path) as lane:
        assets = [await ingest_asset(lane, image, f"asset-wf{i}") for i, image in enumerate(images)]
        rotten = path_from_uri(assets[0].original_uri)
        data = bytearray(rotten.read_bytes())
        data[64] ^= 0x80
        rotten.write_bytes(bytes(data))
        await lane.storage.delete(assets[1].original_uri)
        mismatches_before = _failures_metric("MISMATCH")

        request = audit_request(lane.settings, repair=False)
        request.page_size, request.continue_as_new_after = 1, 2  # four pages: continue-as-new on the way
        handle = await start_audit(lane.fleet, request)
        result = await asyncio.wait_for(handle.result(), timeout=300)

        assert (result.counts.checked, result.counts.ok, result.counts.mismatch, result.counts.missing) == (4, 2, 1, 1)
        assert result.failures == 2 and result.runs == 2 and result.total_assets == 4
        found = {f.asset_id: f for f in result.failed}
        assert found["asset-wf0"].status == fixity_pb2.FIXITY_MISMATCH
        assert found["asset-wf0"].expected_sha256 == assets[0].sha256
        assert found["asset-wf0"].actual_sha256 not in ("", assets[0].sha256)
        assert found["asset-wf1"].status == fixity_pb2.FIXITY_MISSING
        assert _failures_metric("MISMATCH") == mismatches_before + 1

        description = await handle.describe()
        assert description.typed_search_attributes.get(sa.FIXITY_FAILURES) == 2
        assert description.typed_search_attributes.get(sa.STATE) == "COMPLETED_WITH_ERRORS"
        listed = [e.id async for e in lane.client.list_workflows(f"{sa.FIXITY_FAILURES.name} > 0")]
        assert handle.id in listed or await eventually(
            lambda: _listed(lane.client, f"{sa.FIXITY_FAILURES.name} > 0", handle.id))

        report = await audit_report(lane.fleet, handle.id)
        assert report["counts"]["mismatch"] == 1 and report["total_assets"] == 4
        by_asset = {f["asset_id"]: f for f in report["failures"]}
        assert by_asset["asset-wf0"]["status"] == "MISMATCH"
        assert by_asset["asset-wf0"]["actual_sha256"] == found["asset-wf0"].actual_sha256
        assert by_asset["asset-wf1"]["status"] == "MISSING"
        assert rotten.read_bytes() == bytes(data), "a report-only audit changes nothing"


async def _all_listed(ids: Any, count: int) -> list[str] | None:
    """The listed ids once there are ``count`` of them (None before)."""
    found = await ids
    return found if len(found) >= count else None


async def _listed(client: Client, query: str, workflow_id: str) -> bool:
    return workflow_id in [e.id async for e in client.list_workflows(query)]


async def test_s3_audit_repairs_from_the_delivery_copy_and_the_next_audit_is_ok(
    temporal_env, tmp_path: Path, images: list[Path], s3_server: dict[str, str], s3_bucket: str
) -> None:
    boto = boto3.client("s3", endpoint_url=s3_server["endpoint"], aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name=s3_server["region"])
    delivery_bucket = f"{s3_bucket}-cdn"
    boto.create_bucket(Bucket=delivery_bucket)
    targets = {"cdn": {"type": "s3", "bucket": delivery_bucket, "endpoint_url": s3_server["endpoint"],
                       "access_key_id": "testing", "secret_access_key": "testing", "region": s3_server["region"]}}
    env = {
        "DAMFLEET_STORAGE_ROOT": f"s3://{s3_bucket}/fleet",
        "DAMFLEET_STORAGE_S3_ENDPOINT_URL": s3_server["endpoint"],
        "DAMFLEET_STORAGE_S3_ACCESS_KEY_ID": "testing",
        "DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY": "testing",
        "DAMFLEET_DISTRIBUTION_TARGETS_JSON": json.dumps(targets),
        "DAMFLEET_FIXITY_BYTES_PER_SECOND": "50000",   # throttled: the audit reads at a fixed budget
    }
    async with fixity_lane(temporal_env.client, tmp_path, env=env) as lane:
        asset = await ingest_asset(lane, images[0], "asset-s3heal")
        other = await ingest_asset(lane, images[1], "asset-s3gone")
        distributor = Distributor(lane.settings, lane.storage)
        try:
            item = delivery_item(asset_id=asset.asset_id, role="original", source_uri=asset.original_uri,
                                 size_bytes=asset.size_bytes, sha256=asset.sha256, mime_type=asset.media.mime_type,
                                 idempotency_key="asset-s3heal:cdn:original")
            await distributor.deliver("cdn", item)
        finally:
            await distributor.aclose()
        bucket, key = asset.original_uri.removeprefix("s3://").split("/", 1)
        head = boto.head_object(Bucket=bucket, Key=key)
        body = bytearray(boto.get_object(Bucket=bucket, Key=key)["Body"].read())
        good = bytes(body)
        body[10] ^= 0x04
        boto.put_object(Bucket=bucket, Key=key, Body=bytes(body), Metadata=head["Metadata"])
        await lane.storage.delete(other.original_uri)

        handle = await start_audit(lane.fleet, audit_request(lane.settings))
        result = await asyncio.wait_for(handle.result(), timeout=300)
        found = {f.asset_id: f for f in result.failed}
        healed = found["asset-s3heal"]
        assert (healed.status, healed.repair) == (fixity_pb2.FIXITY_MISMATCH, fixity_pb2.FIXITY_REPAIR_REPAIRED)
        assert healed.expected_sha256 == asset.sha256 and healed.actual_sha256 != asset.sha256
        assert healed.repaired_from == f"s3://{delivery_bucket}/asset-s3heal/{key.rsplit('/', 1)[-1]}"
        gone = found["asset-s3gone"]
        assert (gone.status, gone.repair) == (fixity_pb2.FIXITY_MISSING, fixity_pb2.FIXITY_REPAIR_MARKED)
        assert "no verified copy found" in gone.detail
        assert (result.counts.repaired, result.counts.quarantined) == (1, 1)
        assert boto.get_object(Bucket=bucket, Key=key)["Body"].read() == good
        marker = await fixity.read_marker(lane.storage, "asset-s3gone")
        assert marker is not None and marker["state"] == "DAMAGED"

        again = await asyncio.wait_for((await start_audit(lane.fleet, audit_request(lane.settings))).result(), 300)
        assert (again.counts.ok, again.counts.missing, again.counts.mismatch) == (1, 1, 0)
        assert {f.asset_id for f in again.failed} == {"asset-s3gone"}


async def test_preservation_profile_delivers_the_original_and_the_audit_repairs_from_it(
    temporal_env, tmp_path: Path, images: list[Path]
) -> None:
    """End to end: AssetPipeline with the preservation profile delivers the original (local
    target); the original rots; the audit restores it from that delivered copy."""
    async with fixity_lane(temporal_env.client, tmp_path, pipeline=True) as lane:
        handle = await lane.fleet.submit(str(images[2]), profile="preservation", dedup=False)
        result = await asyncio.wait_for(handle.wait(), timeout=300)
        assert result.state == common_pb2.COMPLETED, result.error
        (receipt,) = result.receipts
        assert (receipt.role, receipt.target, receipt.sha256) == ("original", "local", result.asset.sha256)

        rotten = path_from_uri(result.asset.original_uri)
        rotten.write_bytes(rotten.read_bytes()[:-10])  # a truncated original (a half-finished migration)
        audit = await asyncio.wait_for((await start_audit(lane.fleet, audit_request(lane.settings))).result(), 300)
        (finding,) = audit.failed
        assert (finding.status, finding.repair) == (fixity_pb2.FIXITY_MISMATCH, fixity_pb2.FIXITY_REPAIR_REPAIRED)
        assert "bytes, ingest recorded" in finding.detail
        assert finding.repaired_from == Path(receipt.location).as_uri(), "restored from where the receipt says"
        assert rotten.read_bytes() == images[2].read_bytes()


async def test_schedule_walks_the_sampling_cycle_so_every_asset_is_checked(
    temporal_env, tmp_path: Path
) -> None:
    async with fixity_lane(temporal_env.client, tmp_path) as lane:
        ids = [f"asset-cyc{i:03d}" for i in range(30)]
        for asset_id in ids:  # ingest records pointing at stored originals
            keys = lane.storage.keys(asset_id)
            stored = await lane.storage.write_bytes(keys.original("o.bin"), asset_id.encode())
            record = {"asset_id": asset_id, "sha256": stored.sha256, "size_bytes": stored.size_bytes,
                      "original_uri": stored.uri, "source_uri": "file:///in/o.bin"}
            await lane.storage.write_bytes(keys.technical_metadata(), json.dumps(record).encode())
        schedule_id = f"fixity-test-{lane.lane.strip('-')}"
        await create_audit_schedule(lane.fleet, schedule_id, audit_request(lane.settings, sample_percent=50),
                                    every=timedelta(days=7), paused=True)
        try:
            handle = lane.client.get_schedule_handle(schedule_id)
            assert "every asset within 14 days" in (await handle.describe()).schedule.state.note
            results = []
            for _ in range(3):
                # A scheduled run's id ends with its start time in whole seconds: triggers in
                # one second would reuse an id (a real schedule's runs are days apart).
                await asyncio.sleep(1.1)
                before = len((await handle.describe()).info.recent_actions)
                await handle.trigger()
                description = await eventually(lambda b=before: _more_actions(handle, b))
                action = description.info.recent_actions[-1].action
                run = lane.client.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id,
                                                      result_type=fixity_pb2.FixityAuditResult)
                results.append(await asyncio.wait_for(run.result(), timeout=300))
        finally:
            await handle.delete()
        assert [r.bucket for r in results] == [0, 1, 0] and all(r.buckets == 2 for r in results)
        assert len({r.audit_id for r in results}) == 3, "each scheduled audit has its own id and report"
        checked = [await _checked_ids(lane, r.audit_id) for r in results]
        assert sorted(checked[0] + checked[1]) == ids, "two audits of a 50% cycle check every asset once"
        assert checked[2] == checked[0]
        assert all(r.counts.ok == r.counts.checked == len(c) for r, c in zip(results, checked, strict=True))


async def _more_actions(handle, before: int):
    description = await handle.describe()
    return description if len(description.info.recent_actions) > before else None


async def _checked_ids(lane: Lane, audit_id: str) -> list[str]:
    report = await fixity.read_report(lane.storage, audit_id)
    ids: list[str] = []
    async for info in lane.storage.list(report["findings_prefix"]):
        ids += [f["asset_id"] for f in json.loads(await lane.storage.read_bytes(info.uri))]
    return ids


# ---- scale ---------------------------------------------------------------------------------


@dataclass
class ScaleStandIns:
    """Stand-in plan/page/report activities: the workflow is real, the hashing is not (scale only)."""

    total: int
    page_size: int
    pages_verified: int = 0
    fail_page: int = -1
    hold: bool = False
    cancelled: list[int] = field(default_factory=list)

    @activity.defn(name=ActivityName.PLAN_FIXITY_AUDIT)
    async def plan(self, request: fixity_pb2.FixityPlanInput) -> fixity_pb2.FixityPlan:
        pages = -(-self.total // self.page_size)
        return fixity_pb2.FixityPlan(audit_prefix="mem://audit/", pages_prefix="mem://audit/pages/",
                                     page_count=pages, page_size=self.page_size, total_assets=self.total,
                                     listed_assets=self.total, buckets=1)

    @activity.defn(name=ActivityName.VERIFY_FIXITY_PAGE)
    async def verify(self, request: fixity_pb2.FixityPageInput) -> fixity_pb2.FixityPageResult:
        self.pages_verified += 1
        try:
            while self.hold:  # a long page: heartbeating until cancelled
                activity.heartbeat({"page": request.page})
                await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.cancelled.append(request.page)
            raise
        if request.page == self.fail_page:
            raise ApplicationError(f"page {request.page} of {request.pages_prefix} is not stored", type="SourceNotFound",
                                   non_retryable=True)
        count = min(self.page_size, self.total - request.page * self.page_size)
        finding = fixity_pb2.FixityFinding(asset_id=f"asset-{request.page:06d}", status=fixity_pb2.FIXITY_MISMATCH,
                                           expected_sha256="a" * 64, actual_sha256="b" * 64, uri="mem://x")
        return fixity_pb2.FixityPageResult(
            page=request.page, findings_uri=f"mem://audit/findings/{request.page:06d}.json",
            counts=fixity_pb2.FixityCounts(checked=count, ok=count - 1, mismatch=1, bytes_read=count * 1000),
            failures=[finding],
        )

    @activity.defn(name=ActivityName.WRITE_FIXITY_REPORT)
    async def report(self, request: fixity_pb2.FixityReportInput) -> str:
        return "mem://audit/report.json"


@pytest.mark.parametrize("page_size", [pytest.param(500, id="500-per-page"),
                                       pytest.param(100, id="100-per-page", marks=pytest.mark.slow)])
async def test_100k_asset_audit_keeps_every_run_under_a_tenth_of_the_history_limits(
    temporal_env, tmp_path: Path, page_size: int
) -> None:
    stand_ins = ScaleStandIns(total=100_000, page_size=page_size)
    async with fixity_lane(temporal_env.client, tmp_path,
                           activities=[stand_ins.plan, stand_ins.verify, stand_ins.report]) as lane:
        request = audit_request(lane.settings)
        request.page_size, request.max_in_flight, request.continue_as_new_after = page_size, 20, 60
        handle = await start_audit(lane.fleet, request)
        pages = -(-100_000 // page_size)
        # Scales with the work: a slow or busy machine gets longer, never a race.
        result = await asyncio.wait_for(handle.result(), timeout=120 + pages * 0.5)

        assert (result.counts.checked, result.counts.mismatch, result.total_assets) == (100_000, pages, 100_000)
        assert len(result.failed) == 100 and result.failures_omitted == pages - 100
        assert result.runs == -(-pages // 60) and stand_ins.pages_verified == pages

        async def run_ids() -> list[str]:
            return [e.run_id async for e in lane.client.list_workflows(f"WorkflowId = '{handle.id}'")]

        # Visibility may lag the last run's start: wait until every run is listed.
        listed = await eventually(lambda: _all_listed(run_ids(), result.runs))
        assert len(listed) == result.runs
        for run_id in listed:
            history = await lane.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
            events, size = len(history.events), sum(e.ByteSize() for e in history.events)
            assert events < HISTORY_EVENT_LIMIT // 10, events
            assert size < HISTORY_BYTES_LIMIT // 10, size
            print(f"100k fixity audit run {run_id[:8]}: {events} events, {size} bytes")


async def test_a_page_that_cannot_be_verified_fails_the_audit_naming_it(temporal_env, tmp_path: Path) -> None:
    stand_ins = ScaleStandIns(total=50, page_size=10, fail_page=2)
    async with fixity_lane(temporal_env.client, tmp_path,
                           activities=[stand_ins.plan, stand_ins.verify, stand_ins.report]) as lane:
        handle = await start_audit(lane.fleet, audit_request(lane.settings))
        with pytest.raises(WorkflowFailureError) as caught:
            await asyncio.wait_for(handle.result(), timeout=120)
        assert "fixity audit incomplete: page 2: page 2 of mem://audit/pages/ is not stored" in str(caught.value.cause)
        assert (await handle.describe()).typed_search_attributes.get(sa.STATE) == "FAILED"


async def test_cancelling_an_audit_cancels_its_page_activities(temporal_env, tmp_path: Path) -> None:
    stand_ins = ScaleStandIns(total=50, page_size=10, hold=True)
    async with fixity_lane(temporal_env.client, tmp_path, activities=[stand_ins.plan, stand_ins.verify,
                                                                       stand_ins.report]) as lane:
        request = audit_request(lane.settings)
        request.max_in_flight = 3
        handle = await start_audit(lane.fleet, request)
        await eventually(lambda: stand_ins.pages_verified == 3, timeout=60)
        await lane.fleet.cancel(handle.id)
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), timeout=120)
        await eventually(lambda: sorted(stand_ins.cancelled) == [0, 1, 2], timeout=60)
        assert stand_ins.pages_verified == 3, "no page starts after the cancel"
        assert (await handle.describe()).typed_search_attributes.get(sa.STATE) == "CANCELLED"
