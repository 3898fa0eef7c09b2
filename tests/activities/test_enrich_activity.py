"""The enrich_asset activity: real models, real storage, a real Temporal dev server and a real gRPC service."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import ActivityEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.ai_enrich import EnrichActivities, build_activities
from activities.common import StageContext
from damfleet import samples
from damfleet.ai.backend import LocalInference
from damfleet.ai.models import ModelRegistry
from damfleet.ai.remote import RemoteInference
from damfleet.ai.transcribe import Cancelled
from damfleet.errors import PERMANENT_ERROR_TYPES
from damfleet.policies import ActivityName
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, stages_pb2
from tests.ai_support import SHAPES_WEIGHTS, shapes_script
from tests.conftest import free_port, make_settings

#: Short retries so the unreachable-service test sees several attempts in seconds.
TEST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=1.0,
    maximum_attempts=40,
    non_retryable_error_types=list(PERMANENT_ERROR_TYPES),
)


@workflow.defn(name="EnrichOnceForTest", sandboxed=False)
class EnrichOnce:
    """Runs one enrich_asset activity on the workflow's own task queue."""

    @workflow.run
    async def run(self, request: stages_pb2.EnrichInput) -> stages_pb2.EnrichOutput:
        return await workflow.execute_activity(
            ActivityName.ENRICH,
            request,
            result_type=stages_pb2.EnrichOutput,
            task_queue=workflow.info().task_queue,
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(seconds=60),
            retry_policy=TEST_RETRY,
        )


async def stored_asset(
    storage: Storage, source: Path, kind: int, *, has_audio: bool, duration: float = 0.0
) -> common_pb2.AssetRecord:
    asset_id = f"t{uuid.uuid4().hex[:12]}"
    uri = storage.keys(asset_id).original(source.name)
    await storage.upload_file(source, uri)
    return common_pb2.AssetRecord(
        asset_id=asset_id,
        original_uri=uri,
        original_filename=source.name,
        media=common_pb2.MediaInfo(kind=kind, has_audio=has_audio, duration_seconds=duration),
    )


async def speech_asset(storage: Storage) -> common_pb2.AssetRecord:
    return await stored_asset(storage, samples.speech_path(), common_pb2.MEDIA_KIND_AUDIO, has_audio=True,
                              duration=11.4)


def roles(result: stages_pb2.EnrichOutput) -> dict[str, common_pb2.Output]:
    return {o.role: o for o in result.outputs}


async def test_model_loaded_once_for_two_activities_in_one_worker(temporal_env, tmp_path: Path) -> None:
    client: Client = temporal_env.client
    settings = make_settings(tmp_path, DAMFLEET_AI_WHISPER_CPU_THREADS="2")
    ctx = StageContext(settings=settings)
    registry = ModelRegistry()
    backend = LocalInference(settings.ai, registry=registry)
    queue = f"q-ai-enrich-{uuid.uuid4().hex[:8]}"
    first, second = await speech_asset(ctx.storage), await speech_asset(ctx.storage)
    async with Worker(client, task_queue=queue, activities=build_activities(ctx, backend), workflows=[EnrichOnce],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        results = []
        for asset in (first, second):
            results.append(await client.execute_workflow(
                EnrichOnce.run, stages_pb2.EnrichInput(asset=asset, transcribe=True),
                id=f"enrich-{asset.asset_id}", task_queue=queue,
            ))
    whisper = backend.whisper()
    assert registry.created == {"whisper": 1}, "one model object per process"
    assert whisper.load_count == 1, "the second activity reused the loaded model"
    print(f"\nwhisper first load {whisper.load_seconds:.2f}s, loaded {whisper.load_count} time(s) for 2 activities")
    for asset, result in zip((first, second), results, strict=True):
        assert "bicycle" in result.transcript.text_excerpt.lower()
        assert result.transcript.language == "en" and result.transcript.segment_count >= 1
        outputs = roles(result)
        assert set(outputs) == {"transcript_json", "transcript_vtt", "transcript_srt"}
        assert outputs["transcript_vtt"].uri == ctx.storage.keys(asset.asset_id).enrichment("transcript", "vtt")
        assert all(o.stage == "ai_enrich" for o in result.outputs)
        stored = await ctx.storage.read_bytes(outputs["transcript_vtt"].uri)
        assert stored.startswith(b"WEBVTT") and len(stored) == outputs["transcript_vtt"].size_bytes
    await ctx.storage.aclose()


def _activity_env(heartbeats: list[object]) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=2))
    env.on_heartbeat = lambda *details: heartbeats.extend(details)
    return env


