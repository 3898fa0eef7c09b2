"""RescanInbox: run by a Temporal Schedule, starts a batch for the inbox's new objects only.

Each run lists the inbox prefix through LIST_NEW_SOURCES, which pages the objects its
ledger has not seen (by URI, size and modification time, skipping objects still being
written) and records them as seen. If anything is new, a BatchIngest child is started
with the prepared pages and abandoned: it outlives the rescan, and the next scheduled
rescan does not wait for it (the schedule's overlap policy skips a rescan only while a
previous *rescan* is still listing).
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import Priority
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from damfleet.policies import ActivityName, WorkflowName, lane_of, policy_for
    from damfleet.v1 import jobs_pb2
    from workflows.batch import DEFAULT_BATCH_PRIORITY

__all__ = ["RescanInbox", "rescan_batch_id"]


def rescan_batch_id(rescan_workflow_id: str, run_id: str) -> str:
    """The batch started by one rescan run: unique per run, stable on replay."""
    return f"{rescan_workflow_id}/batch-{run_id[:12]}"


@workflow.defn(name=WorkflowName.RESCAN_INBOX)
class RescanInbox:
    @workflow.run
    async def run(self, request: jobs_pb2.RescanRequest) -> jobs_pb2.RescanResult:
        info = workflow.info()
        batch_id = rescan_batch_id(info.workflow_id, info.run_id)
        template = request.batch
        prepared = await workflow.execute_activity(
            ActivityName.LIST_NEW_SOURCES,
            jobs_pb2.PrepareBatchInput(
                batch_id=batch_id,
                source_prefix=request.source_prefix,
                page_size=template.page_size,
                defaults=template.metadata,
                ledger_uri=request.ledger_uri,
                settle_seconds=request.settle_seconds,
            ),
            result_type=jobs_pb2.PreparedBatch,
            priority=Priority(priority_key=template.priority or DEFAULT_BATCH_PRIORITY),
            **policy_for(ActivityName.LIST_NEW_SOURCES).options(lane_of(workflow.info().task_queue)),  # type: ignore[arg-type]
        )
        if prepared.total_rows == 0 and prepared.bad_row_count == 0:
            return jobs_pb2.RescanResult(new_sources=0)
        batch = jobs_pb2.BatchRequest()
        batch.CopyFrom(template)
        batch.source_prefix = request.source_prefix
        batch.prepared.CopyFrom(prepared)
        await workflow.start_child_workflow(
            WorkflowName.BATCH_INGEST,
            batch,
            id=batch_id,
            result_type=jobs_pb2.BatchProgress,
            parent_close_policy=ParentClosePolicy.ABANDON,
            priority=Priority(priority_key=batch.priority or DEFAULT_BATCH_PRIORITY),
        )
        return jobs_pb2.RescanResult(new_sources=prepared.total_rows, batch_id=batch_id)
