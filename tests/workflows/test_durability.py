"""Nothing lost under faults: an S3 outage during ingest is waited out, not reported as bad input.

The store sits behind :class:`tests.faults.TcpRelay`, which refuses connections for the
outage (moto keeps its buckets). Ingest runs for real against it; later stages are the
stand-ins of ``test_pipeline``. The default suite runs a short outage; the ``slow`` run
holds it for the 60 s the durability issue names (ingest's first retries are 2-30 s
apart, so a minute spans several failed attempts).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from activities.common import StageContext
from damfleet.client import AssetHandle
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, pipeline_pb2
from tests.conftest import make_settings
from tests.faults import TcpRelay
from tests.workflows.test_pipeline import StandIns, lane_workers
from workflows.pipeline import AssetPipeline


async def _wait_for_retry(handle: AssetHandle, timeout: float) -> pipeline_pb2.PipelineResult:
    """The status once ingest has failed at least once and waits to retry."""
    deadline = time.monotonic() + timeout
    status = await handle.status()
    while time.monotonic() < deadline:
        status = await handle.status()
        if status.stages["ingest"].attempts >= 2 and status.stages["ingest"].waiting:
            return status
        await asyncio.sleep(0.5)
    raise AssertionError(f"ingest never showed a retry: {status.stages['ingest']}")


async def _ingest_through_outage(
    temporal_env, tmp_path: Path, media_dir: Path, s3_server: dict[str, str], s3_bucket: str, outage_seconds: float
) -> None:
    relay = TcpRelay("127.0.0.1", int(s3_server["endpoint"].rsplit(":", 1)[1])).start()
    settings = make_settings(
        tmp_path,
        DAMFLEET_STORAGE_ROOT=f"s3://{s3_bucket}/archive",
        DAMFLEET_STORAGE_S3_ENDPOINT_URL=relay.endpoint,
        DAMFLEET_STORAGE_S3_ACCESS_KEY_ID=s3_server["access_key"],
        DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY=s3_server["secret_key"],
    )
    ctx = StageContext(settings)
    client: Client = temporal_env.client
    source = media_dir / "small.png"
    try:
        async with lane_workers(client, ctx, StandIns(ctx.storage)) as queue:
            relay.outage()
            started = time.monotonic()
            raw = await client.start_workflow(
                AssetPipeline.run, pipeline_pb2.PipelineRequest(source_uri=source.as_uri()),
                id=f"outage-{uuid.uuid4().hex}", task_queue=queue, result_type=pipeline_pb2.PipelineResult,
            )
            handle = AssetHandle(raw.id, raw)
            waiting = await _wait_for_retry(handle, timeout=outage_seconds + 60)
            assert waiting.state != common_pb2.FAILED
            assert waiting.stages["ingest"].waiting.startswith("storage unreachable"), waiting.stages["ingest"]
            assert "unreachable" in waiting.stages["ingest"].last_error
            await asyncio.sleep(max(0.0, outage_seconds - (time.monotonic() - started)))
            relay.restore()
            result = await asyncio.wait_for(handle.wait(), timeout=300)
            recovered = time.monotonic() - started - outage_seconds
    finally:
        relay.restore()
        await ctx.storage.aclose()
    assert result.state == common_pb2.COMPLETED, result.error
    ingest = result.stages["ingest"]
    assert ingest.status == common_pb2.STAGE_STATUS_COMPLETED and ingest.attempts >= 2 and not ingest.waiting
    assert "unreachable" in ingest.last_error
    print(f"outage {outage_seconds:.0f}s: ingest took {ingest.attempts} attempts, "
          f"completed {recovered:.1f}s after the store came back")
    # What was stored is whole: the original's bytes and hash match the source.
    storage = Storage.from_settings(settings)
    original = next(o for o in result.outputs if o.role == "original")
    assert await storage.read_bytes(original.uri) == source.read_bytes()
    assert (await storage.stat(original.uri)).sha256 == original.sha256
    await storage.aclose()


async def test_short_s3_outage_during_ingest_is_waited_out(
    temporal_env, tmp_path: Path, media_dir: Path, s3_server: dict[str, str], s3_bucket: str
) -> None:
    await _ingest_through_outage(temporal_env, tmp_path, media_dir, s3_server, s3_bucket, outage_seconds=8)


@pytest.mark.slow
async def test_s3_unreachable_for_60s_during_ingest_and_the_run_completes(
    temporal_env, tmp_path: Path, media_dir: Path, s3_server: dict[str, str], s3_bucket: str
) -> None:
    await _ingest_through_outage(temporal_env, tmp_path, media_dir, s3_server, s3_bucket, outage_seconds=60)
