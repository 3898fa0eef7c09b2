"""Planning a redelivery: which of a finished run's deliveries failed, rebuilt as inputs.

Pure functions over the pipeline's result message, so the RedeliverAsset workflow can
retry them without re-running ingest, transcode or enrichment. The original idempotency
keys are kept: a delivery whose response was lost but which did land is recognised by
the target (S3 metadata, HTTP ``Idempotency-Key``) instead of being stored twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from damfleet.stages import StageName
from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2

__all__ = [
    "PREVIOUS_RECORD_MEMO",
    "REDELIVERY_SUFFIX",
    "WEBHOOK_ROLE",
    "apply_redelivery",
    "plan_redelivery",
    "redelivery_workflow_id",
    "without_delivered",
]

#: The ``role`` of a webhook notification's receipt (it delivers no rendition).
WEBHOOK_ROLE = "webhook"

#: A run's redeliveries share one workflow id, ``<run's id>-redeliver``: its latest
#: completed run is the record of what redelivery has landed so far (each run carries the
#: earlier ones' successful receipts forward). A finished Temporal run cannot be changed,
#: so this record is how ``status`` shows a redelivered run as it now is.
REDELIVERY_SUFFIX = "-redeliver"

#: Memo key of a redelivery run started by the client: the run id of the record's latest
#: completed run when it started. Describing a run is consistent; listing runs reads
#: visibility, which may lag (up to a second on a cluster with Elasticsearch), so a second
#: redelivery right after the first would not find the first and would re-send what landed.
PREVIOUS_RECORD_MEMO = "damfleet.previous_record_run_id"


def redelivery_workflow_id(workflow_id: str) -> str:
    """The workflow id of ``workflow_id``'s redeliveries."""
    return workflow_id + REDELIVERY_SUFFIX


def plan_redelivery(result: pipeline_pb2.PipelineResult, targets: Sequence[str] = ()) -> stages_pb2.RedeliverPlan:
    """The failed deliveries and notifications of ``result``, optionally only for ``targets``."""
    wanted = set(targets)
    plan = stages_pb2.RedeliverPlan(
        workflow_id=result.workflow_id,
        asset_id=result.asset_id,
        original_state=common_pb2.JobState.Name(result.state),
    )
    outputs = {o.uri: o for o in result.outputs}
    for receipt in result.receipts:
        if receipt.ok or (wanted and receipt.target not in wanted):
            continue
        if receipt.role == WEBHOOK_ROLE or receipt.target_type == "webhook":
            plan.notifications.append(
                stages_pb2.NotifyInput(
                    asset_id=result.asset_id,
                    target=receipt.target,
                    workflow_id=result.workflow_id,
                    state=result.state,
                    asset=result.asset,
                    outputs=result.outputs,
                    receipts=[r for r in result.receipts if r.role != WEBHOOK_ROLE],
                    idempotency_key=receipt.idempotency_key,
                )
            )
            continue
        output = outputs.get(receipt.source_uri)
        if output is None:
            continue   # the rendition is not in the result; nothing to deliver from
        plan.deliveries.append(
            stages_pb2.DeliverInput(
                asset_id=result.asset_id,
                target=receipt.target,
                output=output,
                metadata=result.asset.metadata,
                idempotency_key=receipt.idempotency_key,
            )
        )
    return plan


def without_delivered(
    plan: stages_pb2.RedeliverPlan, earlier: Sequence[stages_pb2.DeliveryReceipt]
) -> stages_pb2.RedeliverPlan:
    """``plan`` minus what an earlier redelivery already landed (matched by idempotency key),
    with those receipts kept in ``delivered_before``: running redeliver twice re-sends only
    what is still failed."""
    landed = {r.idempotency_key: r for r in earlier if r.ok and r.idempotency_key}
    remaining = stages_pb2.RedeliverPlan()
    remaining.CopyFrom(plan)
    del remaining.deliveries[:]
    del remaining.notifications[:]
    remaining.deliveries.extend(d for d in plan.deliveries if d.idempotency_key not in landed)
    remaining.notifications.extend(n for n in plan.notifications if n.idempotency_key not in landed)
    remaining.delivered_before.extend(landed.values())
    return remaining


def apply_redelivery(result: pipeline_pb2.PipelineResult, redelivery: pipeline_pb2.RedeliverResult,
                     redelivery_id: str) -> None:
    """Show ``result`` as it is after ``redelivery``: its failed receipts replaced by the ones
    that have since landed; COMPLETED (failures cleared) once none is left failed."""
    landed = {r.idempotency_key: r for r in redelivery.receipts if r.ok and r.idempotency_key}
    replaced = False
    for receipt in result.receipts:
        if not receipt.ok and receipt.idempotency_key in landed:
            receipt.CopyFrom(landed[receipt.idempotency_key])
            replaced = True
    if not replaced:
        return
    result.redelivered_by = redelivery_id
    if any(not r.ok for r in result.receipts):
        return
    # Every delivery has landed: what is left to report is an enrichment failure, if any.
    kept = [f for f in result.failures if f.startswith(f"{StageName.AI_ENRICH}:")]
    del result.failures[:]
    result.failures.extend(kept)
    distribution = result.stages[StageName.DISTRIBUTION]
    distribution.status = common_pb2.STAGE_STATUS_COMPLETED
    distribution.reason = f"delivered by {redelivery_id}"
    if result.state == common_pb2.COMPLETED_WITH_ERRORS and not kept:
        result.state = common_pb2.COMPLETED
