"""Identity and dedup never hand back stale work; a failed run leaves nothing behind.

Ingest, dedup claims and discards run for real on a real dev server; transcode and the
later stages are the stand-ins of ``test_pipeline`` (a transcode of a ``fail*`` source
fails permanently, as a corrupt file would).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities import catalog as catalog_activities
from activities.common import StageContext
from activities.ingest import build_activities as ingest_activities
from damfleet import samples
from damfleet.catalog import dedup_index_uri
from damfleet.client import FleetClient
from damfleet.policies import ActivityName, Queue
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, stages_pb2
from tests.conftest import make_settings
from tests.workflows.test_pipeline import StandIns
from tests.jobs_support import eventually
from workflows.pipeline import AssetPipeline, asset_id_for


class FailingTranscode(StandIns):
    @activity.defn(name=ActivityName.TRANSCODE)
    async def transcode(self, request: stages_pb2.TranscodeInput) -> stages_pb2.TranscodeOutput:
        if Path(request.asset.source_uri).name.startswith("fail"):
            raise ApplicationError("ffmpeg could not decode frame 12", type="CorruptMedia", non_retryable=True)
        return await super().transcode(request)


@asynccontextmanager
async def _fleet(temporal_env, tmp_path: Path, **env: str) -> AsyncIterator[tuple[FleetClient, Storage]]:
    lane = f"-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, DAMFLEET_WORKER_QUEUE_SUFFIX=lane, **env)
    ctx = StageContext(settings)
    stand_ins = FailingTranscode(ctx.storage)
    async with AsyncExitStack() as stack:
        for queue, kwargs in (
            (Queue.PIPELINE, {"workflows": [AssetPipeline]}),
            (Queue.INGEST, {"activities": [*ingest_activities(ctx), *catalog_activities.build_activities(ctx)]}),
            (Queue.TRANSCODE, {"activities": [stand_ins.transcode]}),
            (Queue.TRANSCODE_LIGHT, {"activities": [stand_ins.transcode]}),
            (Queue.AI_ENRICH, {"activities": [stand_ins.enrich]}),
            (Queue.DISTRIBUTION, {"activities": [stand_ins.deliver_batch]}),
        ):
            await stack.enter_async_context(Worker(temporal_env.client, task_queue=queue + lane, **kwargs))
        yield FleetClient(temporal_env.client, settings), ctx.storage
    await ctx.storage.aclose()


@pytest.fixture
async def fleet(temporal_env, tmp_path: Path) -> AsyncIterator[tuple[FleetClient, Storage]]:
    async with _fleet(temporal_env, tmp_path) as running:
        yield running


async def _objects(storage: Storage, prefix: str) -> list[str]:
    backend = storage.backend(prefix)
    return [o.uri async for o in backend.list(prefix, include_partial=True)]  # type: ignore[call-arg]


async def test_an_overwritten_file_is_new_work_with_its_new_sha256(fleet, tmp_path: Path) -> None:
    client, _ = fleet
    source = tmp_path / "inbox" / "poster.png"
    source.parent.mkdir()
    samples.make_image(source, 320, 200)
    first = await client.submit(str(source))
    first_result = await first.wait()
    assert first_result.state == common_pb2.COMPLETED, first_result.error
    again = await client.submit(str(source))
    assert again.existing and again.workflow_id == first.workflow_id, "an unchanged file is the same request"

    samples.make_image(source, 400, 300)  # overwritten in place, same name
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    second = await client.submit(str(source))
    assert not second.existing and second.workflow_id != first.workflow_id
    second_result = await second.wait()
    assert second_result.state == common_pb2.COMPLETED
    assert second_result.asset.sha256 != first_result.asset.sha256
    import hashlib

    assert second_result.asset.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()

    fresh = await client.submit(str(source), dedup=False)
    assert not fresh.existing and fresh.workflow_id not in (first.workflow_id, second.workflow_id)
    assert (await fresh.wait()).state == common_pb2.COMPLETED


async def test_a_failed_run_leaves_nothing_and_releases_its_dedup_claim(fleet, tmp_path: Path) -> None:
    client, storage = fleet
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    samples.make_image(inbox / "fail-scan.png", 320, 200)
    failed = await (await client.submit(str(inbox / "fail-scan.png"), collection="scans")).wait()
    assert failed.state == common_pb2.FAILED and "could not decode" in failed.error
    assert await _objects(storage, storage.keys(failed.asset_id).prefix) == []
    assert list(failed.outputs) == [] and list(failed.stages["ingest"].outputs) == []
    claim = dedup_index_uri(storage, "scans", failed.asset.sha256, "default")
    assert not await storage.exists(claim), "the failed run must give up its dedup claim"

    # The same bytes again, under a name that transcodes: processed, not "a duplicate of" the failure.
    shutil.copy(inbox / "fail-scan.png", inbox / "scan.png")
    retried = await (await client.submit(str(inbox / "scan.png"), collection="scans")).wait()
    assert retried.state == common_pb2.COMPLETED and retried.duplicate_of == ""
    assert retried.asset.sha256 == failed.asset.sha256
    assert any(o.role == "thumbnail" for o in retried.outputs)


async def test_dedup_links_only_when_content_and_profile_match(fleet, tmp_path: Path) -> None:
    client, _ = fleet
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    samples.make_image(inbox / "a.png", 320, 200)
    shutil.copy(inbox / "a.png", inbox / "b.png")
    shutil.copy(inbox / "a.png", inbox / "c.png")
    first = await (await client.submit(str(inbox / "a.png"))).wait()
    linked = await (await client.submit(str(inbox / "b.png"))).wait()
    assert linked.duplicate_of == first.asset_id
    web = await (await client.submit(str(inbox / "c.png"), profile="web")).wait()
    assert web.state == common_pb2.COMPLETED and web.duplicate_of == "", "another profile is new work"
    assert any(o.stage == "transcode" for o in web.outputs)


async def test_quarantine_keeps_a_failed_runs_original_outside_the_asset(temporal_env, tmp_path: Path) -> None:
    async with _fleet(temporal_env, tmp_path, DAMFLEET_JOBS_QUARANTINE_FAILED="true") as (client, storage):
        source = tmp_path / "inbox" / "fail-poster.png"
        samples.make_image(source, 320, 200)
        failed = await (await client.submit(str(source))).wait()
        assert failed.state == common_pb2.FAILED
        assert await _objects(storage, storage.keys(failed.asset_id).prefix) == []
        [kept] = list(failed.outputs)
        assert kept.role == "quarantined_original" and f"/quarantine/{failed.asset_id}/" in kept.uri
        assert await storage.read_bytes(kept.uri) == source.read_bytes() and kept.sha256 == failed.asset.sha256
        reason = kept.uri.rsplit("/", 1)[0] + "/" + kept.uri.rsplit("/", 1)[1].split("-", 1)[0] + "-reason.txt"
        assert b"could not decode" in await storage.read_bytes(reason)


def _activity_names(history) -> list[str]:
    return [e.activity_task_scheduled_event_attributes.activity_type.name for e in history.events
            if e.HasField("activity_task_scheduled_event_attributes")]


async def test_ingest_claims_the_content_so_no_claim_activity_runs(fleet, tmp_path: Path) -> None:
    """Dedup's claim is made by ingest itself (issue 11: one task hop less per asset); the
    duplicate is still found and linked, and its stored copy discarded."""
    client, storage = fleet
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    samples.make_image(inbox / "a.png", 320, 200)
    shutil.copy(inbox / "a.png", inbox / "b.png")
    first = await (await client.submit(str(inbox / "a.png"), collection="claims")).wait()
    assert first.state == common_pb2.COMPLETED, first.error
    assert await storage.exists(dedup_index_uri(storage, "claims", first.asset.sha256, "default"))
    linked_handle = await client.submit(str(inbox / "b.png"), collection="claims")
    linked = await linked_handle.wait()
    assert linked.duplicate_of == first.asset_id and linked.state == common_pb2.COMPLETED
    for run in (first, linked):
        history = await client.client.get_workflow_handle(run.workflow_id).fetch_history()
        assert ActivityName.CLAIM_CONTENT not in _activity_names(history), _activity_names(history)
    # The duplicate's own stored copy is gone; the first asset's outputs are untouched.
    linked_id = asset_id_for(linked_handle.workflow_id)
    assert await _objects(storage, storage.keys(linked_id).prefix) == []
    assert await storage.exists(first.asset.original_uri)


async def test_a_claim_that_fails_during_ingest_is_made_by_the_workflow(fleet, tmp_path: Path) -> None:
    """Fault: the dedup index cannot be written while ingest runs (a file where its folder
    goes). The ingest still succeeds, without a claim; the workflow runs ``claim_content`` with
    its retry policy, which succeeds once the fault is gone, and dedup works as before."""
    client, storage = fleet
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    samples.make_image(inbox / "c.png", 320, 200)
    shutil.copy(inbox / "c.png", inbox / "d.png")
    blocker = Path(storage.root.removeprefix("file://")) / "dedup"
    assert not blocker.exists()
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("not a folder")
    handle = await client.submit(str(inbox / "c.png"), collection="faults")
    raw = client.client.get_workflow_handle(handle.workflow_id)

    async def claim_scheduled() -> bool:
        return ActivityName.CLAIM_CONTENT in _activity_names(await raw.fetch_history())

    await eventually(claim_scheduled, timeout=60)
    blocker.unlink()
    first = await handle.wait()
    assert first.state == common_pb2.COMPLETED, first.error
    assert first.stages["ingest"].status == common_pb2.STAGE_STATUS_COMPLETED
    assert await storage.exists(dedup_index_uri(storage, "faults", first.asset.sha256, "default"))
    linked = await (await client.submit(str(inbox / "d.png"), collection="faults")).wait()
    assert linked.duplicate_of == first.asset_id


async def test_an_ingest_worker_older_than_the_claim_field_still_gets_the_content_claimed(
    temporal_env, tmp_path: Path
) -> None:
    """Rolling upgrade: a new workflow with an ingest worker that ignores ``claim_content`` (it
    reports no claim) runs the ``claim_content`` activity itself, so dedup keeps working; the
    same stand-in that claims schedules no such activity."""
    from tests.jobs_support import run_fleet

    for claims in (False, True):
        async with run_fleet(temporal_env.client, tmp_path / str(claims),
                             stand_ins_options={"claims_content": claims}) as fleet:
            run = await (await fleet.fleet.submit(f"/inbox/skew-{claims}.mov", collection="skew")).wait()
            assert run.state == common_pb2.COMPLETED, run.error
            history = await fleet.client.get_workflow_handle(run.workflow_id).fetch_history()
            assert (ActivityName.CLAIM_CONTENT in _activity_names(history)) is not claims, _activity_names(history)
            assert await fleet.storage.exists(dedup_index_uri(fleet.storage, "skew", run.asset.sha256, "default"))
