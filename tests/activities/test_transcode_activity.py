"""The transcode activity through a real Temporal dev server (cancel, non-retryable bad input,
success) and through ActivityEnvironment (heartbeat details, resume on retry)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest
from google.protobuf import json_format
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.workflow import ActivityCancellationType

from activities.common import StageContext
from activities.transcode import TranscodeActivities, build_activities
from damfleet.errors import PERMANENT_ERROR_TYPES
from damfleet.media.tools import find_tool
from damfleet.policies import ActivityName
from damfleet.settings import Settings
from damfleet.v1 import common_pb2, stages_pb2
from tests.conftest import make_settings


@workflow.defn(name="TranscodeActivityProbe")
class TranscodeOnly:
    """Runs just the transcode activity with a short heartbeat timeout, waiting for cancel cleanup."""

    @workflow.run
    async def run(self, request: stages_pb2.TranscodeInput) -> stages_pb2.TranscodeOutput:
        return await workflow.execute_activity(
            ActivityName.TRANSCODE,
            request,
            result_type=stages_pb2.TranscodeOutput,
            task_queue=workflow.info().task_queue,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=4),
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=list(PERMANENT_ERROR_TYPES)),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [find_tool("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error", "-y", *args], check=True, timeout=120
    )


def _asset(path: Path, kind: int, asset_id: str) -> common_pb2.AssetRecord:
    return common_pb2.AssetRecord(
        asset_id=asset_id,
        original_uri=path.as_uri(),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size_bytes=path.stat().st_size,
        media=common_pb2.MediaInfo(kind=kind),
    )


def _ffmpeg_under(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "ffmpeg" and any(str(folder) in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture
async def transcode_worker(temporal_env, tmp_path: Path) -> AsyncIterator[tuple[Client, str, Settings]]:
    """A transcode worker (real activities) plus the probe workflow, on a fresh task queue.

    The slowest x264 preset keeps the encode running long enough to cancel mid-way.
    """
    settings = make_settings(tmp_path, DAMFLEET_TRANSCODE_X264_PRESET="veryslow")
    queue = f"q-transcode-{uuid.uuid4().hex[:8]}"
    client: Client = temporal_env.client  # type: ignore[attr-defined]
    ctx = StageContext(settings=settings)
    async with Worker(
        client,
        task_queue=queue,
        workflows=[TranscodeOnly],
        activities=build_activities(ctx),
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield client, queue, settings
    await ctx.storage.aclose()


async def test_cancel_kills_ffmpeg_and_cleans_scratch_and_outputs(
    transcode_worker: tuple[Client, str, Settings], tmp_path: Path
) -> None:
    client, queue, settings = transcode_worker
    source = tmp_path / "long.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=1280x720:rate=25:duration=30",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(source),
    )
    request = stages_pb2.TranscodeInput(
        asset=_asset(source, common_pb2.MEDIA_KIND_VIDEO, "asset-cancel"), renditions=["poster", "proxy"]
    )
    handle = await client.start_workflow(
        TranscodeOnly.run, request, id=f"cancel-{uuid.uuid4().hex[:8]}", task_queue=queue
    )

    for _ in range(600):  # until the proxy encode is running
        if _ffmpeg_under(settings.scratch_path) and any(settings.scratch_path.rglob("proxy.mp4")):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail("the proxy ffmpeg never started")
    await asyncio.sleep(1.0)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert isinstance(caught.value.cause, (CancelledError, ActivityError))

    # The activity finished its cleanup before the workflow saw the cancel (WAIT_CANCELLATION_COMPLETED).
    assert _ffmpeg_under(settings.scratch_path) == []
    assert [p for p in settings.scratch_path.rglob("*")] == []
    keys_prefix = Path(settings.storage_root.removeprefix("file://")) / "assets" / "as" / "asset-cancel" / "renditions"
    stored = sorted(p.name for p in keys_prefix.rglob("*") if p.is_file()) if keys_prefix.exists() else []
    assert "proxy.mp4" not in stored  # the poster finished before the cancel and may stay; no partial proxy


async def test_bad_input_fails_once_without_retry(
    transcode_worker: tuple[Client, str, Settings], tmp_path: Path
) -> None:
    client, queue, _settings = transcode_worker
    audio_only = tmp_path / "sound.m4a"
    _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=2", "-c:a", "aac", str(audio_only))
    request = stages_pb2.TranscodeInput(
        asset=_asset(audio_only, common_pb2.MEDIA_KIND_VIDEO, "asset-novideo"), renditions=["proxy"]
    )
    handle = await client.start_workflow(TranscodeOnly.run, request, id=f"bad-{uuid.uuid4().hex[:8]}", task_queue=queue)
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    activity_error = caught.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert cause.type == "UnsupportedMedia" and "needs a video stream" in cause.message
    history = [e async for e in handle.fetch_history_events()]
    started = [e for e in history if e.HasField("activity_task_started_event_attributes")]
    assert started[-1].activity_task_started_event_attributes.attempt == 1


async def test_image_renditions_through_the_server(
    transcode_worker: tuple[Client, str, Settings], tmp_path: Path
) -> None:
    client, queue, settings = transcode_worker
    picture = tmp_path / "photo.jpg"
    _ffmpeg("-f", "lavfi", "-i", "testsrc2=size=2000x1500:rate=1", "-frames:v", "1", str(picture))
    request = stages_pb2.TranscodeInput(
        asset=_asset(picture, common_pb2.MEDIA_KIND_IMAGE, "asset-photo"), profile="web"
    )
    result = await client.execute_workflow(
        TranscodeOnly.run, request, id=f"img-{uuid.uuid4().hex[:8]}", task_queue=queue
    )
    assert list(result.renditions) == ["thumbnail", "preview", "avif"]
    assert [o.role for o in result.outputs] == ["thumbnail", "preview", "avif"]
    assert [o.mime_type for o in result.outputs] == ["image/webp", "image/jpeg", "image/avif"]
    assert all(
        o.uri.endswith(("renditions/thumbnail.webp", "renditions/preview.jpg", "renditions/avif.avif"))
        for o in result.outputs
    )
    assert result.hw_accel == "software"
    assert [p for p in settings.scratch_path.rglob("*")] == []


async def test_heartbeats_carry_progress_and_a_retry_resumes(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    source = tmp_path / "clip.mp4"
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25:duration=3",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        str(source),
    )
    request = stages_pb2.TranscodeInput(
        asset=_asset(source, common_pb2.MEDIA_KIND_VIDEO, "asset-resume"), renditions=["poster", "storyboard"]
    )
    ctx = StageContext(settings=settings)
    acts = TranscodeActivities(ctx)
    beats: list[object] = []
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=4))
    env.on_heartbeat = lambda *details: beats.extend(details)
    first = await env.run(acts.transcode_asset, request)
    records = [b for b in beats if isinstance(b, stages_pb2.TranscodeHeartbeat)]
    assert records and len(records) == len(beats), "every beat is the progress message"
    assert records[-1].percent == 100.0
    assert [d.name for d in records[-1].done] == ["poster", "storyboard"]

    # An attempt that died after the poster: its last heartbeat lists only the poster as done.
    after_poster = next(r for r in records if [d.name for d in r.done] == ["poster"])
    # ... heartbeated as the message, or as the JSON dict workers wrote before it existed.
    legacy = json_format.MessageToDict(after_poster, preserving_proto_field_name=True)
    for details in (after_poster, legacy):
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(env.info, attempt=2, heartbeat_details=[details])
        second = await retry.run(acts.transcode_asset, request)
        assert list(second.resumed_renditions) == ["poster"]
        assert set(second.timings_seconds) == {"storyboard"}
        assert [o.uri for o in second.outputs] == [o.uri for o in first.outputs]
    await ctx.storage.aclose()


async def _recorded_done(handle: WorkflowHandle) -> list[str]:
    """Rendition names the server's last recorded heartbeat of the pending transcode lists as done."""
    description = await handle.describe()
    for pending in description.raw_description.pending_activities:
        for payload in pending.heartbeat_details.payloads:
            details = json.loads(payload.data)
            if isinstance(details, dict):
                return [d["name"] for d in details.get("done", [])]
    return []