async def test_heartbeats_report_transcribed_seconds_and_retries_overwrite(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DAMFLEET_AI_WHISPER_CPU_THREADS="2")
    ctx = StageContext(settings=settings)
    acts = EnrichActivities(ctx, LocalInference(settings.ai, registry=ModelRegistry()))
    long_clip = tmp_path / "three-times.flac"
    await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-v", "error", "-stream_loop", "2", "-i", str(samples.speech_path()), str(long_clip)],
        check=True, timeout=60,
    )
    asset = await stored_asset(ctx.storage, long_clip, common_pb2.MEDIA_KIND_AUDIO, has_audio=True, duration=34.3)
    beats: list[object] = []
    request = stages_pb2.EnrichInput(asset=asset, transcribe=True)
    result = await _activity_env(beats).run(acts.enrich_asset, request)
    details = [b for b in beats if isinstance(b, dict) and "transcribed_seconds" in b]
    progress = [b["transcribed_seconds"] for b in details]
    print(f"\nheartbeat progress (s): {progress}")
    # Beats sample the latest progress every 0.5 s while whisper runs in a thread, so which values
    # they catch depends on the machine's speed; that every report is mid-way and growing is
    # checked deterministically in tests/damfleet/ai/test_enrich_stage.py.
    assert details and all(b["phase"] == "transcribe" and b["total_seconds"] == pytest.approx(34.3) for b in details)
    assert progress == sorted(progress)
    assert result.transcript.duration_seconds == pytest.approx(34.3, abs=0.5)
    # Three takes of one clip in one 30 s window: tiny.en often jumps past most of it on the first
    # pass (which pass succeeds varies even on one machine); the guard's re-decode must cover it.
    assert result.transcript.transcribed_seconds >= 0.9 * result.transcript.speech_seconds > 25.0
    again = await ActivityEnvironment().run(acts.enrich_asset, request)
    assert [o.uri for o in again.outputs] == [o.uri for o in result.outputs], "deterministic keys"
    listed = [o.uri async for o in ctx.storage.list(ctx.storage.keys(asset.asset_id).prefix + "enrichment/")]
    assert len(listed) == 3
    await ctx.storage.aclose()


async def test_corrupt_audio_fails_non_retryably(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ctx = StageContext(settings=settings)
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(bytes(range(256)) * 100)
    asset = await stored_asset(ctx.storage, broken, common_pb2.MEDIA_KIND_AUDIO, has_audio=True)
    acts = EnrichActivities(ctx)
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.enrich_asset, stages_pb2.EnrichInput(asset=asset, transcribe=True))
    assert caught.value.non_retryable and caught.value.type == "CorruptMedia"
    assert "broken.mp3" in str(caught.value)
    listed = [o async for o in ctx.storage.list(ctx.storage.keys(asset.asset_id).prefix + "enrichment/")]
    assert listed == [], "nothing stored for a failed enrichment"
    await ctx.storage.aclose()


