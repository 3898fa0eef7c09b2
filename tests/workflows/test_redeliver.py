"""RedeliverAsset: failed deliveries retried later without earlier stages, on a real dev
server; and a target down for 3 simulated hours on the time-skipping server."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import catalog as catalog_activities
from activities.common import StageContext
from activities.distribution import DistributionActivities
from activities.ingest import build_activities as ingest_activities
from damfleet.policies import ActivityName, Queue
from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2
from tests.conftest import make_settings, temporal_test_server
from tests.delivery_receiver import DeliveryReceiver, Scripted
from workflows.pipeline import AssetPipeline
from workflows.redeliver import RedeliverAsset


class Renditions:
    """A transcode stand-in writing two small renditions, so delivery has real files."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.calls = 0

    @activity.defn(name=ActivityName.TRANSCODE)
    async def transcode(self, request: stages_pb2.TranscodeInput) -> stages_pb2.TranscodeOutput:
        self.calls += 1
        outputs = []
        for role, ext in (("thumbnail", "webp"), ("preview", "jpg")):
            uri = self.ctx.storage.keys(request.asset.asset_id).rendition(role, ext)
            written = await self.ctx.storage.write_bytes(uri, os.urandom(50_000), content_type="image/jpeg")
            outputs.append(common_pb2.Output(uri=written.uri, size_bytes=written.size_bytes, sha256=written.sha256,
                                             role=role, stage="transcode", mime_type="image/jpeg"))
        return stages_pb2.TranscodeOutput(outputs=outputs, renditions=["thumbnail", "preview"])


@pytest.fixture
async def fleet(temporal_env: Any, tmp_path: Path) -> AsyncIterator[tuple[Client, str, DeliveryReceiver, Renditions]]:
    """Pipeline + RedeliverAsset workflows, real ingest and distribution, a partner endpoint."""
    client: Client = temporal_env.client
    lane = f"-{uuid.uuid4().hex[:8]}"
    async with DeliveryReceiver(webhook_secret="whsec") as partner, AsyncExitStack() as stack:
        targets = {
            "partner": {"type": "http", "url": partner.url + "/in/{asset_id}/{filename}"},
            "hook": {"type": "webhook", "url": partner.url + "/hooks/done", "secret": "whsec"},
        }
        settings = make_settings(
            tmp_path,
            DAMFLEET_DISTRIBUTION_TARGETS_JSON=json.dumps(targets),
            DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32",
        )
        ctx = StageContext(settings)
        renditions = Renditions(ctx)
        distribution = DistributionActivities(ctx)
        for queue, kwargs in (
            (Queue.PIPELINE, {"workflows": [AssetPipeline, RedeliverAsset]}),
            # Catalog activities too: a request that does not say `dedup` gets dedup (true).
            (Queue.INGEST, {"activities": ingest_activities(ctx) + catalog_activities.build_activities(ctx)}),
            (Queue.TRANSCODE, {"activities": [renditions.transcode]}),
            (Queue.TRANSCODE_LIGHT, {"activities": [renditions.transcode]}),
            (Queue.DISTRIBUTION, {"activities": distribution.activities()}),
        ):
            await stack.enter_async_context(Worker(client, task_queue=queue + lane, **kwargs))
        yield client, Queue.PIPELINE + lane, partner, renditions
        await distribution.aclose()
        await ctx.storage.aclose()


