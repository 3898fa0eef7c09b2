"""AssetPipeline on a real Temporal dev server.

Ingest runs for real; the later stages are stand-ins registered under the real activity
names (their own tests live with their modules), so these tests are about orchestration:
routing per queue, states, the status query, skip reasons, failures and results.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities import catalog as catalog_activities
from activities.ai_enrich import build_activities as enrich_activities
from activities.common import StageContext
from activities.ingest import build_activities as ingest_activities
from damfleet import search_attributes as sa
from damfleet.client import AssetHandle
from damfleet.policies import ActivityName, Queue
from damfleet.profiles import get_profile
from damfleet.retries import stage_attempts
from damfleet.settings import Settings
from damfleet.stages import STAGE_NAMES
from damfleet.storage import Storage
from damfleet.summaries import stage_outputs
from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2
from tests.conftest import make_settings
from workflows.pipeline import CURRENT_PATCH, ENRICH_BESIDE_TRANSCODE, AssetPipeline


class StandIns:
    """Downstream stages that write real (tiny) files, so outputs are checkable."""

    def __init__(self, storage: Storage, *, fail_enrich: bool = False) -> None:
        self.storage = storage
        self.fail_enrich = fail_enrich
        self.calls: list[str] = []
        self.transcode_inputs: list[stages_pb2.TranscodeInput] = []
        self.enrich_inputs: list[stages_pb2.EnrichInput] = []

    async def _output(self, asset_id: str, role: str, stage: str) -> common_pb2.Output:
        data = f"{role} of {asset_id}".encode()
        written = await self.storage.write_bytes(self.storage.keys(asset_id).rendition(role, "bin"), data)
        return common_pb2.Output(uri=written.uri, size_bytes=written.size_bytes, sha256=written.sha256,
                                 role=role, stage=stage)

    @activity.defn(name=ActivityName.TRANSCODE)
    async def transcode(self, request: stages_pb2.TranscodeInput) -> stages_pb2.TranscodeOutput:
        self.calls.append(f"transcode:{activity.info().task_queue}")
        self.transcode_inputs.append(request)
        out = await self._output(request.asset.asset_id, "thumbnail", "transcode")
        return stages_pb2.TranscodeOutput(outputs=[out], renditions=["thumbnail"], hw_accel="software",
                                          attempt=activity.info().attempt)

    @activity.defn(name=ActivityName.ENRICH)
    async def enrich(self, request: stages_pb2.EnrichInput) -> stages_pb2.EnrichOutput:
        self.calls.append(f"enrich:{activity.info().task_queue}")
        self.enrich_inputs.append(request)
        if self.fail_enrich:
            raise ApplicationError("model file missing", type="ConfigurationError", non_retryable=True)
        out = await self._output(request.asset.asset_id, "transcript_vtt", "ai_enrich")
        return stages_pb2.EnrichOutput(
            outputs=[out],
            transcript=stages_pb2.TranscriptSummary(language="en", text_excerpt="welcome to the archive"),
            labels=[stages_pb2.DetectedLabel(label="bicycle", max_confidence=0.9, count=1)],
            attempt=activity.info().attempt,
        )

    @activity.defn(name=ActivityName.DELIVER)
    async def deliver(self, request: stages_pb2.DeliverInput) -> stages_pb2.DeliveryReceipt:
        self.calls.append(f"deliver:{activity.info().task_queue}")
        return stages_pb2.DeliveryReceipt(
            target=request.target, target_type="local", role=request.output.role, location="/dev/null",
            size_bytes=request.output.size_bytes, sha256=request.output.sha256, attempts=activity.info().attempt, ok=True,
            idempotency_key=request.idempotency_key, source_uri=request.output.uri,
        )

    @activity.defn(name=ActivityName.DELIVER_BATCH)
    async def deliver_batch(self, request: stages_pb2.DeliverBatchInput) -> stages_pb2.DeliverBatchOutput:
        self.calls.append(f"deliver_batch:{activity.info().task_queue}")
        return stages_pb2.DeliverBatchOutput(receipts=[await self.deliver(job) for job in request.deliveries])

    def all(self) -> dict[str, object]:
        return {"transcode": self.transcode, "enrich": self.enrich, "deliver": self.deliver,
                "deliver_batch": self.deliver_batch}


@asynccontextmanager
async def lane_workers(
    client: Client, ctx: StageContext, stand_ins: StandIns, enrich: list[Any] | None = None
) -> AsyncIterator[str]:
    """Pipeline + real ingest and catalog (dedup claims) + stand-in workers (or the given enrich
    activities) on a fresh lane; yields its pipeline queue."""
    lane = f"-{uuid.uuid4().hex[:8]}"
    async with AsyncExitStack() as stack:
        for queue, kwargs in (
            (Queue.PIPELINE, {"workflows": [AssetPipeline]}),
            (Queue.INGEST, {"activities": ingest_activities(ctx) + catalog_activities.build_activities(ctx)}),
            (Queue.TRANSCODE, {"activities": [stand_ins.transcode]}),
            (Queue.TRANSCODE_LIGHT, {"activities": [stand_ins.transcode]}),  # images (policies.transcode_queue)
            (Queue.AI_ENRICH, {"activities": enrich or [stand_ins.enrich]}),
            (Queue.DISTRIBUTION, {"activities": [stand_ins.deliver_batch]}),
        ):
            await stack.enter_async_context(Worker(client, task_queue=queue + lane, **kwargs))
        yield Queue.PIPELINE + lane


@pytest.fixture
async def fleet(temporal_env, tmp_path: Path) -> AsyncIterator[tuple[Client, str, Settings, StandIns]]:
    client: Client = temporal_env.client
    settings = make_settings(tmp_path)
    ctx = StageContext(settings)
    stand_ins = StandIns(ctx.storage)
    async with lane_workers(client, ctx, stand_ins) as queue:
        yield client, queue, settings, stand_ins
    await ctx.storage.aclose()


async def _start(client: Client, queue: str, source: Path, **fields) -> object:
    request = pipeline_pb2.PipelineRequest(source_uri=source.as_uri(), **fields)
    return await client.start_workflow(
        AssetPipeline.run, request, id=f"test-{uuid.uuid4().hex}", task_queue=queue,
        result_type=pipeline_pb2.PipelineResult,
    )


async def test_video_runs_all_four_stages_on_their_queues(fleet, media_dir: Path) -> None:
    client, queue, settings, stand_ins = fleet
    lane = queue.removeprefix(Queue.PIPELINE)
    source = media_dir / "harbour-clip.mp4"
    handle = await _start(
        client, queue, source, expected_sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
        metadata=common_pb2.AssetMetadata(title="Harbour", collection="news", tenant="acme"),
    )
    result: pipeline_pb2.PipelineResult = await handle.result()

    assert result.state == common_pb2.COMPLETED, result.error
    assert [result.stages[s].status for s in ("ingest", "transcode", "ai_enrich", "distribution")] == [
        common_pb2.STAGE_STATUS_COMPLETED
    ] * 4
    assert all(result.stages[s].seconds >= 0 for s in result.stages)
    assert sorted(stand_ins.calls) == sorted([
        f"transcode:{Queue.TRANSCODE}{lane}", f"enrich:{Queue.AI_ENRICH}{lane}",
        # Both outputs go to the one target in one activity, each with its own receipt.
        f"deliver_batch:{Queue.DISTRIBUTION}{lane}",
        f"deliver:{Queue.DISTRIBUTION}{lane}", f"deliver:{Queue.DISTRIBUTION}{lane}",
    ])
    roles = [o.role for o in result.outputs]
    assert roles == ["original", "technical_metadata", "thumbnail", "transcript_vtt"]
    assert all(o.size_bytes > 0 and len(o.sha256) == 64 for o in result.outputs)
    # Each output is stored once, in result.outputs, naming the stage that made it.
    assert not any(result.stages[s].outputs for s in result.stages)
    assert {s: [o.role for o in stage_outputs(result, s)] for s in STAGE_NAMES} == {
        "ingest": ["original", "technical_metadata"], "transcode": ["thumbnail"],
        "ai_enrich": ["transcript_vtt"], "distribution": []}
    assert {r.role for r in result.receipts} == {"thumbnail", "transcript_vtt"}
    assert result.asset.media.kind == common_pb2.MEDIA_KIND_VIDEO
    assert result.transcript.text_excerpt == "welcome to the archive"
    # The workflow decides once: the profile's renditions for this kind, and the enrichments
    # that apply to it (damfleet.ai.plan), travel in the stage inputs.
    [transcode_input] = stand_ins.transcode_inputs
    assert list(transcode_input.renditions) == list(get_profile("default").renditions["video"])
    [enrich_input] = stand_ins.enrich_inputs
    assert enrich_input.transcribe and not enrich_input.detect_objects

    status = await handle.query("status", result_type=pipeline_pb2.PipelineResult)
    assert status.state == common_pb2.COMPLETED and status.asset_id == result.asset_id

    # Every stage activity reported its first attempt: the result says so and holds the
    # attempts the history would give, so wait() returns it without reading the history.
    assert result.first_attempts_only
    from_history = stage_attempts((await handle.fetch_history()).events)
    assert {s: result.stages[s].attempts for s in STAGE_NAMES} == {s: from_history[s].attempts for s in STAGE_NAMES}
    assert all(result.stages[s].attempts == 1 and not result.stages[s].last_error for s in STAGE_NAMES)
    waited = await AssetHandle(handle.id, handle).wait()
    assert waited == result

    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.STATE) == "COMPLETED"
    assert attributes.get(sa.MEDIA_KIND) == "video"
    assert attributes.get(sa.COLLECTION) == "news"
    assert attributes.get(sa.LABELS) == ["bicycle"]


async def test_a_run_records_one_patch_marker_and_one_upsert_per_workflow_task(fleet, media_dir: Path) -> None:
    """Every command is a history event and every upsert a visibility write: a run started by
    today's code records one patch marker (the SDK's TemporalChangeVersion upsert with it)
    and sends its search attributes in at most one upsert per workflow task."""
    client, queue, _, _ = fleet
    handle = await _start(client, queue, media_dir / "harbour-clip.mp4",
                          metadata=common_pb2.AssetMetadata(collection="news"))
    result: pipeline_pb2.PipelineResult = await handle.result()
    assert result.state == common_pb2.COMPLETED, result.error

    history = await handle.fetch_history()
    events = history.events
    markers = [e for e in events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    # One marker, the current generation's: the changes folded into it (enrichment beside
    # transcode, issue 11) record none of their own.
    assert [m.marker_recorded_event_attributes.marker_name for m in markers] == ["core_patch"]
    assert CURRENT_PATCH in _markers(history) and ENRICH_BESIDE_TRANSCODE not in _markers(history)
    upserts_per_task: list[int] = []
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            upserts_per_task.append(0)
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
            if "TemporalChangeVersion" not in fields:
                upserts_per_task[-1] += 1
    activities = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]
    scheduling_tasks = {e.activity_task_scheduled_event_attributes.workflow_task_completed_event_id
                        for e in activities}
    # The start schedules ingest, which also claims the content for dedup (no claim activity);
    # the task after it schedules transcode and enrich together; the task after the first of
    # them to end schedules nothing (both may end before it runs: then there is no such task);
    # the task after both schedules the deliveries; the last closes the run.
    assert [e.activity_task_scheduled_event_attributes.activity_type.name for e in activities] == [
        ActivityName.INGEST, ActivityName.TRANSCODE, ActivityName.ENRICH, ActivityName.DELIVER_BATCH]
    assert len(scheduling_tasks) == 3
    assert len(upserts_per_task) in (4, 5), upserts_per_task
    assert all(n <= 1 for n in upserts_per_task), upserts_per_task
    assert sum(upserts_per_task) >= 4
    # Batched, the attributes still read as before: the last value of each wins.
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.STATE) == "COMPLETED"
    assert attributes.get(sa.STAGE) == "distribution"
    assert attributes.get(sa.MEDIA_KIND) == "video"
    assert attributes.get(sa.COLLECTION) == "news"


async def test_image_skips_ai_with_a_reason(fleet, media_dir: Path) -> None:
    client, queue, _, stand_ins = fleet
    result = await (await _start(client, queue, media_dir / "small.png")).result()
    assert result.state == common_pb2.COMPLETED
    ai = result.stages["ai_enrich"]
    assert ai.status == common_pb2.STAGE_STATUS_SKIPPED
    assert "no audio to transcribe" in ai.reason
    assert not any(call.startswith("enrich") for call in stand_ins.calls)


async def test_bad_input_fails_run_at_ingest_and_stores_nothing(fleet, tmp_path: Path) -> None:
    client, queue, settings, stand_ins = fleet
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    handle = await _start(client, queue, empty)
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert "ingest failed: source is empty (0 bytes)" in str(caught.value.cause)
    status = await handle.query("status", result_type=pipeline_pb2.PipelineResult)
    assert status.state == common_pb2.FAILED
    assert status.stages["ingest"].status == common_pb2.STAGE_STATUS_FAILED
    assert stand_ins.calls == []
    storage = Storage.from_settings(settings)
    assert [o async for o in storage.list(storage.keys(status.asset_id).prefix)] == []


async def test_enrichment_failure_completes_with_errors(temporal_env, tmp_path: Path, media_dir: Path) -> None:
    ctx = StageContext(make_settings(tmp_path))
    stand_ins = StandIns(ctx.storage, fail_enrich=True)
    async with lane_workers(temporal_env.client, ctx, stand_ins) as queue:
        result = await (await _start(temporal_env.client, queue, media_dir / "speech.wav")).result()
    await ctx.storage.aclose()
    assert result.state == common_pb2.COMPLETED_WITH_ERRORS
    assert result.stages["ai_enrich"].status == common_pb2.STAGE_STATUS_FAILED
    assert result.failures == ["ai_enrich: model file missing"]
    assert result.stages["distribution"].status == common_pb2.STAGE_STATUS_COMPLETED
    # A stage activity failed: readers must take its attempts and error from the history.
    assert not result.first_attempts_only


async def test_a_transcript_that_drops_speech_completes_with_errors(
    temporal_env, tmp_path: Path, media_dir: Path
) -> None:
    """The real enrich activity with a first pass that stops after 3 tokens and no re-decode: the
    AI stage fails with the coverage reason, nothing of it is listed or stored, the rest is delivered."""
    settings = make_settings(
        tmp_path, DAMFLEET_AI_WHISPER_BEAM_SIZE="1", DAMFLEET_AI_WHISPER_MAX_NEW_TOKENS="3",
        DAMFLEET_AI_WHISPER_REDECODE_GAP_SECONDS="0", DAMFLEET_AI_WHISPER_CPU_THREADS="2",
    )
    ctx = StageContext(settings)
    stand_ins = StandIns(ctx.storage)
    async with lane_workers(temporal_env.client, ctx, stand_ins, enrich_activities(ctx)) as queue:
        result = await (await _start(temporal_env.client, queue, media_dir / "speech.wav")).result()
    assert result.state == common_pb2.COMPLETED_WITH_ERRORS
    ai = result.stages["ai_enrich"]
    assert ai.status == common_pb2.STAGE_STATUS_FAILED and not ai.outputs
    assert len(result.failures) == 1 and result.failures[0].startswith("ai_enrich: transcript of speech.wav covers")
    assert "DAMFLEET_AI_WHISPER_MIN_COVERAGE" in result.failures[0]
    assert all(o.stage != "ai_enrich" for o in result.outputs)
    stored = [o.uri async for o in ctx.storage.list(ctx.storage.keys(result.asset_id).prefix)]
    assert stored and not [uri for uri in stored if "/enrichment/" in uri]
    assert result.stages["distribution"].status == common_pb2.STAGE_STATUS_COMPLETED
    await ctx.storage.aclose()


async def test_unknown_profile_fails_with_known_names(fleet, media_dir: Path) -> None:
    client, queue, _, _ = fleet
    handle = await _start(client, queue, media_dir / "small.png", profile="no-such-profile")
    with pytest.raises(WorkflowFailureError) as caught:
        await handle.result()
    assert "unknown profile 'no-such-profile'" in str(caught.value.cause)
    assert "default" in str(caught.value.cause)


# ---- images beside video encodes (the transcode stage's light pool) -------------------------


def _transcode_events(history: Any) -> tuple[str, Any, Any]:
    """The transcode activity's task queue and its started / closed events, from a run's history."""
    scheduled_id, queue, started, closed = 0, "", None, None
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == ActivityName.TRANSCODE:
                scheduled_id, queue = event.event_id, attrs.task_queue.name
        elif not scheduled_id:
            continue
        elif event.activity_task_started_event_attributes.scheduled_event_id == scheduled_id:
            started = event
        elif event.activity_task_completed_event_attributes.scheduled_event_id == scheduled_id:
            closed = event
    return queue, started, closed


def _markers(history: Any) -> str:
    """The decoded details of a run's markers (``workflow.patched`` records its patch id there)."""
    return " ".join(
        payload.data.decode(errors="replace")
        for event in history.events if event.HasField("marker_recorded_event_attributes")
        for payloads in event.marker_recorded_event_attributes.details.values()
        for payload in payloads.payloads
    )


