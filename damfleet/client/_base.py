"""What every part of :class:`~damfleet.client.FleetClient` shares: the connection, the
settings, and the start/describe/control calls the submit, batch and control methods use."""

from __future__ import annotations

from typing import Any, Self

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import Priority, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from damfleet.client.errors import JobControlError, JobNotFoundError
from damfleet.policies import Queue
from damfleet.settings import Settings, get_settings
from damfleet.temporal import connect

FINISHED_STATUSES = {
    WorkflowExecutionStatus.COMPLETED: "COMPLETED",
    WorkflowExecutionStatus.FAILED: "FAILED",
    WorkflowExecutionStatus.CANCELED: "CANCELLED",
    WorkflowExecutionStatus.TERMINATED: "TERMINATED",
    WorkflowExecutionStatus.TIMED_OUT: "TIMED_OUT",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "CONTINUED_AS_NEW",
}


def source_name(uri: str) -> str:
    """The last path segment of a source URI (``clip.mov``), for the UI's summary column."""
    return uri.rstrip("/").rsplit("/", 1)[-1] if uri else ""


class FleetBase:
    """The connection and the calls every group of client methods builds on."""

    def __init__(self, client: Client, settings: Settings | None = None, *, check_local_sources: bool = True) -> None:
        """``check_local_sources=False`` skips the existence check of ``file://`` sources,
        for a client whose workers see a filesystem it does not (a shared volume mounted
        only on the worker hosts); the ingest activity still reports a missing file."""
        self.client = client
        self.settings = settings or get_settings()
        self.check_local_sources = check_local_sources

    @classmethod
    async def connect(cls, settings: Settings | None = None, *, check_local_sources: bool = True) -> Self:
        """Connect to the Temporal frontend named by the settings (address, namespace, TLS)."""
        settings = settings or get_settings()
        return cls(await connect(settings), settings, check_local_sources=check_local_sources)

    @property
    def pipeline_queue(self) -> str:
        """The workflow task queue of this client's lane (``DAMFLEET_WORKER_QUEUE_SUFFIX``)."""
        return Queue.PIPELINE + self.settings.worker.queue_suffix

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
            status = FINISHED_STATUSES.get(description.status, str(description.status))
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
