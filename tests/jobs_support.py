"""Shared helpers for the job-control tests (issue 6): stand-in stage activities and a fleet.

The stand-ins are registered under the real activity names, so the real workflows
(AssetPipeline, BatchIngest, RescanInbox) and the real catalog activities (manifests,
listings, dedup) run unchanged on a real dev server; only the media work is replaced.
The transcode stand-in can hold its slot (a gate), or run a real ``ffmpeg`` subprocess
that it kills when the activity is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities import catalog as catalog_activities
from activities.common import StageContext
from activities.ingest import build_activities as ingest_activities
from damfleet import catalog
from damfleet.client import FleetClient
from damfleet.policies import ActivityName, Queue
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, stages_pb2
from tests.conftest import make_settings
from workflows import ALL_WORKFLOWS


@dataclass
class StandIns:
    """Stand-in stage activities that record what ran, in order."""

    storage: Storage
    #: sources whose (stand-in) ingest fails non-retryably
    fail_when: Callable[[str], bool] = lambda uri: uri.rsplit("/", 1)[-1].startswith("fail")
    #: sources whose deliveries fail (the run ends COMPLETED_WITH_ERRORS)
    deliver_fails_when: Callable[[str], bool] = lambda text: text.startswith("cwe")
    #: transcodes of sources matching this wait for ``gate`` (heartbeating)
    hold_when: Callable[[str], bool] = lambda uri: False
    #: the media kind the stand-in ingest reports for a source (images unless told)
    kind_of: Callable[[str], int] = lambda uri: common_pb2.MEDIA_KIND_IMAGE
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    #: sources the stand-in ingest reports as having audio (so the default profile transcribes them)
    audio_when: Callable[[str], bool] = lambda uri: False
    #: enrichments of sources matching this wait for ``enrich_gate`` (heartbeating)
    enrich_hold_when: Callable[[str], bool] = lambda uri: False
    enrich_gate: asyncio.Event = field(default_factory=asyncio.Event)
    #: transcodes of sources matching this fail non-retryably (after any hold)
    transcode_fails_when: Callable[[str], bool] = lambda uri: False
    #: transcode attempts that fail retryably before one succeeds (a retried activity)
    transcode_transient_failures: int = 0
    #: the stand-in ingest claims the content when asked (IngestInput.claim_content), as the real
    #: one does; False plays an ingest worker older than that field (the run claims separately)
    claims_content: bool = True
    #: run a real ffmpeg subprocess for this long (0: none) and kill it on cancel
    ffmpeg_seconds: float = 0.0
    ffmpeg_marker: str = field(default_factory=lambda: f"damfleet-test-{uuid.uuid4().hex[:10]}")
    transcode_started: list[str] = field(default_factory=list)
    transcode_cancelled: list[str] = field(default_factory=list)
    enrich_started: list[str] = field(default_factory=list)
    enrich_cancelled: list[str] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    ffmpeg_pids: list[int] = field(default_factory=list)

    @activity.defn(name=ActivityName.INGEST)
    async def ingest(self, request: stages_pb2.IngestInput) -> stages_pb2.IngestOutput:
        """Fast stand-in ingest: no bytes read; the checksum is the expected one or derived from the URI."""
        if self.fail_when(request.source_uri):
            raise ApplicationError(f"corrupt media: {request.source_uri}", type="CorruptMedia", non_retryable=True)
        sha = request.expected_sha256 or hashlib.sha256(request.source_uri.encode()).hexdigest()
        keys = self.storage.keys(request.asset_id)
        asset = common_pb2.AssetRecord(
            asset_id=request.asset_id, source_uri=request.source_uri, original_uri=keys.original("original.bin"),
            sha256=sha, size_bytes=1, metadata=request.metadata, profile=request.profile,
            media=common_pb2.MediaInfo(kind=self.kind_of(request.source_uri), mime_type="image/png",
                                       has_audio=self.audio_when(request.source_uri)),
        )
        output = stages_pb2.IngestOutput(asset=asset)
        if request.claim_content and self.claims_content:
            await catalog.claim_while_ingesting(output, activity.info().workflow_id, storage=self.storage)
        return output

    @activity.defn(name=ActivityName.TRANSCODE)
    async def transcode(self, request: stages_pb2.TranscodeInput) -> stages_pb2.TranscodeOutput:
        uri = request.asset.source_uri
        self.transcode_started.append(uri)
        if activity.info().attempt <= self.transcode_transient_failures:
            raise ApplicationError(f"stand-in transcode attempt {activity.info().attempt} failed", type="Transient")
        try:
            if self.hold_when(uri):
                # The real transcode's heartbeat message (damfleet.transcode.stage).
                await _hold(self.gate, stages_pb2.TranscodeHeartbeat(percent=40.0, current="proxy",
                                                                     rendition_percent=80.0))
            if self.transcode_fails_when(uri):
                raise ApplicationError("stand-in encoder crashed", type="TranscodeFailed", non_retryable=True)
            if self.ffmpeg_seconds:
                await self._run_ffmpeg()
        except asyncio.CancelledError:
            self.transcode_cancelled.append(uri)
            raise
        keys = self.storage.keys(request.asset.asset_id)
        output = common_pb2.Output(uri=keys.rendition("proxy", "mp4"), size_bytes=1, sha256="0" * 64,
                                   role="proxy", stage="transcode")
        return stages_pb2.TranscodeOutput(outputs=[output], renditions=["proxy"], hw_accel="software")

    async def _run_ffmpeg(self) -> None:
        """A real ffmpeg encoding a test pattern in real time (-re), killed if cancelled."""
        proc = await asyncio.create_subprocess_exec(
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc=size=64x64:rate=5:duration={self.ffmpeg_seconds}",
            "-metadata", f"title={self.ffmpeg_marker}", "-f", "null", "-",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, start_new_session=True,
        )
        self.ffmpeg_pids.append(proc.pid)
        try:
            while proc.returncode is None:
                activity.heartbeat("encoding")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 0.3)
        except asyncio.CancelledError:
            proc.kill()
            await proc.wait()
            raise

    @activity.defn(name=ActivityName.ENRICH)
    async def enrich(self, request: stages_pb2.EnrichInput) -> stages_pb2.EnrichOutput:
        """Skips, unless the asset has audio: then a (tiny, unwritten) transcript output."""
        uri = request.asset.source_uri
        self.enrich_started.append(uri)
        try:
            if self.enrich_hold_when(uri):
                # The real enrichment's heartbeat record (damfleet.ai.enrich).
                await _hold(self.enrich_gate, {"phase": "transcribing", "transcribed_seconds": 3.0,
                                               "total_seconds": 10.0})
        except asyncio.CancelledError:
            self.enrich_cancelled.append(uri)
            raise
        if not request.asset.media.has_audio:
            return stages_pb2.EnrichOutput(skipped_reason="stand-in")
        keys = self.storage.keys(request.asset.asset_id)
        output = common_pb2.Output(uri=keys.rendition("transcript", "vtt"), size_bytes=1, sha256="1" * 64,
                                   role="transcript_vtt", stage="ai_enrich")
        return stages_pb2.EnrichOutput(outputs=[output])

    @activity.defn(name=ActivityName.DELIVER_BATCH)
    async def deliver_batch(self, request: stages_pb2.DeliverBatchInput) -> stages_pb2.DeliverBatchOutput:
        """Like the real batch activity: a permanent failure becomes that output's failed receipt."""
        receipts = []
        for job in request.deliveries:
            try:
                receipts.append(await self.deliver(job))
            except ApplicationError as err:
                receipts.append(stages_pb2.DeliveryReceipt(
                    target=job.target, role=job.output.role, ok=False, error=err.message,
                    idempotency_key=job.idempotency_key, source_uri=job.output.uri,
                ))
        return stages_pb2.DeliverBatchOutput(receipts=receipts)

    @activity.defn(name=ActivityName.DELIVER)
    async def deliver(self, request: stages_pb2.DeliverInput) -> stages_pb2.DeliveryReceipt:
        if self.deliver_fails_when(request.metadata.title):
            raise ApplicationError("target refused: 403", type="TargetRejected", non_retryable=True)
        self.delivered.append(request.asset_id)
        return stages_pb2.DeliveryReceipt(
            target=request.target, target_type="local", role=request.output.role, location="/dev/null",
            ok=True, attempts=1, idempotency_key=request.idempotency_key, source_uri=request.output.uri,
        )