async def test_failed_deliveries_are_retried_later_without_earlier_stages(fleet, media_dir: Path) -> None:
    client, queue, partner, renditions = fleet
    partner.fail_next(403, count=2)          # the partner refuses both renditions: permanent, not retried
    workflow_id = f"test-pipeline-{uuid.uuid4().hex}"
    request = pipeline_pb2.PipelineRequest(source_uri=(media_dir / "small.png").as_uri(), skip_ai=True,
                                           targets=["local", "partner"])
    first = await client.execute_workflow(AssetPipeline.run, request, id=workflow_id, task_queue=queue,
                                          result_type=pipeline_pb2.PipelineResult)
    assert first.state == common_pb2.COMPLETED_WITH_ERRORS
    failed = [r for r in first.receipts if not r.ok]
    assert sorted((r.target, r.role) for r in failed) == [("partner", "preview"), ("partner", "thumbnail")]
    assert all("403" in r.error for r in failed) and len(first.failures) == 2
    assert partner.files == []

    again = await client.execute_workflow(
        RedeliverAsset.run, pipeline_pb2.RedeliverRequest(workflow_id=workflow_id),
        id=f"redeliver-{workflow_id}", task_queue=queue, result_type=pipeline_pb2.RedeliverResult,
    )
    assert again.state == common_pb2.COMPLETED and not again.failures
    assert sorted((r.target, r.role, r.ok) for r in again.receipts) == [
        ("partner", "preview", True), ("partner", "thumbnail", True)]
    stored = {o.role: o.sha256 for o in first.outputs}
    assert sorted((f.path.rsplit("/", 1)[-1], f.sha256) for f in partner.files) == sorted(
        (name, stored[role]) for role, name in (("preview", "preview.jpg"), ("thumbnail", "thumbnail.webp")))
    assert {f.headers["Idempotency-Key"] for f in partner.files} == {r.idempotency_key for r in failed}
    assert renditions.calls == 1          # transcode did not run again

    # Redelivering again sends the same idempotency keys: the partner keeps one copy each.
    twice = await client.execute_workflow(
        RedeliverAsset.run, pipeline_pb2.RedeliverRequest(workflow_id=workflow_id),
        id=f"redeliver2-{workflow_id}", task_queue=queue, result_type=pipeline_pb2.RedeliverResult,
    )
    assert twice.state == common_pb2.COMPLETED and len(partner.files) == 2