async def test_detection_is_skipped_with_a_reason_without_weights_and_fails_on_missing_file(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ctx = StageContext(settings=settings)
    image = samples.make_image(tmp_path / "still.png", 320, 240)
    asset = await stored_asset(ctx.storage, image, common_pb2.MEDIA_KIND_IMAGE, has_audio=False)
    request = stages_pb2.EnrichInput(asset=asset, detect_objects=True)
    result = await ActivityEnvironment().run(EnrichActivities(ctx).enrich_asset, request)
    assert "no YOLO weights configured" in result.skipped_reason and not result.outputs
    missing = make_settings(tmp_path, DAMFLEET_AI_YOLO_WEIGHTS=str(tmp_path / "absent.pt"))
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(EnrichActivities(StageContext(settings=missing)).enrich_asset, request)
    assert caught.value.non_retryable and caught.value.type == "ConfigurationError"
    assert "absent.pt" in str(caught.value)
    await ctx.storage.aclose()


async def test_detection_labels_from_the_trained_fixture(tmp_path: Path) -> None:
    import numpy as np

    shapes = shapes_script()

    settings = make_settings(tmp_path, DAMFLEET_AI_YOLO_WEIGHTS=str(SHAPES_WEIGHTS), DAMFLEET_AI_YOLO_IMAGE_SIZE="320")
    ctx = StageContext(settings=settings)
    image, truth = shapes.draw_scene(np.random.default_rng(777), 320, 320, max_shapes=3)
    path = tmp_path / "scene.png"
    image.save(path)
    asset = await stored_asset(ctx.storage, path, common_pb2.MEDIA_KIND_IMAGE, has_audio=False)
    result = await ActivityEnvironment().run(
        EnrichActivities(ctx).enrich_asset, stages_pb2.EnrichInput(asset=asset, detect_objects=True, transcribe=True)
    )
    assert {label.label for label in result.labels} == {b.label for b in truth}
    assert all(label.label in shapes.CLASS_NAMES and label.max_confidence > 0.25 for label in result.labels)
    assert "transcription skipped" in result.skipped_reason
    body = json.loads(await ctx.storage.read_bytes(roles(result)["detections_json"].uri))
    assert body["frames"][0]["width"] == 320 and len(body["frames"][0]["boxes"]) >= len(truth)
    await ctx.storage.aclose()


async def test_unreachable_service_retries_then_succeeds_when_it_comes_up(temporal_env, tmp_path: Path) -> None:
    from damfleet.ai.server import start_server

    client: Client = temporal_env.client
    port = free_port()
    settings = make_settings(
        tmp_path, DAMFLEET_AI_INFERENCE_URL=f"127.0.0.1:{port}", DAMFLEET_AI_INFERENCE_CONNECT_SECONDS="1",
        DAMFLEET_AI_WHISPER_CPU_THREADS="2",
    )
    ctx = StageContext(settings=settings)
    backend = RemoteInference(settings.ai.inference_url, settings.ai)
    asset = await speech_asset(ctx.storage)
    queue = f"q-ai-enrich-{uuid.uuid4().hex[:8]}"
    enrichment_prefix = ctx.storage.keys(asset.asset_id).prefix + "enrichment/"
    async with Worker(client, task_queue=queue, activities=build_activities(ctx, backend), workflows=[EnrichOnce],
                      workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(
            EnrichOnce.run, stages_pb2.EnrichInput(asset=asset, transcribe=True),
            id=f"enrich-remote-{asset.asset_id}", task_queue=queue,
        )
        attempt, failure = 0, ""
        for _ in range(120):
            pending = (await handle.describe()).raw_description.pending_activities
            if pending and pending[0].attempt >= 3:
                attempt, failure = pending[0].attempt, pending[0].last_failure.message
                break
            await asyncio.sleep(0.5)
        print(f"\nattempt {attempt} pending while the service is down: {failure!r}")
        assert attempt >= 3 and "unreachable" in failure
        assert [o async for o in ctx.storage.list(enrichment_prefix)] == [], "nothing marked done while down"
        server, _, _ = await start_server(settings, listen=f"127.0.0.1:{port}")
        try:
            result = await asyncio.wait_for(handle.result(), timeout=120)
        finally:
            await server.stop(None)
    assert "bicycle" in result.transcript.text_excerpt.lower()
    assert len([o async for o in ctx.storage.list(enrichment_prefix)]) == 3
    await backend.aclose()
    await ctx.storage.aclose()


async def test_remote_bad_media_fails_the_workflow_without_retries(temporal_env, tmp_path: Path) -> None:
    from damfleet.ai.server import start_server

    client: Client = temporal_env.client
    settings = make_settings(tmp_path, DAMFLEET_AI_INFERENCE_CONNECT_SECONDS="5")
    server, port, _ = await start_server(settings, listen="127.0.0.1:0")
    remote_settings = make_settings(tmp_path, DAMFLEET_AI_INFERENCE_URL=f"127.0.0.1:{port}")
    ctx = StageContext(settings=remote_settings)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(200))
    asset = await stored_asset(ctx.storage, broken, common_pb2.MEDIA_KIND_AUDIO, has_audio=True)
    queue = f"q-ai-enrich-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(client, task_queue=queue, activities=build_activities(ctx), workflows=[EnrichOnce],
                          workflow_runner=UnsandboxedWorkflowRunner()):
            with pytest.raises(WorkflowFailureError) as caught:
                await client.execute_workflow(
                    EnrichOnce.run, stages_pb2.EnrichInput(asset=asset, transcribe=True),
                    id=f"enrich-bad-{asset.asset_id}", task_queue=queue,
                )
    finally:
        await server.stop(None)
    cause = caught.value.cause
    assert isinstance(cause, ActivityError) and isinstance(cause.cause, ApplicationError)
    assert cause.cause.type == "CorruptMedia" and cause.cause.non_retryable
    assert cause.retry_state is not None and cause.retry_state.name == "NON_RETRYABLE_FAILURE"
    await ctx.storage.aclose()