def _media_kind(uri: str) -> int:
    return common_pb2.MEDIA_KIND_VIDEO if uri.endswith(".mov") else common_pb2.MEDIA_KIND_IMAGE


async def _transcode_pending(client: Client, workflow_id: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    return any(a.activity_type.name == ActivityName.TRANSCODE for a in description.raw_description.pending_activities)


async def test_an_image_transcodes_while_a_video_encode_holds_the_transcode_slot(
    temporal_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One transcode slot (as per pod) busy with a video encode that only ends once the image
    submitted after it has finished its whole run: the image went to q-transcode-light and
    was not queued behind the video (with one queue this run could never finish)."""
    from temporalio.worker import Replayer

    from damfleet import policies
    from tests.jobs_support import eventually, run_fleet

    client: Client = temporal_env.client
    options = {"kind_of": _media_kind, "hold_when": lambda uri: uri.endswith(".mov")}
    async with run_fleet(client, tmp_path, transcode_slots=1, stand_ins_options=options) as fleet:
        video = await fleet.fleet.submit("/inbox/clip.mov", dedup=False)
        await eventually(lambda: fleet.stand_ins.transcode_started)  # the encode holds the slot
        image = await fleet.fleet.submit("/inbox/photo.jpg", dedup=False)
        assert (await image.wait()).state == common_pb2.COMPLETED
        assert [uri.rsplit("/", 1)[-1] for uri in fleet.stand_ins.transcode_started] == ["clip.mov", "photo.jpg"]
        fleet.stand_ins.gate.set()
        assert (await video.wait()).state == common_pb2.COMPLETED

        video_queue, video_started, video_closed = _transcode_events(
            await client.get_workflow_handle(video.workflow_id).fetch_history())
        image_queue, image_started, image_closed = _transcode_events(
            await client.get_workflow_handle(image.workflow_id).fetch_history())
        assert (video_queue, image_queue) == (Queue.TRANSCODE + fleet.lane, Queue.TRANSCODE_LIGHT + fleet.lane)
        # The image's transcode started and finished inside the video's.
        assert video_started.event_time.ToDatetime() <= image_started.event_time.ToDatetime()
        assert image_closed.event_time.ToDatetime() <= video_closed.event_time.ToDatetime()
        assert (await image.status()).stages["transcode"].status == common_pb2.STAGE_STATUS_COMPLETED

        # A patch folded into today's generation (first-generation runs recorded it themselves,
        # tests/workflows/test_replay.py), and turning the setting off or on never strands a
        # run: replay does not compare an activity's task queue.
        image_history = await client.get_workflow_handle(image.workflow_id).fetch_history()
        video_history = await client.get_workflow_handle(video.workflow_id).fetch_history()
        for history in (image_history, video_history):
            assert "transcode-light-queue" not in _markers(history) and CURRENT_PATCH in _markers(history)
        for light in (False, True):
            monkeypatch.setattr(policies, "TRANSCODE_LIGHT_QUEUE", light)
            for history in (image_history, video_history):
                await Replayer(workflows=[AssetPipeline]).replay_workflow(history)


async def test_with_the_light_queue_off_images_wait_behind_the_video(
    temporal_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DAMFLEET_TRANSCODE_LIGHT_QUEUE=false: the image goes to q-transcode as before and starts
    only after the video's encode gives the one slot back (the case the light pool removes)."""
    from damfleet import policies
    from tests.jobs_support import eventually, run_fleet

    monkeypatch.setattr(policies, "TRANSCODE_LIGHT_QUEUE", False)
    client: Client = temporal_env.client
    options = {"kind_of": _media_kind, "hold_when": lambda uri: uri.endswith(".mov")}
    async with run_fleet(client, tmp_path, transcode_slots=1, stand_ins_options=options) as fleet:
        video = await fleet.fleet.submit("/inbox/clip.mov", dedup=False)
        await eventually(lambda: fleet.stand_ins.transcode_started)
        image = await fleet.fleet.submit("/inbox/photo.jpg", dedup=False)
        await eventually(lambda: _transcode_pending(client, image.workflow_id))
        fleet.stand_ins.gate.set()
        assert (await video.wait()).state == (await image.wait()).state == common_pb2.COMPLETED

        _, _, video_closed = _transcode_events(await client.get_workflow_handle(video.workflow_id).fetch_history())
        image_queue, image_started, _ = _transcode_events(
            await client.get_workflow_handle(image.workflow_id).fetch_history())
        assert image_queue == Queue.TRANSCODE + fleet.lane
        assert image_started.event_time.ToDatetime() >= video_closed.event_time.ToDatetime()
