"""Planning a redelivery: which of a finished run's deliveries failed, rebuilt as inputs.

Pure functions over the pipeline's result message, so the RedeliverAsset workflow can
retry them without re-running ingest, transcode or enrichment. The original idempotency
keys are kept: a delivery whose response was lost but which did land is recognised by
the target (S3 metadata, HTTP ``Idempotency-Key``) instead of being stored twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2

__all__ = ["WEBHOOK_ROLE", "plan_redelivery"]

#: The ``role`` of a webhook notification's receipt (it delivers no rendition).
WEBHOOK_ROLE = "webhook"


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