class RecordingInference(LocalInference):
    """LocalInference that remembers how its last transcription thread ended."""

    outcome: object = None

    def transcribe_blocking(self, path: Path, **kwargs: Any) -> Any:
        try:
            result = super().transcribe_blocking(path, **kwargs)
        except BaseException as exc:
            self.outcome = exc
            raise
        self.outcome = "finished"
        return result


async def test_cancel_stops_the_transcription_and_stores_nothing(tmp_path: Path) -> None:
    """Cancellation reaches the activity through its heartbeats; the model thread stops at the next segment."""
    settings = make_settings(tmp_path, DAMFLEET_AI_WHISPER_CPU_THREADS="2", DAMFLEET_AI_WHISPER_CHUNK_SECONDS="5")
    ctx = StageContext(settings=settings)
    backend = RecordingInference(settings.ai, registry=ModelRegistry())
    long_clip = tmp_path / "ten-times.flac"
    await asyncio.to_thread(
        subprocess.run,
        ["ffmpeg", "-v", "error", "-stream_loop", "9", "-i", str(samples.speech_path()), str(long_clip)],
        check=True, timeout=60,
    )
    asset = await stored_asset(ctx.storage, long_clip, common_pb2.MEDIA_KIND_AUDIO, has_audio=True, duration=114.3)
    beats: list[object] = []
    env = _activity_env(beats)
    task = asyncio.create_task(
        env.run(EnrichActivities(ctx, backend).enrich_asset, stages_pb2.EnrichInput(asset=asset, transcribe=True))
    )
    for _ in range(600):
        if any(isinstance(b, dict) and b.get("phase") == "transcribe" for b in beats) or task.done():
            break
        await asyncio.sleep(0.1)
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(1200):  # the thread notices the flag at its next segment or chunk
        if backend.outcome is not None:
            break
        await asyncio.sleep(0.1)
    outcome = backend.outcome
    assert isinstance(outcome, Cancelled), f"the model thread should stop early, it ended with {outcome!r}"
    listed = [o async for o in ctx.storage.list(ctx.storage.keys(asset.asset_id).prefix + "enrichment/")]
    assert listed == [], "a cancelled enrichment stores nothing"
    await ctx.storage.aclose()