async def _hold(gate: asyncio.Event, details: Any) -> None:
    """Wait for ``gate``, heartbeating ``details`` (so a cancellation reaches the activity)."""
    while not gate.is_set():
        activity.heartbeat(details)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(gate.wait(), 0.3)


@dataclass
class Fleet:
    client: Client
    fleet: FleetClient
    settings: Settings
    lane: str
    stand_ins: StandIns
    storage: Storage

    @property
    def pipeline_queue(self) -> str:
        return Queue.PIPELINE + self.lane


@asynccontextmanager
async def run_fleet(
    client: Client,
    root: Path,
    *,
    real_ingest: bool = False,
    transcode_slots: int = 4,
    stand_ins_options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Fleet]:
    """Workers for every queue of a fresh lane: real workflows and catalog activities, stand-in stages."""
    lane = f"-{uuid.uuid4().hex[:8]}"
    settings = make_settings(
        root,
        DAMFLEET_WORKER_QUEUE_SUFFIX=lane,
        DAMFLEET_TEMPORAL_ADDRESS=client.service_client.config.target_host,
        DAMFLEET_TEMPORAL_NAMESPACE=client.namespace,
        **(env or {}),
    )
    ctx = StageContext(settings)
    stand_ins = StandIns(ctx.storage, **(stand_ins_options or {}))
    ingest = ingest_activities(ctx) if real_ingest else [stand_ins.ingest, *_discards(ctx)]
    fast_cancel = {"max_heartbeat_throttle_interval": timedelta(milliseconds=500),
                   "default_heartbeat_throttle_interval": timedelta(milliseconds=500)}
    async with AsyncExitStack() as stack:
        for queue, kwargs in (
            (Queue.PIPELINE, {"workflows": ALL_WORKFLOWS, "max_concurrent_workflow_tasks": 100}),
            (Queue.INGEST, {"activities": ingest + catalog_activities.build_activities(ctx)}),
            (Queue.TRANSCODE, {"activities": [stand_ins.transcode], "max_concurrent_activities": transcode_slots,
                               **fast_cancel}),
            (Queue.TRANSCODE_LIGHT, {"activities": [stand_ins.transcode], "max_concurrent_activities": transcode_slots,
                                     **fast_cancel}),
            (Queue.AI_ENRICH, {"activities": [stand_ins.enrich], **fast_cancel}),
            (Queue.DISTRIBUTION, {"activities": [stand_ins.deliver, stand_ins.deliver_batch]}),
        ):
            await stack.enter_async_context(Worker(client, task_queue=queue + lane, **kwargs))
        try:
            # Stand-in ingests read nothing, so their sources may be fictional paths ("/inbox/a.mov"): the
            # client leaves the roots to the workers and skips its local-file check (tested in
            # tests/damfleet/test_validation.py). The real catalog activities still check manifests.
            client_settings = settings if real_ingest else settings.model_copy(
                update={"ingest": settings.ingest.model_copy(update={"source_roots": ()})})
            fleet_client = FleetClient(client, client_settings, check_local_sources=real_ingest)
            yield Fleet(client, fleet_client, settings, lane, stand_ins, ctx.storage)
        finally:
            stand_ins.gate.set()
            stand_ins.enrich_gate.set()
            await terminate_lane(client, Queue.PIPELINE + lane)
    await ctx.storage.aclose()