_ACTIVITY_WORKER = """
import asyncio, sys
from temporalio.client import Client
from temporalio.worker import Worker
from activities.common import StageContext
from activities.transcode import build_activities
from damfleet.settings import load_settings

async def main():
    client = await Client.connect(sys.argv[1], namespace=sys.argv[2])
    ctx = StageContext(settings=load_settings())
    async with Worker(client, task_queue=sys.argv[3], activities=build_activities(ctx)):
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_worker_killed_outright_is_retried_elsewhere_and_resumes(temporal_env, tmp_path: Path) -> None:
    """SIGKILL the worker process mid-proxy: the heartbeat timeout hands the task to another
    worker, which resumes after the poster recorded in the last heartbeat."""
    client: Client = temporal_env.client  # type: ignore[attr-defined]
    queue = f"q-transcode-{uuid.uuid4().hex[:8]}"
    root_env = {
        "DAMFLEET_STATE_DIR": str(tmp_path / "state"),
        "DAMFLEET_STORAGE_ROOT": (tmp_path / "storage").as_uri(),
        "DAMFLEET_WORKER_METRICS_PORT": "0",
    }
    doomed_scratch = tmp_path / "scratch-doomed"
    doomed = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", _ACTIVITY_WORKER, client.service_client.config.target_host, client.namespace, queue],
        env={
            **os.environ,
            **root_env,
            "DAMFLEET_WORKER_SCRATCH_DIR": str(doomed_scratch),
            "DAMFLEET_TRANSCODE_X264_PRESET": "veryslow",
        },
        stdout=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert doomed.stdout is not None
        assert (await asyncio.wait_for(doomed.stdout.readline(), 120)).strip() == b"ready"
        source = tmp_path / "clip.mp4"
        _ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=12",
            "-c:v", "libx264", "-preset", "ultrafast", str(source),
        )  # fmt: skip
        request = stages_pb2.TranscodeInput(
            asset=_asset(source, common_pb2.MEDIA_KIND_VIDEO, "asset-killed"), renditions=["poster", "proxy"]
        )
        survivor_settings = make_settings(tmp_path, DAMFLEET_WORKER_SCRATCH_DIR=str(tmp_path / "scratch-survivor"))
        async with Worker(
            client, task_queue=queue, workflows=[TranscodeOnly], workflow_runner=UnsandboxedWorkflowRunner()
        ):
            handle = await client.start_workflow(
                TranscodeOnly.run, request, id=f"killed-{uuid.uuid4().hex[:8]}", task_queue=queue
            )
            for _ in range(600):  # until the server holds a heartbeat listing the poster as done
                if await _recorded_done(handle) == ["poster"] and _ffmpeg_under(doomed_scratch):
                    break
                await asyncio.sleep(0.2)
            else:
                pytest.fail("the doomed worker never heartbeated a finished poster while encoding the proxy")
            os.killpg(doomed.pid, signal.SIGKILL)  # the worker process, as a crashed pod
            for orphan in _ffmpeg_under(doomed_scratch):  # in a pod its ffmpeg would die with it
                orphan.kill()
            await asyncio.wait_for(doomed.wait(), 10)

            ctx = StageContext(settings=survivor_settings)
            async with Worker(client, task_queue=queue, activities=build_activities(ctx)):
                result = await handle.result()
            await ctx.storage.aclose()
        assert list(result.renditions) == ["poster", "proxy"]
        assert list(result.resumed_renditions) == ["poster"]
        assert set(result.timings_seconds) == {"proxy"}
        history = [e async for e in handle.fetch_history_events()]
        started = [e for e in history if e.HasField("activity_task_started_event_attributes")]
        assert started[-1].activity_task_started_event_attributes.attempt == 2
        assert [p for p in (tmp_path / "scratch-survivor").rglob("*")] == []
    finally:
        if doomed.returncode is None:
            os.killpg(doomed.pid, signal.SIGKILL)
            await asyncio.wait_for(doomed.wait(), 10)
        for orphan in _ffmpeg_under(doomed_scratch):
            orphan.kill()
