"""Single asset runs: submit, follow, redeliver and control them.

:meth:`JobsMixin.submit_request` is the one call that starts an AssetPipeline: it checks
the request, derives the workflow id (dedup) and starts or joins the run. :meth:`submit`
only builds the :class:`PipelineRequest` (the source as a URI, the checksum normalised)
and hands it on; a caller holding a full request calls ``submit_request`` itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from damfleet.client._base import FINISHED_STATUSES, FleetBase, source_name
from damfleet.client.errors import JobControlError, JobNotFoundError
from damfleet.client.handles import AssetHandle
from damfleet.client.ids import new_workflow_id, request_workflow_id
from damfleet.policies import WorkflowName
from damfleet.sources import check_before_submit
from damfleet.storage import normalize_uri
from damfleet.v1 import common_pb2, pipeline_pb2
from damfleet.validation import check_local_source, dedup_enabled, validate_pipeline_request

__all__ = ["JobsMixin"]


class JobsMixin(FleetBase):
    """Submit, follow, redeliver and control asset runs (pause/resume/cancel also take a batch id)."""

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
            summary=source_name(request.source_uri),
        )
        return AssetHandle(wid, handle, existing)

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
        from damfleet.delivery.redeliver import PREVIOUS_RECORD_MEMO, redelivery_workflow_id

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
            status = FINISHED_STATUSES.get(description.status, str(description.status))
            raise JobControlError(
                f"run {workflow_id} ended {status}: it delivered nothing; start it again with `damfleet submit`"
            )
        request = pipeline_pb2.RedeliverRequest(workflow_id=workflow_id, targets=list(targets))
        record_id = redelivery_workflow_id(workflow_id)
        previous = await self._latest_completed_run(record_id)
        try:
            handle = await self.client.start_workflow(
                WorkflowName.REDELIVER_ASSET, request, id=record_id, task_queue=task_queue or self.pipeline_queue,
                result_type=pipeline_pb2.RedeliverResult,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                static_summary=f"redeliver {workflow_id}",
                # The record so far, found consistently here (see PREVIOUS_RECORD_MEMO).
                memo={PREVIOUS_RECORD_MEMO: previous} if previous else None,
            )
            return await handle.result()
        except WorkflowFailureError as err:
            cause = err.cause
            raise JobControlError(f"redelivery of {workflow_id}: {getattr(cause, 'message', None) or cause}") from None

    async def _latest_completed_run(self, workflow_id: str) -> str:
        """The run id of ``workflow_id``'s latest run if it completed, else "" (none yet, or
        one still running, which a new start joins)."""
        try:
            description = await self._describe(workflow_id)
        except JobNotFoundError:
            return ""
        return description.run_id if description.status == WorkflowExecutionStatus.COMPLETED else ""

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
