"""BatchIngest: many assets, one child AssetPipeline each, a bounded number in flight.

The batch's source is a CSV/XLSX manifest, a storage prefix, explicit rows (a re-run of
another batch's failed assets) or pages a rescan already prepared. A first activity
parses or lists the source into pages stored next to the batch (bad rows are counted
and listed with their line numbers, good rows go on); the workflow then reads one page
at a time, so neither payloads nor history grow with the batch.

Scale: a sliding window of ``max_in_flight`` children runs at once. After
``continue_as_new_after`` children (or when the server suggests it) the batch stops
starting, lets the window drain, and continues as new with its counters, so each run's
history holds a bounded number of events however large the batch is (100,000 rows are
~200 runs of a few thousand events each).

Control: ``pause``/``resume`` updates stop and restart the starting of new assets
(assets already in flight finish, like the running activity of a paused pipeline);
cancelling the batch cancels every child in flight, which cleans up its own outputs.
The ``progress`` query answers total / completed / completed with errors / failed /
running / percent and the failed assets, which a re-run can take as its rows.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    FailureError,
    WorkflowAlreadyStartedError,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from damfleet import search_attributes as sa
    from damfleet.policies import ActivityName, WorkflowName, lane_of, policy_for
    from damfleet.v1 import common_pb2, jobs_pb2, pipeline_pb2
    from damfleet.validation import batch_problem, dedup_enabled
    from workflows.common import failure_message

__all__ = [
    "DEFAULT_BATCH_PRIORITY",
    "DEFAULT_CONTINUE_AS_NEW_AFTER",
    "DEFAULT_MAX_IN_FLIGHT",
    "BatchIngest",
    "child_workflow_id",
]

#: Batches run below interactive uploads (3) unless told otherwise (1 highest .. 5 lowest).
DEFAULT_BATCH_PRIORITY = 4
DEFAULT_MAX_IN_FLIGHT = 50
#: ~6-7 history events per child: 500 children keep a run near 3,500 events, under 10%
#: of Temporal's 51,200-event limit.
DEFAULT_CONTINUE_AS_NEW_AFTER = 500
#: Failed assets kept in the progress (and available to a re-run); more are only counted.
FAILED_ASSETS_KEPT = 1000

_FINISHED = (common_pb2.COMPLETED, common_pb2.COMPLETED_WITH_ERRORS, common_pb2.FAILED, common_pb2.CANCELLED)


def child_workflow_id(batch_id: str, row: jobs_pb2.ManifestRow, index: int) -> str:
    """The child pipeline's id: stable per batch row, so a replayed start never duplicates it."""
    return f"{batch_id}/{row.line or index + 1:06d}"