async def test_failed_webhook_is_recorded_and_resent(fleet, media_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile with a webhook: the receiver refuses the first notification (400, permanent);
    the run records a failed webhook receipt; redelivery re-sends it, signed, same key."""
    from damfleet import profiles

    monkeypatch.setitem(profiles.PROFILES, "hooked", profiles.Profile(
        name="hooked", description="test", renditions={"image": ("thumbnail",)}, transcribe=False,
        targets=("local",), webhooks=("hook",)))
    client, queue, partner, _ = fleet
    partner.fail_next(400, path="/hooks/")
    workflow_id = f"test-pipeline-{uuid.uuid4().hex}"
    request = pipeline_pb2.PipelineRequest(source_uri=(media_dir / "small.png").as_uri(), profile="hooked")
    first = await client.execute_workflow(AssetPipeline.run, request, id=workflow_id, task_queue=queue,
                                          result_type=pipeline_pb2.PipelineResult)
    assert first.state == common_pb2.COMPLETED_WITH_ERRORS
    [failed] = [r for r in first.receipts if not r.ok]
    assert (failed.target, failed.target_type, failed.role) == ("hook", "webhook", "webhook")
    assert "400" in failed.error and partner.notifications == []

    again = await client.execute_workflow(
        RedeliverAsset.run, pipeline_pb2.RedeliverRequest(workflow_id=workflow_id),
        id=f"redeliver-{workflow_id}", task_queue=queue, result_type=pipeline_pb2.RedeliverResult,
    )
    assert again.state == common_pb2.COMPLETED, again.failures
    [note] = partner.notifications
    assert note.headers["Idempotency-Key"] == failed.idempotency_key
    assert note.payload["workflow_id"] == workflow_id and note.payload["asset_id"] == first.asset_id
    assert {r["target"] for r in note.payload["receipts"]} == {"local"}


async def test_nothing_to_redeliver_and_bad_requests(fleet, media_dir: Path) -> None:
    client, queue, _, _ = fleet
    workflow_id = f"test-pipeline-{uuid.uuid4().hex}"
    request = pipeline_pb2.PipelineRequest(source_uri=(media_dir / "small.png").as_uri(), skip_ai=True)
    first = await client.execute_workflow(AssetPipeline.run, request, id=workflow_id, task_queue=queue,
                                          result_type=pipeline_pb2.PipelineResult)
    assert first.state == common_pb2.COMPLETED
    done = await client.execute_workflow(
        RedeliverAsset.run, pipeline_pb2.RedeliverRequest(workflow_id=workflow_id),
        id=f"test-redeliver-{uuid.uuid4().hex}", task_queue=queue, result_type=pipeline_pb2.RedeliverResult,
    )
    assert done.state == common_pb2.COMPLETED and done.reason == "nothing to redeliver" and not done.receipts
    for bad, words in (
        (pipeline_pb2.RedeliverRequest(), "needs the original run's workflow_id"),
        (pipeline_pb2.RedeliverRequest(workflow_id="no-such-run"), "no workflow 'no-such-run'"),
    ):
        with pytest.raises(WorkflowFailureError) as caught:
            await client.execute_workflow(
                RedeliverAsset.run, bad, id=f"test-redeliver-{uuid.uuid4().hex}", task_queue=queue,
                result_type=pipeline_pb2.RedeliverResult,
            )
        assert words in str(caught.value.cause)


async def test_notification_is_resent_with_fresh_receipts(fleet) -> None:
    """Explicit redelivery: the delivery goes first, then the webhook notification carries
    the new receipt in place of the failed one, under its original idempotency key."""
    client, queue, partner, renditions = fleet
    data = os.urandom(10_000)
    uri = renditions.ctx.storage.keys("asset0002").rendition("proxy", "mp4")
    await renditions.ctx.storage.write_bytes(uri, data)
    output = common_pb2.Output(uri=uri, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), role="proxy")
    key = "asset0002:partner:proxy:proxy.mp4"
    failed = stages_pb2.DeliveryReceipt(target="partner", role="proxy", ok=False, error="503", idempotency_key=key,
                                        source_uri=uri)
    result = await client.execute_workflow(
        RedeliverAsset.run,
        pipeline_pb2.RedeliverRequest(
            deliveries=[stages_pb2.DeliverInput(asset_id="asset0002", target="partner", output=output,
                                                idempotency_key=key)],
            notifications=[stages_pb2.NotifyInput(asset_id="asset0002", target="hook", workflow_id="wf-x",
                                                  state=common_pb2.COMPLETED_WITH_ERRORS, outputs=[output],
                                                  receipts=[failed], idempotency_key="asset0002:hook:webhook")],
        ),
        id=f"test-redeliver-{uuid.uuid4().hex}", task_queue=queue, result_type=pipeline_pb2.RedeliverResult,
    )
    assert result.state == common_pb2.COMPLETED, result.failures
    assert [r.target_type for r in result.receipts] == ["http", "webhook"]
    [note] = partner.notifications
    assert note.headers["Idempotency-Key"] == "asset0002:hook:webhook"
    [receipt] = note.payload["receipts"]
    assert receipt["ok"] is True and receipt["sha256"] == output.sha256


async def test_target_down_for_three_simulated_hours_is_delivered_when_back(tmp_path: Path) -> None:
    """Time-skipping: the partner answers 503 for 3 simulated hours; the delivery policy's
    capped backoff keeps retrying and delivers once it is back."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=temporal_test_server())
    try:
        async with DeliveryReceiver() as partner:
            started: list[datetime] = []

            async def down_for_three_hours(request: Any) -> Scripted | None:
                now = await env.get_current_time()
                if not started:
                    started.append(now)
                return Scripted(503) if now - started[0] < timedelta(hours=3) else None

            partner.gate = down_for_three_hours
            settings = make_settings(
                tmp_path,
                DAMFLEET_DISTRIBUTION_TARGETS_JSON=json.dumps({"partner": {"type": "http",
                                                                           "url": partner.url + "/{filename}"}}),
                DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS="127.0.0.1/32",
            )
            ctx = StageContext(settings)
            data = os.urandom(100_000)
            uri = ctx.storage.keys("asset0001").rendition("proxy", "mp4")
            await ctx.storage.write_bytes(uri, data)
            output = common_pb2.Output(uri=uri, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                       role="proxy")
            distribution = DistributionActivities(ctx)
            lane = f"-{uuid.uuid4().hex[:8]}"
            async with (
                Worker(env.client, task_queue=Queue.PIPELINE + lane, workflows=[RedeliverAsset]),
                Worker(env.client, task_queue=Queue.DISTRIBUTION + lane, activities=[distribution.deliver_output]),
            ):
                result = await env.client.execute_workflow(
                    RedeliverAsset.run,
                    pipeline_pb2.RedeliverRequest(deliveries=[stages_pb2.DeliverInput(
                        asset_id="asset0001", target="partner", output=output,
                        idempotency_key="asset0001:partner:proxy:proxy.mp4")]),
                    id=f"test-outage-{uuid.uuid4().hex}", task_queue=Queue.PIPELINE + lane,
                    result_type=pipeline_pb2.RedeliverResult,
                )
                finished = await env.get_current_time()
            await distribution.aclose()
            await ctx.storage.aclose()
    finally:
        await env.shutdown()
    assert result.state == common_pb2.COMPLETED, result.failures
    [receipt] = result.receipts
    assert receipt.ok and receipt.attempts > 10
    assert finished - started[0] >= timedelta(hours=3)
    assert partner.statuses.count(503) == receipt.attempts - 1 and len(partner.files) == 1
    assert partner.files[0].sha256 == output.sha256


async def test_redeliver_twice_resends_only_what_is_still_failed(fleet, media_dir: Path, tmp_path: Path) -> None:
    """Through the client, as an operator runs it: each redelivery sends only what is still
    failed, the latest one holds the whole record, and the original run's status catches up."""
    from damfleet.client import FleetClient

    client, queue, partner, _ = fleet
    fleet_client = FleetClient(client, make_settings(tmp_path))
    partner.fail_next(403, count=2)
    workflow_id = f"test-pipeline-{uuid.uuid4().hex}"
    request = pipeline_pb2.PipelineRequest(source_uri=(media_dir / "small.png").as_uri(), skip_ai=True,
                                           targets=["local", "partner"])
    first = await client.execute_workflow(AssetPipeline.run, request, id=workflow_id, task_queue=queue,
                                          result_type=pipeline_pb2.PipelineResult)
    assert first.state == common_pb2.COMPLETED_WITH_ERRORS

    partner.fail_next(403, count=1)  # the first redelivery lands one rendition, the other is refused again
    sent = partner.requests
    once = await fleet_client.redeliver(workflow_id, task_queue=queue)
    assert once.state == common_pb2.COMPLETED_WITH_ERRORS and len(once.failures) == 1
    assert partner.requests - sent == 2 and len(partner.files) == 1
    status = await fleet_client.status(workflow_id)
    assert status.state == common_pb2.COMPLETED_WITH_ERRORS and status.redelivered_by == f"{workflow_id}-redeliver"
    assert sum(not r.ok for r in status.receipts) == 1

    sent = partner.requests
    twice = await fleet_client.redeliver(workflow_id, task_queue=queue)
    assert twice.state == common_pb2.COMPLETED, twice.failures
    assert partner.requests - sent == 1, "only the delivery still failed was sent again"
    assert len(partner.files) == 2 and sum(r.ok for r in twice.receipts) == 2, "the record is cumulative"
    status = await fleet_client.status(workflow_id)
    assert status.state == common_pb2.COMPLETED and not status.failures and all(r.ok for r in status.receipts)
    assert status.stages["distribution"].status == common_pb2.STAGE_STATUS_COMPLETED

    sent = partner.requests
    third = await fleet_client.redeliver(workflow_id, task_queue=queue)
    assert third.state == common_pb2.COMPLETED and third.reason.startswith("nothing left to redeliver")
    assert partner.requests == sent


async def test_redeliver_refuses_what_it_cannot_redeliver(fleet, tmp_path: Path) -> None:
    from damfleet.client import FleetClient, JobControlError
    from damfleet.policies import WorkflowName

    client, queue, _, _ = fleet
    fleet_client = FleetClient(client, make_settings(tmp_path))
    failed_id = f"test-pipeline-{uuid.uuid4().hex}"
    with pytest.raises(WorkflowFailureError):
        await client.execute_workflow(AssetPipeline.run, pipeline_pb2.PipelineRequest(
            source_uri="file:///x.mov", profile="nope"), id=failed_id, task_queue=queue,
            result_type=pipeline_pb2.PipelineResult)
    # Delayed an hour, then cancelled: the run ends CANCELLED before any stage starts.
    cancelled = await client.start_workflow(AssetPipeline.run, pipeline_pb2.PipelineRequest(
        source_uri="file:///x.mov"), id=f"test-pipeline-{uuid.uuid4().hex}", task_queue=queue,
        start_delay=timedelta(hours=1))
    await cancelled.cancel()
    batch = await client.start_workflow(WorkflowName.BATCH_INGEST, id=f"batch-{uuid.uuid4().hex}",
                                        task_queue=f"nobody-{queue}")
    try:
        for workflow_id, words in (
            (failed_id, "ended FAILED: it delivered nothing; start it again with `damfleet submit`"),
            (batch.id, "is a BatchIngest workflow; redeliver takes an asset run's id"),
        ):
            with pytest.raises(JobControlError, match=words.replace("(", r"\(")):
                await fleet_client.redeliver(workflow_id, task_queue=queue)
        await _until_closed(client, cancelled.id)
        with pytest.raises(JobControlError, match="ended CANCELLED: it delivered nothing"):
            await fleet_client.redeliver(cancelled.id, task_queue=queue)
    finally:
        await batch.terminate()


async def _until_closed(client: Client, workflow_id: str) -> None:
    import asyncio

    from temporalio.client import WorkflowExecutionStatus

    for _ in range(100):
        if (await client.get_workflow_handle(workflow_id).describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} did not close")
