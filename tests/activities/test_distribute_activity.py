"""Distribution activities: receipts, heartbeats and error mapping (ActivityEnvironment), and
retries through a real Temporal dev server against a partner that fails first."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.common import StageContext
from activities.distribution import DistributionActivities, build_activities
from damfleet.delivery import verify_request
from damfleet.policies import Queue
from damfleet.settings import Settings
from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2
from tests.conftest import make_settings
from tests.delivery_receiver import DeliveryReceiver
from workflows.redeliver import RedeliverAsset

LOOPBACK = "127.0.0.1/32"


def _settings(root: Path, targets: dict[str, Any], **env: str) -> Settings:
    return make_settings(root, DAMFLEET_DISTRIBUTION_TARGETS_JSON=json.dumps(targets),
                         DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS=LOOPBACK, **env)


async def _stored_output(ctx: StageContext, asset_id: str = "asset0001", size: int = 400_000) -> common_pb2.Output:
    data = os.urandom(size)
    uri = ctx.storage.keys(asset_id).rendition("proxy", "mp4")
    await ctx.storage.write_bytes(uri, data, content_type="video/mp4")
    return common_pb2.Output(uri=uri, size_bytes=size, sha256=hashlib.sha256(data).hexdigest(), role="proxy",
                             mime_type="video/mp4", stage="transcode")


def _deliver_input(output: common_pb2.Output, target: str, asset_id: str = "asset0001") -> stages_pb2.DeliverInput:
    return stages_pb2.DeliverInput(
        asset_id=asset_id, target=target, output=output,
        metadata=common_pb2.AssetMetadata(title="Clip", tenant="acme"),
        idempotency_key=f"{asset_id}:{target}:proxy:proxy.mp4",
    )


def test_build_activities_registers_the_distribution_activities(tmp_path: Path) -> None:
    activities = build_activities(StageContext(_settings(tmp_path, {})))
    names = {fn.__temporal_activity_definition.name for fn in activities}  # type: ignore[attr-defined]
    assert names == {"deliver_outputs", "deliver_output", "notify_webhook", "load_failed_deliveries"}


async def test_deliver_output_returns_a_receipt_and_heartbeats(tmp_path: Path) -> None:
    ctx = StageContext(_settings(tmp_path, {}))
    acts = DistributionActivities(ctx)
    output = await _stored_output(ctx, size=2_000_000)
    env = ActivityEnvironment()
    beats: list[Any] = []
    env.on_heartbeat = lambda *details: beats.extend(details)
    receipt = await env.run(acts.deliver_output, _deliver_input(output, "local"))
    assert receipt.ok and receipt.target == "local" and receipt.target_type == "local"
    assert receipt.size_bytes == output.size_bytes and receipt.sha256 == output.sha256
    assert receipt.attempts == 1 and receipt.seconds >= 0 and receipt.source_uri == output.uri
    assert Path(receipt.location) == ctx.settings.state_path / "delivered" / "asset0001" / "proxy.mp4"
    assert beats and beats[0]["target"] == "local" and beats[0]["bytes_total"] == output.size_bytes
    await acts.aclose()


def _batch(target: str, *jobs: stages_pb2.DeliverInput) -> stages_pb2.DeliverBatchInput:
    return stages_pb2.DeliverBatchInput(asset_id=jobs[0].asset_id, target=target, deliveries=list(jobs))


async def test_deliver_outputs_keeps_a_receipt_per_output(tmp_path: Path) -> None:
    ctx = StageContext(_settings(tmp_path, {}))
    acts = DistributionActivities(ctx)
    good = await _stored_output(ctx)
    gone = common_pb2.Output(uri=ctx.storage.keys("asset0001").rendition("gone", "webp"), role="thumbnail")
    missing = stages_pb2.DeliverInput(asset_id="asset0001", target="local", output=gone,
                                      idempotency_key="asset0001:local:thumbnail:gone.webp")
    result = await ActivityEnvironment().run(acts.deliver_outputs, _batch("local", _deliver_input(good, "local"),
                                                                             missing))
    await acts.aclose()
    first, second = result.receipts
    assert first.ok and first.role == "proxy" and first.sha256 == good.sha256 and Path(first.location).is_file()
    # A permanent failure of one output is its own failed receipt; the other still landed.
    assert not second.ok and second.role == "thumbnail" and "gone.webp" in second.error
    assert second.idempotency_key == missing.idempotency_key


async def test_deliver_outputs_retries_only_what_did_not_land(tmp_path: Path) -> None:
    async with DeliveryReceiver() as receiver:
        receiver.fail_next(429, retry_after="30", path="/x/proxy.mp4")
        ctx = StageContext(_settings(tmp_path, {"partner": {"type": "http", "url": receiver.url + "/x/{filename}"}}))
        acts = DistributionActivities(ctx)
        proxy = await _stored_output(ctx)
        data = b"poster bytes"
        poster_uri = ctx.storage.keys("asset0001").rendition("poster", "jpg")
        await ctx.storage.write_bytes(poster_uri, data)
        poster = common_pb2.Output(uri=poster_uri, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                                   role="poster", mime_type="image/jpeg")
        jobs = (_deliver_input(proxy, "partner"),
                stages_pb2.DeliverInput(asset_id="asset0001", target="partner", output=poster,
                                        idempotency_key="asset0001:partner:poster:poster.jpg"))
        env = ActivityEnvironment()
        beats: list[Any] = []
        env.on_heartbeat = lambda *details: beats.extend(details)
        with pytest.raises(ApplicationError) as caught:
            await env.run(acts.deliver_outputs, _batch("partner", *jobs))
        err = caught.value
        assert not err.non_retryable and err.type == "TargetUnavailable"
        assert err.next_retry_delay == timedelta(seconds=30) and "1 of 2" in err.message
        # The poster landed; the failure's details and the heartbeats say so.
        assert set(err.details[0]["delivered"]) == {jobs[1].idempotency_key}
        assert set(beats[-1]["delivered"]) == {jobs[1].idempotency_key}
        requests = receiver.requests

        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[beats[-1]])
        result = await retry.run(acts.deliver_outputs, _batch("partner", *jobs))
        await acts.aclose()
        assert receiver.requests == requests + 1  # only the proxy was sent again
    assert [r.role for r in result.receipts] == ["proxy", "poster"] and all(r.ok for r in result.receipts)
    assert result.receipts[0].attempts == 2 and result.receipts[1].attempts == 1


async def test_deliver_output_to_an_s3_target(tmp_path: Path, s3_server: dict[str, str], s3_bucket: str) -> None:
    import boto3

    target = {"type": "s3", "bucket": s3_bucket, "prefix": "out", "endpoint_url": s3_server["endpoint"],
              "access_key_id": s3_server["access_key"], "secret_access_key": s3_server["secret_key"]}
    ctx = StageContext(_settings(tmp_path, {"cdn": target}))
    acts = DistributionActivities(ctx)
    output = await _stored_output(ctx, size=1_000_000)
    receipt = await ActivityEnvironment().run(acts.deliver_output, _deliver_input(output, "cdn"))
    await acts.aclose()
    assert receipt.ok and receipt.target_type == "s3"
    assert receipt.location == f"s3://{s3_bucket}/out/asset0001/proxy.mp4"
    client = boto3.client("s3", endpoint_url=s3_server["endpoint"], aws_access_key_id=s3_server["access_key"],
                          aws_secret_access_key=s3_server["secret_key"], region_name=s3_server["region"])
    obj = client.get_object(Bucket=s3_bucket, Key="out/asset0001/proxy.mp4")
    assert hashlib.sha256(obj["Body"].read()).hexdigest() == output.sha256
    assert obj["Metadata"]["title"] == "Clip" and obj["Metadata"]["tenant"] == "acme"
    assert s3_server["secret_key"] not in str(receipt)


async def test_rejection_is_non_retryable_and_names_target(tmp_path: Path) -> None:
    async with DeliveryReceiver() as receiver:
        receiver.fail_next(403)
        ctx = StageContext(_settings(tmp_path, {"partner": {"type": "http", "url": receiver.url + "/x",
                                                            "bearer_token": "tok-secret"}}))
        acts = DistributionActivities(ctx)
        output = await _stored_output(ctx)
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(acts.deliver_output, _deliver_input(output, "partner"))
        await acts.aclose()
    err = caught.value
    assert err.non_retryable and err.type == "TargetRejected"
    assert "'partner'" in err.message and "403" in err.message and "tok-secret" not in err.message


async def test_retry_after_becomes_the_next_retry_delay(tmp_path: Path) -> None:
    async with DeliveryReceiver() as receiver:
        receiver.fail_next(429, retry_after="30")
        ctx = StageContext(_settings(tmp_path, {"partner": {"type": "http", "url": receiver.url + "/x"}}))
        acts = DistributionActivities(ctx)
        output = await _stored_output(ctx)
        with pytest.raises(ApplicationError) as caught:
            await ActivityEnvironment().run(acts.deliver_output, _deliver_input(output, "partner"))
        await acts.aclose()
    assert not caught.value.non_retryable and caught.value.type == "TargetUnavailable"
    assert caught.value.next_retry_delay == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("target", "targets", "error_type", "words"),
    [
        ("nowhere", {}, "ConfigurationError", "unknown delivery target 'nowhere'"),
        ("odd", {"odd": {"type": "gopher"}}, "ConfigurationError", "unknown target type 'gopher'"),
        ("bad-url", {"bad-url": {"type": "http", "url": "http//oops"}}, "ConfigurationError", "absolute http"),
        ("meta", {"meta": {"type": "http", "url": "http://169.254.169.254/x"}}, "OutboundBlocked", "metadata"),
        ("", {}, "BadInput", "names no target"),
    ],
)
async def test_bad_input_fails_non_retryably(
    tmp_path: Path, target: str, targets: dict[str, Any], error_type: str, words: str
) -> None:
    ctx = StageContext(_settings(tmp_path, targets))
    acts = DistributionActivities(ctx)
    output = await _stored_output(ctx)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.deliver_output, _deliver_input(output, target))
    await acts.aclose()
    assert caught.value.non_retryable and caught.value.type == error_type and words in caught.value.message


async def test_missing_rendition_is_non_retryable(tmp_path: Path) -> None:
    ctx = StageContext(_settings(tmp_path, {}))
    acts = DistributionActivities(ctx)
    output = common_pb2.Output(uri=ctx.storage.keys("asset0001").rendition("gone", "mp4"), role="proxy")
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.deliver_output, _deliver_input(output, "local"))
    assert caught.value.non_retryable and caught.value.type == "SourceNotFound"


async def test_notify_webhook_sends_a_verifiable_notification(tmp_path: Path) -> None:
    async with DeliveryReceiver(webhook_secret="whsec") as receiver:
        ctx = StageContext(_settings(tmp_path, {"hook": {"type": "webhook", "url": receiver.url + "/hooks/done"}},
                                     DAMFLEET_DISTRIBUTION_WEBHOOK_SECRET="whsec"))
        acts = DistributionActivities(ctx)
        output = await _stored_output(ctx)
        notify = stages_pb2.NotifyInput(
            asset_id="asset0001", target="hook", workflow_id="wf-1", state=common_pb2.COMPLETED,
            outputs=[output], idempotency_key="asset0001:hook:webhook",
            receipts=[stages_pb2.DeliveryReceipt(target="local", role="proxy", ok=True, location="/d/proxy.mp4")],
        )
        receipt = await ActivityEnvironment().run(acts.notify_webhook, notify)
        await acts.aclose()
    [note] = receiver.notifications
    verify_request("whsec", note.body, note.headers)
    assert receipt.ok and receipt.target_type == "webhook" and receipt.sha256 == hashlib.sha256(note.body).hexdigest()
    assert note.payload["outputs"][0]["sha256"] == output.sha256
    assert note.headers["Idempotency-Key"] == "asset0001:hook:webhook"


async def test_flaky_partner_is_delivered_exactly_once_through_temporal(temporal_env: Any, tmp_path: Path) -> None:
    """A real dev server retries the activity: 500, a lost response (stored, answered 502),
    503 + Retry-After, 429 + Retry-After, then success. One copy stored."""
    client: Client = temporal_env.client
    lane = f"-{uuid.uuid4().hex[:8]}"
    async with DeliveryReceiver() as receiver:
        receiver.fail_next(500)
        receiver.lose_next_responses(1)
        receiver.fail_next(503, retry_after="1")
        receiver.fail_next(429, retry_after="1")
        ctx = StageContext(_settings(tmp_path, {"partner": {"type": "http", "url": receiver.url + "/in/{filename}"}}))
        output = await _stored_output(ctx)
        acts = DistributionActivities(ctx)
        async with (
            Worker(client, task_queue=Queue.PIPELINE + lane, workflows=[RedeliverAsset]),
            Worker(client, task_queue=Queue.DISTRIBUTION + lane,
                   activities=[acts.deliver_output, acts.notify_webhook, acts.load_failed_deliveries]),
        ):
            result = await client.execute_workflow(
                RedeliverAsset.run,
                pipeline_pb2.RedeliverRequest(deliveries=[_deliver_input(output, "partner")]),
                id=f"test-deliver-{uuid.uuid4().hex}", task_queue=Queue.PIPELINE + lane,
                result_type=pipeline_pb2.RedeliverResult,
            )
        await acts.aclose()
    assert result.state == common_pb2.COMPLETED, result.failures
    [receipt] = result.receipts
    assert receipt.ok and receipt.attempts == 5 and receipt.sha256 == output.sha256
    assert receiver.statuses == [500, 502, 503, 429, 200]
    assert len(receiver.files) == 1 and receiver.files[0].sha256 == output.sha256


class _GatedStorage:
    """The worker's storage, except that reading pauses after ``gate_at`` bytes until
    ``opened`` is set: the test decides when the upload is "mid-way", on any machine speed."""

    def __init__(self, inner: Any, gate_at: int) -> None:
        self._inner = inner
        self.gate_at = gate_at
        self.opened = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def read(self, uri: str, *, chunk_bytes: int) -> Any:
        sent = 0
        async for chunk in self._inner.read(uri, chunk_bytes=chunk_bytes):
            if sent >= self.gate_at:
                await self.opened.wait()
            sent += len(chunk)
            yield chunk


async def test_sftp_retry_on_another_worker_resumes_from_the_heartbeat_offset(tmp_path: Path) -> None:
    """Attempt 1 heartbeats its offset; sshd is killed -9 mid-upload. Attempt 2, on another
    worker (a fresh activity instance and connection pool), starts its heartbeats at the
    offset attempt 1 reported and resumes from what the server kept: the receipt says so."""
    from damfleet.delivery import Distributor
    from damfleet.errors import TargetUnavailableError
    from tests.file_servers import SshServer

    server = SshServer().start()
    try:
        settings = _settings(tmp_path, {"partner": server.target()})
        ctx = StageContext(settings)
        output = await _stored_output(ctx, size=12 * 1024 * 1024)
        gated = _GatedStorage(ctx.storage, gate_at=6 * 1024 * 1024)
        first = DistributionActivities(ctx, distributor=Distributor(settings, gated))  # type: ignore[arg-type]
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=2))
        beats: list[dict[str, Any]] = []

        def on_heartbeat(*details: Any) -> None:
            beats.extend(details)
            if details[-1]["bytes_sent"] > 0 and not gated.opened.is_set():
                server.kill()
                gated.opened.set()

        env.on_heartbeat = on_heartbeat
        with pytest.raises(ApplicationError) as caught:
            await env.run(first.deliver_output, _deliver_input(output, "partner"))
        assert caught.value.type == TargetUnavailableError.error_type and not caught.value.non_retryable
        await first.aclose()
        offset = beats[-1]["bytes_sent"]
        assert 0 < offset < output.size_bytes

        server.start()
        second = DistributionActivities(StageContext(settings, ctx.storage))
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[beats[-1]])
        retry_beats: list[dict[str, Any]] = []
        retry.on_heartbeat = lambda *details: retry_beats.extend(details)
        receipt = await retry.run(second.deliver_output, _deliver_input(output, "partner"))
        await second.aclose()
        assert receipt.ok and receipt.attempts == 2 and receipt.target_type == "sftp"
        assert 0 < receipt.resumed_from <= offset
        assert retry_beats and retry_beats[0]["bytes_sent"] == offset
        landed = server.upload / "asset0001" / "proxy.mp4"
        assert hashlib.sha256(landed.read_bytes()).hexdigest() == output.sha256 == receipt.sha256
    finally:
        server.stop()
