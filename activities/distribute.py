"""Distribution activities (task queue ``q-distribution``): thin Temporal wrappers over
:mod:`damfleet.delivery`.

Async activities: the worker runs 100+ deliveries in flight on one event loop, each
streaming in small chunks. Failures leave as ApplicationErrors whose retryability comes
from the exception class (:mod:`damfleet.errors`); a target's ``Retry-After`` becomes the
next retry delay. Receipts carry where the rendition landed, its size and sha256, the
attempt that succeeded and how long it took; never credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from activities.common import Heartbeater, StageContext, translate_errors
from damfleet.delivery import Distributor, build_notification, delivery_item, plan_redelivery
from damfleet.delivery.redeliver import redelivery_workflow_id, without_delivered
from damfleet.errors import BadInputError, TransientError
from damfleet.policies import ActivityName
from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2

__all__ = ["DistributionActivities", "build_activities"]

log = logging.getLogger(__name__)


def _attempt() -> int:
    return activity.info().attempt if activity.in_activity() else 1


class DistributionActivities:
    """Activities of the distribution pool; one instance per worker process shares clients
    and the per-target concurrency limits."""

    def __init__(self, ctx: StageContext, *, distributor: Distributor | None = None) -> None:
        self.ctx = ctx
        self.distributor = distributor or Distributor(ctx.settings, ctx.storage)

    async def aclose(self) -> None:
        await self.distributor.aclose()

    def activities(self) -> list[Callable[..., Any]]:
        """The bound activities a worker registers."""
        return [self.deliver_output, self.notify_webhook, self.load_failed_deliveries]

    @activity.defn(name=ActivityName.DELIVER)
    @translate_errors
    async def deliver_output(self, input: stages_pb2.DeliverInput) -> stages_pb2.DeliveryReceipt:
        """Deliver one stored rendition to one target; heartbeats bytes sent."""
        if not input.target:
            raise BadInputError(f"delivery of {input.output.role or 'an output'} for {input.asset_id} names no target")
        item = delivery_item(
            asset_id=input.asset_id,
            role=input.output.role,
            source_uri=input.output.uri,
            size_bytes=input.output.size_bytes,
            sha256=input.output.sha256,
            mime_type=input.output.mime_type,
            idempotency_key=input.idempotency_key,
            metadata=_metadata(input.metadata),
        )
        started = time.monotonic()
        async with Heartbeater() as beat:
            beat.update({"target": input.target, "role": item.role, "bytes_sent": 0, "bytes_total": item.size_bytes})

            def progress(done: int, total: int) -> None:
                beat.update({"target": input.target, "role": item.role, "bytes_sent": done, "bytes_total": total})

            config, result = await self.distributor.deliver(input.target, item, progress=progress)
        return stages_pb2.DeliveryReceipt(
            target=input.target,
            target_type=config.type,
            role=item.role,
            location=result.location,
            size_bytes=result.size_bytes,
            sha256=result.sha256,
            attempts=_attempt(),
            seconds=round(time.monotonic() - started, 3),
            ok=True,
            idempotency_key=item.idempotency_key,
            source_uri=input.output.uri,
        )

    @activity.defn(name=ActivityName.NOTIFY)
    @translate_errors
    async def notify_webhook(self, input: stages_pb2.NotifyInput) -> stages_pb2.DeliveryReceipt:
        """Send the signed "asset finished" notification to one webhook target."""
        if not input.target:
            raise BadInputError(f"notification for {input.asset_id} names no webhook target")
        body = build_notification(input)
        key = input.idempotency_key or f"{input.asset_id}:{input.target}:webhook"
        started = time.monotonic()
        async with Heartbeater():
            config, result = await self.distributor.notify(input.target, body, idempotency_key=key)
        return stages_pb2.DeliveryReceipt(
            target=input.target,
            target_type=config.type,
            role="webhook",
            location=result.location,
            size_bytes=result.size_bytes,
            sha256=result.sha256,
            attempts=_attempt(),
            seconds=round(time.monotonic() - started, 3),
            ok=True,
            idempotency_key=key,
        )

    @activity.defn(name=ActivityName.LOAD_FAILED_DELIVERIES)
    @translate_errors
    async def load_failed_deliveries(self, workflow_id: str) -> stages_pb2.RedeliverPlan:
        """The failed deliveries of a finished AssetPipeline run, read from its result."""
        if not workflow_id:
            raise BadInputError("redelivery needs the AssetPipeline workflow id")
        client = activity.client()
        handle = client.get_workflow_handle(workflow_id, result_type=pipeline_pb2.PipelineResult)
        try:
            description = await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise BadInputError(f"no workflow {workflow_id!r} to redeliver from") from exc
            raise TransientError(f"reading workflow {workflow_id!r} failed: {exc}") from exc
        status = description.status.name if description.status is not None else "UNKNOWN"
        if status == "RUNNING":
            raise BadInputError(f"workflow {workflow_id!r} is still running; redeliver after it finishes")
        try:
            result = await handle.result(follow_runs=False)
        except WorkflowFailureError as exc:
            raise BadInputError(
                f"workflow {workflow_id!r} ended {status}, not with failed deliveries: re-run the pipeline instead"
            ) from exc
        plan = without_delivered(plan_redelivery(result), await _landed_before(client, workflow_id))
        log.info("redelivery plan for %s: %d deliveries, %d notifications (%d landed earlier)", workflow_id,
                 len(plan.deliveries), len(plan.notifications), len(plan.delivered_before))
        return plan


async def _landed_before(client: Any, workflow_id: str) -> list[stages_pb2.DeliveryReceipt]:
    """Receipts the latest completed earlier redelivery of ``workflow_id`` holds (each run
    carries the earlier ones forward, so the latest is the whole record)."""
    record_id = redelivery_workflow_id(workflow_id)
    current_run = activity.info().workflow_run_id
    latest = None
    try:
        async for execution in client.list_workflows(
            f"WorkflowId = '{record_id}' AND ExecutionStatus = 'Completed'"
        ):
            if execution.run_id == current_run or execution.close_time is None:
                continue
            if latest is None or execution.close_time > latest.close_time:
                latest = execution
    except RPCError as exc:
        # No visibility store (the time-skipping test server has none): re-send every failed
        # delivery; their idempotency keys still keep the targets from storing twice.
        log.warning("cannot list earlier redeliveries of %s (%s); re-sending every failed delivery",
                    workflow_id, exc.message)
        return []
    if latest is None:
        return []
    handle = client.get_workflow_handle(record_id, run_id=latest.run_id, result_type=pipeline_pb2.RedeliverResult)
    return list((await handle.result(follow_runs=False)).receipts)


def _metadata(metadata: common_pb2.AssetMetadata) -> dict[str, str]:
    """Descriptive metadata as plain strings, for object metadata and multipart fields."""
    values = {"title": metadata.title, "collection": metadata.collection, "tenant": metadata.tenant}
    values.update({f"x-{k}": v for k, v in metadata.extra.items()})
    return {k: v for k, v in values.items() if v}


def build_activities(ctx: StageContext) -> list[Callable[..., Any]]:
    return DistributionActivities(ctx).activities()
