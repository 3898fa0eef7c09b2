"""RedeliverAsset: retry the failed deliveries of a finished AssetPipeline run, later.

An AssetPipeline run whose deliveries partly failed (a partner was down longer than
the delivery policy waits) ends COMPLETED_WITH_ERRORS with failed receipts. This
workflow retries just those, without ingest, transcode or enrichment running again:

- given the original run's workflow id, it reads that run's failed receipts
  (``load_failed_deliveries`` on q-distribution) and rebuilds each delivery and webhook
  notification with its original idempotency key, so a delivery that had in fact landed
  is recognised by the target instead of being stored twice;
- given explicit deliveries (or notifications), it retries exactly those.

Each delivery runs with the distribution policy (long capped backoff, Retry-After
honoured). Webhook notifications go last and carry the receipts as they are now.

Running it twice is safe and cheap: the client starts every redelivery of a run under one
workflow id (``<run>-redeliver``), the plan leaves out what an earlier redelivery already
landed, and the result carries those receipts forward, so the latest run is the record of
everything delivered since. ``FleetClient.status`` of the original run reads that record
(a finished run's own result and search attributes cannot change in Temporal).
"""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from damfleet.policies import ActivityName, WorkflowName, lane_of, policy_for
    from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2
    from workflows.common import deliver_all, failure_message, notify

__all__ = ["RedeliverAsset"]

M = TypeVar("M")


@workflow.defn(name=WorkflowName.REDELIVER_ASSET)
class RedeliverAsset:
    @workflow.init
    def __init__(self, request: pipeline_pb2.RedeliverRequest) -> None:
        self._result = pipeline_pb2.RedeliverResult(workflow_id=request.workflow_id, state=common_pb2.PENDING)

    @workflow.query(name="status")
    def status(self) -> pipeline_pb2.RedeliverResult:
        """Receipts and failures so far."""
        return self._result

    @workflow.run
    async def run(self, request: pipeline_pb2.RedeliverRequest) -> pipeline_pb2.RedeliverResult:
        plan = await self._plan(request)
        wanted = set(request.targets)
        deliveries = [d for d in plan.deliveries if not wanted or d.target in wanted]
        notifications = [n for n in plan.notifications if not wanted or n.target in wanted]
        self._result.asset_id = plan.asset_id or next((d.asset_id for d in deliveries), "")
        self._result.receipts.extend(plan.delivered_before)
        if not deliveries and not notifications:
            self._set_state(common_pb2.COMPLETED)
            self._result.reason = ("nothing left to redeliver: earlier redeliveries landed every failed delivery"
                                   if plan.delivered_before else "nothing to redeliver")
            return self._result
        self._set_state(common_pb2.RUNNING)

        receipts, failures = await deliver_all(deliveries, self._activity)
        self._result.receipts.extend(receipts)
        self._result.failures.extend(failures)
        for request in notifications:
            receipt, failure = await notify(self._refreshed(request), self._activity)
            self._result.receipts.append(receipt)
            if failure:
                self._result.failures.append(failure)

        self._set_state(common_pb2.COMPLETED_WITH_ERRORS if self._result.failures else common_pb2.COMPLETED)
        return self._result

    def _set_state(self, state: int) -> None:
        self._result.state = state  # type: ignore[assignment]

    async def _plan(self, request: pipeline_pb2.RedeliverRequest) -> stages_pb2.RedeliverPlan:
        if request.deliveries or request.notifications:
            return stages_pb2.RedeliverPlan(
                workflow_id=request.workflow_id,
                asset_id=next((d.asset_id for d in request.deliveries), "")
                or next((n.asset_id for n in request.notifications), ""),
                deliveries=request.deliveries,
                notifications=request.notifications,
            )
        if not request.workflow_id:
            raise ApplicationError(
                "RedeliverAsset needs the original run's workflow_id or explicit deliveries",
                type="BadInput", non_retryable=True,
            )
        try:
            return await self._activity(ActivityName.LOAD_FAILED_DELIVERIES, request.workflow_id,
                                        stages_pb2.RedeliverPlan)
        except ActivityError as err:
            message, error_type = failure_message(err)
            self._set_state(common_pb2.FAILED)
            raise ApplicationError(f"cannot plan redelivery: {message}", type=error_type, non_retryable=True) from err

    def _refreshed(self, notify: stages_pb2.NotifyInput) -> stages_pb2.NotifyInput:
        """The notification with this run's new receipts replacing the failed originals."""
        fresh = {r.idempotency_key: r for r in self._result.receipts if r.ok and r.idempotency_key}
        updated = stages_pb2.NotifyInput()
        updated.CopyFrom(notify)
        del updated.receipts[:]
        for receipt in notify.receipts:
            updated.receipts.append(fresh.get(receipt.idempotency_key, receipt))
        return updated

    async def _activity(self, name: str, arg: Any, result_type: type[M]) -> M:
        # Same lane as this workflow's queue (q-pipeline<suffix> -> q-distribution<suffix>).
        lane = lane_of(workflow.info().task_queue)
        return await workflow.execute_activity(
            name, arg, result_type=result_type, **policy_for(name).options(lane)  # type: ignore[arg-type]
        )
