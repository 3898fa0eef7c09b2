"""Python client SDK for upstream services: submit assets and batches, follow and control them.

Everything is async and typed with the protobuf contracts of ``proto/damfleet/v1``::

    fleet = await FleetClient.connect()                   # settings from DAMFLEET_* variables
    handle = await fleet.submit("s3://uploads/clip.mov", title="Harbour", collection="news")
    print((await handle.status()).current_stage)
    result = await handle.wait()                          # PipelineResult, whatever the outcome
    assert result.state == common_pb2.COMPLETED

    batch = await fleet.batch(manifest="s3://inbox/2024-06.csv", collection="news")
    progress = await fleet.batch_progress(batch.workflow_id)   # total, completed, failed, percent...

Control operations (``pause``, ``resume``, ``cancel``) on an unknown id raise
:class:`JobNotFoundError`; on a run that has already finished they raise
:class:`JobControlError` with a message saying so. Both are ``DamfleetClientError``.

Duplicate submissions: with ``dedup`` on (the default, ``DAMFLEET_JOBS_DEDUP``), the
workflow id is derived from the request (the content checksum when given, else the
source URI) within its collection and profile, so submitting the same thing twice returns
the existing run instead of starting another; the pipeline itself also links content
already ingested in the collection to the existing asset.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from damfleet.policies import ALL_QUEUES, Queue, WorkflowName
from damfleet.retries import apply_attempts, stage_attempts
from damfleet.settings import Settings, get_settings
from damfleet.sources import check_before_submit
from damfleet.storage import normalize_uri
from damfleet.temporal import connect
from damfleet.v1 import common_pb2, jobs_pb2, pipeline_pb2
from damfleet.validation import (
    check_local_manifest,
    check_local_prefix,
    check_local_source,
    dedup_enabled,
    validate_batch_request,
    validate_pipeline_request,
)

__all__ = [
    "AssetHandle",
    "BatchHandle",
    "DamfleetClientError",
    "FleetClient",
    "JobControlError",
    "JobNotFoundError",
    "QueueInfo",
    "ScheduleInfo",
    "batch_workflow_id",
    "new_workflow_id",
    "request_workflow_id",
]

_FINISHED_STATUSES = {
    WorkflowExecutionStatus.COMPLETED: "COMPLETED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.CANCELED: "CANCELLED",
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
}


class DamfleetClientError(Exception):
    """A control request could not be carried out; the message says why."""


class JobNotFoundError(DamfleetClientError, LookupError):
    """No workflow with this id exists in the namespace."""


class JobControlError(DamfleetClientError):
    """The run exists but cannot do what was asked (for example, it already finished)."""


def new_workflow_id(prefix: str = "asset") -> str:
    """A random workflow id: every submission starts its own run."""
    return f"{prefix}-{uuid.uuid4().hex}"


def request_workflow_id(request: pipeline_pb2.PipelineRequest, source_version: str = "") -> str:
    """A workflow id derived from what is submitted, so a duplicate submission maps to the same run.

    The expected checksum, when given, identifies the content (the same bytes under two
    URIs are one asset); otherwise the source URI and its ``source_version`` (size and
    modification time) do, so a file overwritten in place is new work, never the earlier
    run's result. Collection, profile and targets are part of the key: the same file in
    another collection, with another profile or for other targets, is new work.
    """
    if request.expected_sha256:
        what = f"sha256:{request.expected_sha256}"
    else:
        what = f"uri:{request.source_uri}" + (f"@{source_version}" if source_version else "")
    key = "\n".join((request.metadata.collection, request.profile or "default", what, ",".join(request.targets)))
    return f"asset-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def batch_workflow_id(request: jobs_pb2.BatchRequest) -> str:
    """A batch id derived from its source, so submitting the same manifest twice is one batch."""
    if request.rows:
        return new_workflow_id("batch")
    source = request.manifest_uri or request.source_prefix
    key = "\n".join((request.metadata.collection, request.profile or "default", source))
    return f"batch-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class QueueInfo:
    """Backlog and pollers of one task queue (from the server's task-queue description)."""

    name: str
    kind: str                      # "workflow" or "activity"
    backlog: int
    backlog_age_seconds: float
    pollers: int
    tasks_add_rate: float
    tasks_dispatch_rate: float


@dataclass(frozen=True)
class ScheduleInfo:
    schedule_id: str
    paused: bool
    note: str
    next_action_times: list[str]
    recent_actions: int


@dataclass
class AssetHandle:
    """A submitted asset pipeline run."""

    workflow_id: str
    handle: WorkflowHandle[Any, pipeline_pb2.PipelineResult]
    #: True when the id named a finished run that was returned instead of run again (a
    #: running duplicate is joined: the handle then names that run, see ``run_id``).
    existing: bool = False

    @property
    def run_id(self) -> str | None:
        """The run this handle follows (the existing one for a joined duplicate)."""
        return self.handle.first_execution_run_id or self.handle.run_id

    async def status(self) -> pipeline_pb2.PipelineResult:
        """Job state, current stage and per-stage timing/results (while running and after),
        with each stage's attempts and, while it retries, what it is waiting out."""
        result = await _query(self.handle, "status", pipeline_pb2.PipelineResult)
        return await _with_attempts(self.handle, result)

    async def wait(self) -> pipeline_pb2.PipelineResult:
        """Wait for the run to end and return its final result, whatever the outcome.

        A FAILED or CANCELLED run returns its final status (``state``, ``error``,
        ``failures``) instead of raising, so callers branch on ``result.state``.
        """
        try:
            result = await self.handle.result()
        except WorkflowFailureError:
            return await self.status()
        return await _with_attempts(self.handle, result)


@dataclass
class BatchHandle:
    """A submitted BatchIngest run."""

    workflow_id: str
    handle: WorkflowHandle[Any, jobs_pb2.BatchProgress]
    existing: bool = False

    async def progress(self) -> jobs_pb2.BatchProgress:
        """Counts so far: total, completed, completed with errors, failed, running, percent."""
        return await _query(self.handle, "progress", jobs_pb2.BatchProgress)

    async def wait(self) -> jobs_pb2.BatchProgress:
        """Wait for the whole batch (across continue-as-new) and return its final progress."""
        try:
            return await self.handle.result()
        except WorkflowFailureError:
            return await self.progress()


class FleetClient:
    """Typed access to the fleet's workflows: submit, follow, control, batches, schedules."""

    def __init__(self, client: Client, settings: Settings | None = None, *, check_local_sources: bool = True) -> None:
        """``check_local_sources=False`` skips the existence check of ``file://`` sources,
        for a client whose workers see a filesystem it does not (a shared volume mounted
        only on the worker hosts); the ingest activity still reports a missing file."""
        self.client = client
        self.settings = settings or get_settings()
        self.check_local_sources = check_local_sources

    @classmethod
    async def connect(cls, settings: Settings | None = None, *, check_local_sources: bool = True) -> FleetClient:
        """Connect to the Temporal frontend named by the settings (address, namespace, TLS)."""
        settings = settings or get_settings()
        return cls(await connect(settings), settings, check_local_sources=check_local_sources)

    @property
    def pipeline_queue(self) -> str:
        """The workflow task queue of this client's lane (``DAMFLEET_WORKER_QUEUE_SUFFIX``)."""
        return Queue.PIPELINE + self.settings.worker.queue_suffix

    # ---- single assets ----------------------------------------------------------------

    async def submit(
        self,
        source: str,
        *,
        profile: str = "",
        expected_sha256: str = "",
        title: str = "",
        collection: str = "",
        tenant: str = "",
        extra: dict[str, str] | None = None,
        priority: int = 0,
        targets: list[str] | None = None,
        skip_ai: bool = False,
        dedup: bool | None = None,
        workflow_id: str | None = None,
        task_queue: str | None = None,
    ) -> AssetHandle:
        """Start an AssetPipeline for one source URI (or local path).

        The request is checked first (:mod:`damfleet.validation`): a missing or unreadable
        local file, an unknown profile or a priority outside 1-5 raise ``BadInputError``
        and no run is started.

        Args:
            priority: 1 (highest) .. 5 (lowest); 0 is the server default (3). Interactive
                uploads use the default or 1-2; batches run at 4 so uploads overtake them.
            dedup: link content already ingested in the collection, and map a duplicate
                submission to the existing run; ``None`` takes ``DAMFLEET_JOBS_DEDUP``.
            workflow_id: explicit id; by default derived from the request (dedup) or random.
        """
        request = pipeline_pb2.PipelineRequest(
            source_uri=normalize_uri(source),
            expected_sha256=expected_sha256.strip().lower(),
            profile=profile,
            metadata=common_pb2.AssetMetadata(title=title, collection=collection, tenant=tenant, extra=extra or {}),
            priority=priority,
            targets=targets or [],
            skip_ai=skip_ai,
            dedup=self.settings.jobs.dedup if dedup is None else dedup,
        )
        return await self.submit_request(request, workflow_id=workflow_id, task_queue=task_queue)

    async def submit_request(
        self,
        request: pipeline_pb2.PipelineRequest,
        *,
        workflow_id: str | None = None,
        task_queue: str | None = None,
    ) -> AssetHandle:
        """Start an AssetPipeline from a full request; duplicates return the existing run.

        Raises ``BadInputError`` (nothing started) for a request the workflow would refuse,
        and for a source outside the configured source roots
        (:func:`damfleet.sources.check_before_submit`).
        """
        validate_pipeline_request(request)
        check_before_submit(request.source_uri, self.settings)
        if self.check_local_sources:
            check_local_source(request.source_uri)
        if workflow_id:
            wid = workflow_id
        elif dedup_enabled(request):
            wid = request_workflow_id(request, await self._source_version(request))
        else:
            wid = new_workflow_id()
        handle, existing = await self._start(
            WorkflowName.ASSET_PIPELINE, request, wid, task_queue, pipeline_pb2.PipelineResult, request.priority,
            summary=_source_name(request.source_uri),
        )
        return AssetHandle(wid, handle, existing)

    def get(self, workflow_id: str) -> AssetHandle:
        """A handle to an existing pipeline run by workflow id (no server call)."""
        handle = self.client.get_workflow_handle(workflow_id, result_type=pipeline_pb2.PipelineResult)
        return AssetHandle(workflow_id, handle)

    async def status(self, workflow_id: str) -> pipeline_pb2.PipelineResult:
        """The pipeline's status query (state, current stage, per-stage timing and errors)
        with the running stage's live progress from its last heartbeat (see
        :mod:`damfleet.progress`): percent, current rendition, attempt, seconds so far."""
        description = await self._describe(workflow_id)
        result = await self.get(workflow_id).status()
        await self._merge_live_progress(result, description)
        if result.state == common_pb2.COMPLETED_WITH_ERRORS:
            await self._merge_redelivery(result)
        return result

    async def _merge_redelivery(self, result: pipeline_pb2.PipelineResult) -> None:
        """A finished run's result cannot change; its redeliveries' record can. Show the run
        as it is now: failed receipts replaced by redelivered ones, COMPLETED once none is left."""
        from damfleet.delivery.redeliver import apply_redelivery, redelivery_workflow_id

        record_id = redelivery_workflow_id(result.workflow_id)
        handle = self.client.get_workflow_handle(record_id, result_type=pipeline_pb2.RedeliverResult)
        try:
            description = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return
            raise
        if description.status != WorkflowExecutionStatus.COMPLETED:
            return
        apply_redelivery(result, await handle.result(follow_runs=False), record_id)

    async def _merge_live_progress(self, result: pipeline_pb2.PipelineResult, description: Any) -> None:
        import time

        from damfleet.progress import STAGE_OF_ACTIVITY, apply_live_progress, progress_from_details

        for pending in description.raw_description.pending_activities:
            stage = STAGE_OF_ACTIVITY.get(pending.activity_type.name)
            if stage is None or result.stages[stage].status != common_pb2.STAGE_STATUS_RUNNING:
                continue
            details = None
            if pending.heartbeat_details.payloads:
                try:
                    decoded = await self.client.data_converter.decode(pending.heartbeat_details.payloads)
                    details = decoded[0] if decoded else None
                except Exception:  # noqa: BLE001 - progress is a nicety; the status stands without it
                    details = None
            apply_live_progress(result, stage, progress_from_details(details), attempt=pending.attempt, now=time.time())

    async def wait(self, workflow_id: str) -> pipeline_pb2.PipelineResult:
        """Wait for a pipeline run to end; returns the final result (see :meth:`AssetHandle.wait`)."""
        await self._describe(workflow_id)
        return await self.get(workflow_id).wait()

    async def redeliver(
        self, workflow_id: str, *, targets: Sequence[str] = (), task_queue: str | None = None
    ) -> pipeline_pb2.RedeliverResult:
        """Retry the failed deliveries of a finished run, without re-running earlier stages.

        Uses the original idempotency keys, so a delivery that did land is not stored twice.
        Every redelivery of a run has the id ``<run>-redeliver`` and sends only what is still
        failed, so calling this twice re-sends nothing that landed; a redelivery already
        running is joined, not doubled. Returns when the retries end (deliveries keep the
        distribution policy's long backoff).

        Raises JobControlError, before starting anything, for what cannot be redelivered: a
        batch id, a run still running, a run that failed or was cancelled (it delivered nothing).
        """
        from damfleet.delivery.redeliver import redelivery_workflow_id

        description = await self._describe(workflow_id)
        if description.workflow_type != WorkflowName.ASSET_PIPELINE:
            raise JobControlError(
                f"{workflow_id} is a {description.workflow_type} workflow; redeliver takes an asset run's id"
                + (" (see `damfleet status` for the batch's assets)" if description.workflow_type
                   == WorkflowName.BATCH_INGEST else "")
            )
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise JobControlError(f"run {workflow_id} is still running; redeliver after it finishes")
        if description.status != WorkflowExecutionStatus.COMPLETED:
            status = _FINISHED_STATUSES.get(description.status, str(description.status))
            raise JobControlError(
                f"run {workflow_id} ended {status}: it delivered nothing; start it again with `damfleet submit`"
            )
        request = pipeline_pb2.RedeliverRequest(workflow_id=workflow_id, targets=list(targets))
        record_id = redelivery_workflow_id(workflow_id)
        try:
            handle = await self.client.start_workflow(
                WorkflowName.REDELIVER_ASSET, request, id=record_id, task_queue=task_queue or self.pipeline_queue,
                result_type=pipeline_pb2.RedeliverResult,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=f"redeliver {workflow_id}",
            )
            return await handle.result()
        except WorkflowFailureError as err:
            cause = err.cause
            raise JobControlError(f"redelivery of {workflow_id}: {getattr(cause, 'message', None) or cause}") from None

    # ---- control (pipelines and batches alike) ----------------------------------------

    async def pause(self, workflow_id: str) -> str:
        """Pause a run or a batch: the running activity (or assets in flight) finish, nothing new starts."""
        return await self._control(workflow_id, "pause")

    async def resume(self, workflow_id: str) -> str:
        """Resume a paused run or batch."""
        return await self._control(workflow_id, "resume")

    async def cancel(self, workflow_id: str) -> None:
        """Cancel a run (its running activity is stopped and its outputs discarded) or a whole batch."""
        await self._require_running(workflow_id, "cancel")
        await self.client.get_workflow_handle(workflow_id).cancel()

    async def kind(self, workflow_id: str) -> str:
        """The workflow type behind an id (``AssetPipeline``, ``BatchIngest``...)."""
        return (await self._describe(workflow_id)).workflow_type

    # ---- batches ----------------------------------------------------------------------

    async def batch(
        self,
        *,
        manifest: str = "",
        prefix: str = "",
        rows: Sequence[jobs_pb2.ManifestRow] = (),
        profile: str = "",
        collection: str = "",
        tenant: str = "",
        priority: int = 0,
        max_in_flight: int = 0,
        continue_as_new_after: int = 0,
        page_size: int = 0,
        skip_ai: bool = False,
        targets: list[str] | None = None,
        dedup: bool | None = None,
        retry_of: str = "",
        workflow_id: str | None = None,
        task_queue: str | None = None,
    ) -> BatchHandle:
        """Start a BatchIngest over a manifest (CSV/XLSX), a storage prefix, or explicit rows.

        Defaults come from ``DAMFLEET_JOBS_*``: priority 4 (below interactive uploads), a
        window of 50 assets in flight, continue-as-new every 500 assets.
        """
        if sum(bool(x) for x in (manifest, prefix, rows)) != 1:
            raise ValueError("give exactly one of manifest, prefix or rows")
        jobs = self.settings.jobs
        request = jobs_pb2.BatchRequest(
            manifest_uri=normalize_uri(manifest) if manifest else "",
            source_prefix=normalize_uri(prefix) if prefix else "",
            rows=list(rows),
            profile=profile,
            metadata=common_pb2.AssetMetadata(collection=collection, tenant=tenant),
            priority=priority or jobs.batch_priority,
            max_in_flight=max_in_flight or jobs.batch_max_in_flight,
            continue_as_new_after=continue_as_new_after or jobs.batch_continue_as_new_after,
            page_size=page_size or jobs.manifest_page_size,
            skip_ai=skip_ai,
            targets=targets or [],
            dedup=jobs.dedup if dedup is None else dedup,
            retry_of=retry_of,
        )
        if prefix and not request.source_prefix.endswith("/"):
            request.source_prefix += "/"
        validate_batch_request(request)
        if self.check_local_sources and request.manifest_uri:
            check_local_manifest(request.manifest_uri)
        if self.check_local_sources and request.source_prefix:
            check_local_prefix(request.source_prefix)
        wid = workflow_id or batch_workflow_id(request)
        handle, existing = await self._start(
            WorkflowName.BATCH_INGEST, request, wid, task_queue, jobs_pb2.BatchProgress, request.priority,
            summary=f"batch {_source_name(request.manifest_uri or request.source_prefix) or f'of {len(request.rows)} assets'}",
        )
        return BatchHandle(wid, handle, existing)

    def get_batch(self, batch_id: str) -> BatchHandle:
        return BatchHandle(batch_id, self.client.get_workflow_handle(batch_id, result_type=jobs_pb2.BatchProgress))

    async def batch_progress(self, batch_id: str) -> jobs_pb2.BatchProgress:
        """Progress of a batch (running or finished): counts, percent, failed assets, bad rows."""
        await self._describe(batch_id)
        return await self.get_batch(batch_id).progress()

    async def retry_failed(self, batch_id: str, *, workflow_id: str | None = None,
                           task_queue: str | None = None) -> BatchHandle | None:
        """Start a new batch re-running only the failed (and cancelled) assets of ``batch_id``.

        Returns None when the batch has no failed assets. The original batch must have
        finished, so an asset is never running twice.
        """
        description = await self._describe(batch_id)
        if description.status == WorkflowExecutionStatus.RUNNING:
            raise JobControlError(f"batch {batch_id} is still running; retry its failed assets once it finishes")
        progress = await self.get_batch(batch_id).progress()
        if not progress.failed_assets:
            return None
        rows = [
            jobs_pb2.ManifestRow(line=a.line, source_uri=a.source_uri, expected_sha256=a.expected_sha256,
                                 metadata=a.metadata, profile=a.profile)
            for a in progress.failed_assets
        ]
        attempt = 1
        while True:
            wid = workflow_id or f"{batch_id}-retry-{attempt}"
            try:
                await self.client.get_workflow_handle(wid).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    break
                raise
            if workflow_id:
                raise JobControlError(f"workflow id {wid} is already used")
            attempt += 1
        return await self.batch(rows=rows, retry_of=batch_id, workflow_id=wid, task_queue=task_queue, dedup=False)

    # ---- schedules (inbox rescans) ----------------------------------------------------

    async def create_rescan_schedule(
        self,
        schedule_id: str,
        prefix: str,
        *,
        every: timedelta,
        profile: str = "",
        collection: str = "",
        tenant: str = "",
        priority: int = 0,
        settle_seconds: float = 30.0,
        dedup: bool | None = None,
        task_queue: str | None = None,
        paused: bool = False,
    ) -> str:
        """A Temporal Schedule that rescans an inbox prefix every ``every`` and batches new objects."""
        source = normalize_uri(prefix)
        if not source.endswith("/"):
            source += "/"
        jobs = self.settings.jobs
        template = jobs_pb2.BatchRequest(
            profile=profile,
            metadata=common_pb2.AssetMetadata(collection=collection, tenant=tenant),
            priority=priority or jobs.batch_priority,
            max_in_flight=jobs.batch_max_in_flight,
            continue_as_new_after=jobs.batch_continue_as_new_after,
            page_size=jobs.manifest_page_size,
            dedup=jobs.dedup if dedup is None else dedup,
        )
        from damfleet.catalog import ledger_uri_for
        from damfleet.storage import Storage

        ledger = ledger_uri_for(Storage({}, self.settings.storage_root), source)
        request = jobs_pb2.RescanRequest(
            source_prefix=source, batch=template, settle_seconds=settle_seconds, ledger_uri=ledger
        )
        await self.client.create_schedule(
            schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    WorkflowName.RESCAN_INBOX, request, id=f"rescan-{schedule_id}", task_queue=task_queue or self.pipeline_queue,
                ),
                spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
                state=ScheduleState(paused=paused, note=f"rescan {source} every {every}"),
            ),
        )
        return schedule_id

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule in the namespace with its paused flag and next run times."""
        out: list[ScheduleInfo] = []
        async for entry in await self.client.list_schedules():
            info = entry.info
            state = entry.schedule.state if entry.schedule else None
            out.append(
                ScheduleInfo(
                    schedule_id=entry.id,
                    paused=bool(state and state.paused),
                    note=(state.note if state else "") or "",
                    next_action_times=[t.isoformat() for t in (info.next_action_times if info else [])][:3],
                    recent_actions=len(info.recent_actions) if info else 0,
                )
            )
        return out

    async def pause_schedule(self, schedule_id: str, *, unpause: bool = False, note: str = "") -> None:
        """Pause (or unpause) a schedule; runs already started are not affected."""
        handle = self.client.get_schedule_handle(schedule_id)
        try:
            if unpause:
                await handle.unpause(note=note or "unpaused from damfleet")
            else:
                await handle.pause(note=note or "paused from damfleet")
        except RPCError as err:
            raise _schedule_error(schedule_id, err) from err

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; runs already started are not affected."""
        try:
            await self.client.get_schedule_handle(schedule_id).delete()
        except RPCError as err:
            raise _schedule_error(schedule_id, err) from err

    # ---- queues -----------------------------------------------------------------------

    async def queues(self, names: Sequence[str] = ALL_QUEUES) -> list[QueueInfo]:
        """Backlog and pollers of each queue: workflow tasks for q-pipeline, activity tasks for the rest."""
        out: list[QueueInfo] = []
        for base in names:
            name = base + self.settings.worker.queue_suffix
            kinds = [("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)]
            if base != Queue.PIPELINE:
                kinds = [("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)]
            for kind, queue_type in kinds:
                response = await self.client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=self.client.namespace,
                        task_queue=TaskQueue(name=name),
                        task_queue_type=queue_type,
                        report_stats=True,
                    )
                )
                stats = response.stats
                out.append(
                    QueueInfo(
                        name=name,
                        kind=kind,
                        backlog=int(stats.approximate_backlog_count),
                        backlog_age_seconds=stats.approximate_backlog_age.ToTimedelta().total_seconds(),
                        pollers=len(response.pollers),
                        tasks_add_rate=round(stats.tasks_add_rate, 3),
                        tasks_dispatch_rate=round(stats.tasks_dispatch_rate, 3),
                    )
                )
        return out

    # ---- internals --------------------------------------------------------------------

    async def _start(
        self, workflow: str, arg: Any, wid: str, task_queue: str | None, result_type: type[Any], priority: int,
        *, summary: str = "",
    ) -> tuple[WorkflowHandle[Any, Any], bool]:
        """Start, or find the run this id already names: a running one is joined
        (USE_EXISTING), a completed one is returned instead of re-run (only a failed,
        cancelled or terminated run is started again).

        ``summary`` becomes the run's static summary: the Temporal UI lists it next to
        the workflow id, so an operator sees ``clip.mov`` instead of ``asset-<hash>``.
        """
        task_queue = task_queue or self.pipeline_queue
        kwargs: dict[str, Any] = {}
        if priority:
            kwargs["priority"] = Priority(priority_key=priority)
        if summary:
            kwargs["static_summary"] = summary
        try:
            handle = await self.client.start_workflow(
                workflow,
                arg,
                id=wid,
                task_queue=task_queue,
                result_type=result_type,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                **kwargs,
            )
        except WorkflowAlreadyStartedError:
            return self.client.get_workflow_handle(wid, result_type=result_type), True
        return handle, False

    async def _source_version(self, request: pipeline_pb2.PipelineRequest) -> str:
        """Size and modification time of the source, or "" when it cannot be read from here
        (the run then reports why); unused when the request names its checksum."""
        if request.expected_sha256:
            return ""
        if request.source_uri.startswith("s3://") and not self.settings.storage.s3_access_key_id.get_secret_value():
            return ""  # no credentials here: botocore would go looking on the metadata address
        from damfleet.errors import DamfleetError
        from damfleet.storage import Storage

        storage = Storage.from_settings(self.settings)
        try:
            info = await storage.stat(request.source_uri)
        except (DamfleetError, OSError):
            return ""
        finally:
            await storage.aclose()
        return f"{info.size_bytes}:{info.modified_at:.6f}"

    async def _describe(self, workflow_id: str) -> Any:
        try:
            return await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise JobNotFoundError(f"no job with workflow id {workflow_id!r}") from None
            raise

    async def _require_running(self, workflow_id: str, action: str) -> Any:
        description = await self._describe(workflow_id)
        if description.status != WorkflowExecutionStatus.RUNNING:
            status = _FINISHED_STATUSES.get(description.status, str(description.status))
            raise JobControlError(f"job {workflow_id} already finished ({status}); nothing to {action}")
        return description

    async def _control(self, workflow_id: str, update: str) -> str:
        await self._require_running(workflow_id, update)
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            return str(await handle.execute_update(update, result_type=str))
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            raise JobControlError(f"job {workflow_id}: {getattr(cause, 'message', None) or cause}") from None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise JobControlError(f"job {workflow_id} already finished; nothing to {update}") from None
            raise


async def _with_attempts(
    handle: WorkflowHandle[Any, Any], result: pipeline_pb2.PipelineResult
) -> pipeline_pb2.PipelineResult:
    """Fill in attempts and waiting reasons from the run's history (the workflow cannot see retries)."""
    try:
        history = await handle.fetch_history()
        pending = (await handle.describe()).raw_description.pending_activities
    except RPCError:
        return result  # best effort: the status itself is already known
    apply_attempts(result, stage_attempts(history.events, pending))
    return result


async def _query(handle: WorkflowHandle[Any, Any], name: str, result_type: type[Any]) -> Any:
    try:
        return await handle.query(name, result_type=result_type)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise JobNotFoundError(f"no job with workflow id {handle.id!r}") from None
        raise
    except WorkflowQueryFailedError as err:
        raise DamfleetClientError(f"job {handle.id}: {name} query failed: {err}") from None


def _source_name(uri: str) -> str:
    """The last path segment of a source URI (``clip.mov``), for the UI's summary column."""
    return uri.rstrip("/").rsplit("/", 1)[-1] if uri else ""


def _schedule_error(schedule_id: str, err: RPCError) -> DamfleetClientError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return JobNotFoundError(f"no schedule {schedule_id!r}")
    return DamfleetClientError(f"schedule {schedule_id}: {err.message}")
