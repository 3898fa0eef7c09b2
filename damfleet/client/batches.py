"""Batches: one BatchIngest over a manifest, a storage prefix or explicit rows; its progress;
a retry of its failed assets.

:func:`with_job_defaults` fills the defaults from ``DAMFLEET_JOBS_*`` (the inbox rescan
schedule's template uses it too); :meth:`BatchesMixin.submit_batch_request` is the one call
that checks a batch request and starts or joins its run.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from damfleet.client._base import FleetBase, source_name
from damfleet.client.errors import JobControlError
from damfleet.client.handles import BatchHandle
from damfleet.client.ids import batch_workflow_id
from damfleet.policies import WorkflowName
from damfleet.settings import Settings
from damfleet.storage import normalize_uri
from damfleet.v1 import common_pb2, jobs_pb2
from damfleet.validation import check_local_manifest, check_local_prefix, validate_batch_request

__all__ = ["BatchesMixin", "with_job_defaults"]


def with_job_defaults(request: jobs_pb2.BatchRequest, settings: Settings) -> jobs_pb2.BatchRequest:
    """Fill every knob left at 0 from ``DAMFLEET_JOBS_*``: priority 4 (below interactive
    uploads), a window of 50 assets in flight, continue-as-new every 500 assets, the
    manifest page size. Shared by :meth:`BatchesMixin.batch` and the rescan schedule's template."""
    jobs = settings.jobs
    request.priority = request.priority or jobs.batch_priority
    request.max_in_flight = request.max_in_flight or jobs.batch_max_in_flight
    request.continue_as_new_after = request.continue_as_new_after or jobs.batch_continue_as_new_after
    request.page_size = request.page_size or jobs.manifest_page_size
    return request


class BatchesMixin(FleetBase):
    """Start batches, read their progress, retry their failures."""

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

        Defaults come from ``DAMFLEET_JOBS_*`` (see :func:`with_job_defaults`).
        """
        if sum(bool(x) for x in (manifest, prefix, rows)) != 1:
            raise ValueError("give exactly one of manifest, prefix or rows")
        request = jobs_pb2.BatchRequest(
            manifest_uri=normalize_uri(manifest) if manifest else "",
            source_prefix=normalize_uri(prefix) if prefix else "",
            rows=list(rows),
            profile=profile,
            metadata=common_pb2.AssetMetadata(collection=collection, tenant=tenant),
            priority=priority,
            max_in_flight=max_in_flight,
            continue_as_new_after=continue_as_new_after,
            page_size=page_size,
            skip_ai=skip_ai,
            targets=targets or [],
            dedup=self.settings.jobs.dedup if dedup is None else dedup,
            retry_of=retry_of,
        )
        if prefix and not request.source_prefix.endswith("/"):
            request.source_prefix += "/"
        with_job_defaults(request, self.settings)
        return await self.submit_batch_request(request, workflow_id=workflow_id, task_queue=task_queue)

    async def submit_batch_request(
        self, request: jobs_pb2.BatchRequest, *, workflow_id: str | None = None, task_queue: str | None = None,
    ) -> BatchHandle:
        """Start a BatchIngest from a full request; the same source twice returns the existing batch.

        Raises ``BadInputError`` (nothing started) for a request the workflow would refuse,
        or a local manifest or folder that is missing.
        """
        validate_batch_request(request)
        if self.check_local_sources and request.manifest_uri:
            check_local_manifest(request.manifest_uri)
        if self.check_local_sources and request.source_prefix:
            check_local_prefix(request.source_prefix)
        wid = workflow_id or batch_workflow_id(request)
        handle, existing = await self._start(
            WorkflowName.BATCH_INGEST, request, wid, task_queue, jobs_pb2.BatchProgress, request.priority,
            summary=f"batch {source_name(request.manifest_uri or request.source_prefix) or f'of {len(request.rows)} assets'}",
        )
        return BatchHandle(wid, handle, existing)

    def get_batch(self, batch_id: str) -> BatchHandle:
        """A handle to an existing batch by workflow id (no server call)."""
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