def _discards(ctx: StageContext) -> list[Callable[..., Any]]:
    """The real discard activities (ingest's: cancelled and failed runs), for fleets with a stand-in ingest."""
    return [a for a in ingest_activities(ctx) if getattr(a, "__name__", "").startswith("discard_")]


async def terminate_lane(client: Client, queue: str) -> None:
    """Terminate whatever a test left running on its lane, so nothing outlives the test."""
    async for execution in client.list_workflows(f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"):
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(execution.id).terminate("test finished")


def time_scale() -> float:
    """How much longer than on a quiet machine a test should wait right now (at least 1).

    The 1-minute load average per core says how busy the machine is (2.0: every core has a
    second job wanting it); ``DAMFLEET_TEST_TIME_SCALE`` sets a floor for a machine known to be
    slow. Deadlines in tests are quiet-machine figures multiplied by this.
    """
    floor = float(os.environ.get("DAMFLEET_TEST_TIME_SCALE") or 1.0)
    busy = os.getloadavg()[0] / (os.cpu_count() or 1)
    return max(1.0, floor, busy)


#: RPC outcomes that mean "the server or a worker is slow", not "the answer is no".
_SLOW_RPC = (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.UNAVAILABLE, RPCStatusCode.RESOURCE_EXHAUSTED)


async def eventually(check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll an async (or sync) check until it returns a truthy value; fail after ``timeout``.

    ``timeout`` is for a quiet machine: it is stretched by :func:`time_scale` (re-read while
    waiting, so load that arrives mid-test counts), and a check whose RPC times out on a busy
    server counts as "not yet" rather than failing the test.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    last: Any = None
    while True:
        try:
            last = check()
            if asyncio.iscoroutine(last):
                last = await last
        except RPCError as err:
            if err.status not in _SLOW_RPC:
                raise
            last = f"RPC {err.status.name}: {err.message}"
        else:
            if last:
                return last
        waited, allowed = loop.time() - started, timeout * time_scale()
        if waited > allowed:
            raise AssertionError(f"condition not met within {waited:.0f}s (allowed {allowed:.0f}s; last value {last!r})")
        await asyncio.sleep(interval)


async def is_closed(client: Client, workflow_id: str) -> bool:
    return (await client.get_workflow_handle(workflow_id).describe()).status != WorkflowExecutionStatus.RUNNING


def write_manifest(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    """A CSV manifest with a header row."""
    import csv

    columns = columns or list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


REPO = Path(__file__).resolve().parent.parent


async def run_cli(fleet: Fleet, root: Path, *args: str, columns: int = 200) -> tuple[int, str, str]:
    """Run ``python -m damfleet.cli ARGS`` against the fleet's dev server and lane.

    Returns (exit code, stdout, stderr), as a script calling the CLI would see them.
    """
    return await run_damfleet({
        "DAMFLEET_TEMPORAL_ADDRESS": fleet.client.service_client.config.target_host,
        "DAMFLEET_STATE_DIR": str(root / "state"),
        "DAMFLEET_STORAGE_ROOT": (root / "storage").as_uri(),
        "DAMFLEET_WORKER_QUEUE_SUFFIX": fleet.lane,
        "COLUMNS": str(columns),
    }, *args)


async def run_damfleet(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    """Run ``python -m damfleet.cli ARGS`` with ``env`` over this process's environment."""
    import os
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "damfleet.cli", *args, cwd=REPO, env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode or 0, out.decode(), err.decode()