@workflow.defn(name=WorkflowName.BATCH_INGEST)
class BatchIngest:
    @workflow.init
    def __init__(self, request: jobs_pb2.BatchRequest) -> None:
        self._state = jobs_pb2.BatchState()
        self._state.CopyFrom(request.state)
        self._job_state: int = common_pb2.PENDING
        self._running: dict[str, jobs_pb2.ManifestRow] = {}
        self._child_handles: dict[str, workflow.ChildWorkflowHandle[Any, pipeline_pb2.PipelineResult]] = {}
        self._page_number = -1
        self._page_rows: list[jobs_pb2.ManifestRow] = []
        self._retry_of = request.retry_of
        self._error = ""

    # ---- queries and updates ------------------------------------------------------------

    @workflow.query(name="progress")
    def progress(self) -> jobs_pb2.BatchProgress:
        """Counts so far (over every continue-as-new run), percent done and failed assets."""
        s = self._state
        total = s.prepared.total_rows
        done = s.completed + s.completed_with_errors + s.failed + s.cancelled
        state = common_pb2.PAUSED if s.paused and self._job_state == common_pb2.RUNNING else self._job_state
        return jobs_pb2.BatchProgress(
            batch_id=workflow.info().workflow_id,
            state=state,  # type: ignore[arg-type]
            total=total,
            completed=s.completed,
            completed_with_errors=s.completed_with_errors,
            failed=s.failed,
            cancelled=s.cancelled,
            running=len(self._running),
            pending=max(0, total - done - len(self._running)),
            duplicates=s.duplicates,
            percent=round(100.0 * done / total, 2) if total else (100.0 if self._is_finished() else 0.0),
            failed_assets=s.failed_assets,
            failed_assets_omitted=s.failed_assets_omitted,
            bad_row_count=s.prepared.bad_row_count,
            bad_rows=s.prepared.bad_rows,
            runs=s.runs,
            paused=s.paused,
            retry_of=self._retry_of,
            error=self._error,
        )

    @workflow.update(name="pause")
    async def pause(self) -> str:
        """Start no new asset until resumed; assets in flight finish their running activity
        and then hold too (each child pipeline is paused)."""
        self._state.paused = True
        self._upsert_state()
        await self._signal_children(True)
        return "PAUSED"

    @pause.validator
    def _validate_pause(self) -> None:
        self._refuse_when_finished("pause")

    @workflow.update(name="resume")
    async def resume(self) -> str:
        self._state.paused = False
        self._upsert_state()
        await self._signal_children(False)
        return common_pb2.JobState.Name(self._job_state)

    @resume.validator
    def _validate_resume(self) -> None:
        self._refuse_when_finished("resume")

    # ---- the run ------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: jobs_pb2.BatchRequest) -> jobs_pb2.BatchProgress:
        if not self._state.started_at:
            self._state.started_at = workflow.now().timestamp()
        self._set_state(common_pb2.VALIDATING if not self._state.is_prepared else common_pb2.RUNNING)
        children: set[asyncio.Task[None]] = set()
        problem = batch_problem(request)
        if problem:  # the client refuses these first; runs started around it get the same words
            self._fail(f"invalid request: {problem}", "BadInput")
        try:
            if not self._state.is_prepared:
                try:
                    self._state.prepared.CopyFrom(await self._prepare(request))
                except ActivityError as err:
                    message, error_type = failure_message(err)
                    self._fail(f"batch source unusable: {message}", error_type, err)
                self._state.is_prepared = True
            self._set_state(common_pb2.RUNNING)
            await self._start_children(request, children)
            await workflow.wait_condition(lambda: not self._running)
        except asyncio.CancelledError:
            await self._cancel_children(children)
            raise
        if self._state.next_index < self._state.prepared.total_rows:
            await workflow.wait_condition(workflow.all_handlers_finished)
            self._state.runs += 1
            following = jobs_pb2.BatchRequest()
            following.CopyFrom(request)
            following.state.CopyFrom(self._state)
            following.ClearField("prepared")  # already in the state
            workflow.continue_as_new(following)
        s = self._state
        errors = s.failed or s.completed_with_errors or s.cancelled or s.prepared.bad_row_count
        self._set_state(common_pb2.COMPLETED_WITH_ERRORS if errors else common_pb2.COMPLETED)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.progress()

    async def _prepare(self, request: jobs_pb2.BatchRequest) -> jobs_pb2.PreparedBatch:
        """Pages for the batch's source; explicit rows and prepared pages need no activity."""
        if request.HasField("prepared"):
            return request.prepared
        if request.rows:
            return jobs_pb2.PreparedBatch(total_rows=len(request.rows))
        prepare = jobs_pb2.PrepareBatchInput(
            batch_id=workflow.info().workflow_id,
            manifest_uri=request.manifest_uri,
            source_prefix=request.source_prefix,
            page_size=request.page_size,
            defaults=request.metadata,
        )
        if request.manifest_uri:
            name = ActivityName.READ_MANIFEST
        elif request.source_prefix:
            name = ActivityName.LIST_NEW_SOURCES
        else:
            raise ApplicationError("a batch needs a manifest_uri, a source_prefix or rows", type="BadInput",
                                   non_retryable=True)
        return await self._activity(name, prepare, jobs_pb2.PreparedBatch, request)

    async def _start_children(self, request: jobs_pb2.BatchRequest, children: set[asyncio.Task[None]]) -> None:
        window = request.max_in_flight or DEFAULT_MAX_IN_FLIGHT
        per_run = request.continue_as_new_after or DEFAULT_CONTINUE_AS_NEW_AFTER
        started = 0
        total = self._state.prepared.total_rows
        while self._state.next_index < total:
            if started >= per_run or workflow.info().is_continue_as_new_suggested():
                return
            await workflow.wait_condition(lambda: not self._state.paused and len(self._running) < window)
            index = self._state.next_index
            row = await self._row(request, index)
            child_id = child_workflow_id(workflow.info().workflow_id, row, index)
            self._running[child_id] = row
            self._state.next_index += 1
            started += 1
            task = asyncio.create_task(self._run_child(request, row, child_id))
            children.add(task)
            task.add_done_callback(children.discard)

    async def _row(self, request: jobs_pb2.BatchRequest, index: int) -> jobs_pb2.ManifestRow:
        if request.rows:
            return request.rows[index]
        prepared = self._state.prepared
        page = index // prepared.page_size
        if page != self._page_number:
            loaded = await self._activity(
                ActivityName.READ_MANIFEST_PAGE,
                jobs_pb2.ManifestPageInput(pages_prefix=prepared.pages_prefix, page=page),
                jobs_pb2.ManifestPage,
                request,
            )
            self._page_rows = list(loaded.rows)
            self._page_number = page
        return self._page_rows[index - page * prepared.page_size]

    async def _run_child(self, request: jobs_pb2.BatchRequest, row: jobs_pb2.ManifestRow, child_id: str) -> None:
        priority = request.priority or DEFAULT_BATCH_PRIORITY
        child_request = pipeline_pb2.PipelineRequest(
            source_uri=row.source_uri,
            expected_sha256=row.expected_sha256,
            profile=row.profile or request.profile,
            metadata=row.metadata,
            priority=priority,
            targets=request.targets,
            skip_ai=request.skip_ai,
            dedup=dedup_enabled(request),
        )
        if not child_request.metadata.collection:
            child_request.metadata.collection = request.metadata.collection
        if not child_request.metadata.tenant:
            child_request.metadata.tenant = request.metadata.tenant
        try:
            handle = await workflow.start_child_workflow(
                WorkflowName.ASSET_PIPELINE,
                child_request,
                id=child_id,
                result_type=pipeline_pb2.PipelineResult,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                priority=Priority(priority_key=priority),
                search_attributes=TypedSearchAttributes(
                    [SearchAttributePair(sa.BATCH_ID, workflow.info().workflow_id)]
                ),
            )
            self._child_handles[child_id] = handle
            if self._state.paused:  # paused while this child was starting
                await handle.signal("set_paused", True)
            result = await handle
        except asyncio.CancelledError:
            self._record_failure(row, child_id, common_pb2.CANCELLED, "cancelled with the batch")
            raise
        except ChildWorkflowError as err:
            if isinstance(err.cause, CancelledError):
                self._record_failure(row, child_id, common_pb2.CANCELLED, "cancelled")
            else:
                self._record_failure(row, child_id, common_pb2.FAILED, failure_message(err)[0])
        except WorkflowAlreadyStartedError:
            # The id is taken by a run outside this batch (a reused batch id): that asset fails, not the batch.
            self._record_failure(row, child_id, common_pb2.FAILED, f"workflow id {child_id} is already in use")
        else:
            if result.state == common_pb2.COMPLETED_WITH_ERRORS:
                self._state.completed_with_errors += 1
            else:
                self._state.completed += 1
            if result.duplicate_of:
                self._state.duplicates += 1
        finally:
            self._running.pop(child_id, None)
            self._child_handles.pop(child_id, None)

    def _record_failure(self, row: jobs_pb2.ManifestRow, child_id: str, state: int, error: str) -> None:
        if state == common_pb2.CANCELLED:
            self._state.cancelled += 1
        else:
            self._state.failed += 1
        if len(self._state.failed_assets) >= FAILED_ASSETS_KEPT:
            self._state.failed_assets_omitted += 1
            return
        self._state.failed_assets.append(
            jobs_pb2.FailedAsset(
                line=row.line,
                source_uri=row.source_uri,
                workflow_id=child_id,
                state=state,  # type: ignore[arg-type]
                error=error[:500],
                expected_sha256=row.expected_sha256,
                metadata=row.metadata,
                profile=row.profile,
            )
        )

    async def _cancel_children(self, children: set[asyncio.Task[None]]) -> None:
        """Cancel every child in flight and wait until each has cleaned up."""
        self._set_state(common_pb2.CANCELLED)
        pending = list(children)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _signal_children(self, paused: bool) -> None:
        """Pause or resume every child in flight (a child that just finished is skipped)."""
        for child_id, handle in list(self._child_handles.items()):
            try:
                await handle.signal("set_paused", paused)
            except FailureError as err:
                workflow.logger.info("could not %s child %s: %s", "pause" if paused else "resume", child_id, err)

    # ---- helpers ------------------------------------------------------------------------

    async def _activity(self, name: str, arg: Any, result_type: type[Any], request: jobs_pb2.BatchRequest) -> Any:
        try:
            return await workflow.execute_activity(
                name,
                arg,
                result_type=result_type,
                priority=Priority(priority_key=request.priority or DEFAULT_BATCH_PRIORITY),
                **policy_for(name).options(lane_of(workflow.info().task_queue)),  # type: ignore[arg-type]
            )
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                # The batch is being cancelled while reading its manifest: a cancellation,
                # not an unusable source.
                raise asyncio.CancelledError() from err
            raise

    def _fail(self, error: str, error_type: str, cause: BaseException | None = None) -> None:
        """End the batch FAILED with ``error``, which ``progress`` keeps showing afterwards."""
        self._error = error
        self._set_state(common_pb2.FAILED)
        raise ApplicationError(error, type=error_type, non_retryable=True) from cause

    def _set_state(self, state: int) -> None:
        self._job_state = state
        self._upsert_state()

    def _upsert_state(self) -> None:
        shown = common_pb2.PAUSED if self._state.paused and self._job_state == common_pb2.RUNNING else self._job_state
        workflow.upsert_search_attributes([sa.STATE.value_set(common_pb2.JobState.Name(shown))])

    def _is_finished(self) -> bool:
        return self._job_state in _FINISHED

    def _refuse_when_finished(self, action: str) -> None:
        if self._is_finished():
            raise ApplicationError(
                f"batch already {common_pb2.JobState.Name(self._job_state)}; nothing to {action}"
            )
