"""Handles to submitted runs: follow one asset pipeline or one batch by its workflow id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from damfleet.client.errors import DamfleetClientError, JobNotFoundError
from damfleet.retries import apply_attempts, stage_attempts
from damfleet.v1 import jobs_pb2, pipeline_pb2

__all__ = ["AssetHandle", "BatchHandle"]


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
        # The run has closed: nothing is pending, so the history alone has every attempt.
        return await _with_attempts(self.handle, result, closed=True)


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


async def _with_attempts(
    handle: WorkflowHandle[Any, Any], result: pipeline_pb2.PipelineResult, *, closed: bool = False
) -> pipeline_pb2.PipelineResult:
    """Fill in attempts and waiting reasons from the run's history (the workflow cannot see retries)
    and, unless the run is known to have ``closed``, its pending activities.

    A closed run whose stage activities all reported succeeding on their first attempt
    (``first_attempts_only``) already holds everything the history would add: its
    attempts are in its stages, and there was no earlier error. That skips a round trip
    at the end of every ``wait()``.
    """
    if closed and result.first_attempts_only:
        return result
    try:
        history = await handle.fetch_history()
        pending = [] if closed else (await handle.describe()).raw_description.pending_activities
    except RPCError:
        return result  # best effort: the status itself is already known
    apply_attempts(result, stage_attempts(history.events, pending))
    return result


async def _query(handle: WorkflowHandle[Any, Any], name: str, result_type: type[Any]) -> Any:
    """Run a workflow query; an unknown id or a failed query becomes a client error."""
    try:
        return await handle.query(name, result_type=result_type)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise JobNotFoundError(f"no job with workflow id {handle.id!r}") from None
        raise
    except WorkflowQueryFailedError as err:
        raise DamfleetClientError(f"job {handle.id}: {name} query failed: {err}") from None
