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
from datetime import timedelta
from typing import Any

from google.protobuf import json_format
from temporalio import activity
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.common import Heartbeater, StageContext, to_application_error, translate_errors
from damfleet.delivery import Distributor, build_notification, plan_redelivery, receipt
from damfleet.delivery.redeliver import (
    PREVIOUS_RECORD_MEMO,
    WEBHOOK_ROLE,
    redelivery_workflow_id,
    without_delivered,
)
from damfleet.errors import BadInputError, TransientError
from damfleet.policies import ActivityName
from damfleet.v1 import pipeline_pb2, stages_pb2

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
        return [self.deliver_outputs, self.deliver_output, self.notify_webhook, self.load_failed_deliveries]

    @activity.defn(name=ActivityName.DELIVER)
    @translate_errors
    async def deliver_output(self, input: stages_pb2.DeliverInput) -> stages_pb2.DeliveryReceipt:
        """Deliver one stored rendition to one target; heartbeats the bytes the target holds.

        The heartbeat's ``bytes_sent`` is also the resume offset: a retry, on this worker or
        another, reads it back and hands it to targets that cannot ask the server how much of
        an interrupted upload it kept (SFTP and FTP ask; the hint is their fallback).
        """
        resume_hint = _previous_offset(input.target)
        total = input.output.size_bytes
        async with Heartbeater() as beat:
            beat.update({"target": input.target, "role": input.output.role, "bytes_sent": resume_hint,
                         "bytes_total": total})

            def progress(done: int, total: int) -> None:
                beat.update({"target": input.target, "role": input.output.role, "bytes_sent": done,
                             "bytes_total": total})

            return await self.distributor.deliver_input(input, progress=progress, resume_hint=resume_hint,
                                                        attempt=_attempt())

    @activity.defn(name=ActivityName.DELIVER_BATCH)
    @translate_errors
    async def deliver_outputs(self, input: stages_pb2.DeliverBatchInput) -> stages_pb2.DeliverBatchOutput:
        """Deliver every output of one asset to one target: one task hop instead of one per output.

        Each delivery keeps its own receipt and idempotency key. A permanent failure becomes
        that output's failed receipt; a retryable one fails the attempt (after the others are
        done), and the retry skips the outputs already delivered: they are heartbeated as they
        land, with each upload's resume offset, and also carried in the failure's details, so
        a batch that finally gives up still reports exactly which outputs arrived.
        """
        previous = _previous_batch()
        state: dict[str, Any] = {"target": input.target, "delivered": dict(previous.get("delivered", {})),
                                 "offsets": dict(previous.get("offsets", {}))}
        delivered = {key: _receipt_from(value) for key, value in state["delivered"].items()}
        async with Heartbeater() as beat:
            beat.update(state)

            def progress(key: str, sent: int, total: int) -> None:
                state["offsets"][key] = sent
                beat.update(state)

            def landed(done: stages_pb2.DeliveryReceipt) -> None:
                state["delivered"][done.idempotency_key] = json_format.MessageToDict(done)
                beat.update(state)

            outcome = await self.distributor.deliver_batch(
                input, delivered=delivered, resume_hints={k: int(v) for k, v in state["offsets"].items()},
                progress=progress, on_delivered=landed, attempt=_attempt(),
            )
        if outcome.retry:
            first_key, first = next(iter(outcome.retry.items()))
            # The error class's retry budget and Retry-After apply as for a single delivery.
            mapped = to_application_error(first)
            delays = [e.retry_after_seconds for e in outcome.retry.values() if getattr(e, "retry_after_seconds", 0)]
            raise ApplicationError(
                f"{len(outcome.retry)} of {len(input.deliveries)} deliveries to {input.target} failed; "
                f"{first_key}: {mapped.message}",
                {"delivered": state["delivered"]},
                type=mapped.type,
                non_retryable=mapped.non_retryable,
                next_retry_delay=timedelta(seconds=max(delays)) if delays else mapped.next_retry_delay,
            )
        return stages_pb2.DeliverBatchOutput(receipts=[r for r in outcome.receipts if r is not None])

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
        return receipt(target=input.target, target_type=config.type, role=WEBHOOK_ROLE, idempotency_key=key,
                       result=result, attempts=_attempt(), seconds=time.monotonic() - started)

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
    carries the earlier ones forward, so the latest is the whole record).

    A run the client started names that earlier run in its memo (PREVIOUS_RECORD_MEMO),
    found by a consistent describe before the start. A run started otherwise (the Temporal
    CLI or UI) looks it up in the visibility list, which may lag the last completion.
    """
    record_id = redelivery_workflow_id(workflow_id)
    previous = await _previous_record_run(client) or await _latest_listed_record_run(client, record_id)
    if not previous:
        return []
    handle = client.get_workflow_handle(record_id, run_id=previous, result_type=pipeline_pb2.RedeliverResult)
    return list((await handle.result(follow_runs=False)).receipts)


async def _previous_record_run(client: Any) -> str:
    """The earlier completed record run the client named in the memo of the run this activity
    serves; "" when it has no such memo (started elsewhere, or the record's latest run had not
    completed)."""
    info = activity.info()
    try:
        description = await client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id).describe()
        return str(await description.memo_value(PREVIOUS_RECORD_MEMO, ""))
    except RPCError as exc:
        raise TransientError(f"reading redelivery run {info.workflow_id}/{info.workflow_run_id} failed: {exc}") from exc


async def _latest_listed_record_run(client: Any, record_id: str) -> str:
    """The latest completed run of ``record_id`` other than this one, from the visibility list; ""
    when there is none or no visibility store to ask."""
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
                    record_id, exc.message)
        return ""
    return latest.run_id if latest is not None else ""


def _previous_offset(target: str) -> int:
    """The resume offset the previous attempt heartbeated for this target (0 on a first attempt)."""
    if not activity.in_activity():
        return 0
    details = activity.info().heartbeat_details
    if not details or not isinstance(details[-1], dict) or details[-1].get("target") != target:
        return 0
    offset = details[-1].get("bytes_sent", 0)
    return offset if isinstance(offset, int) and offset > 0 else 0


def _previous_batch() -> dict[str, Any]:
    """What an earlier attempt of a batch heartbeated: delivered receipts and resume offsets."""
    if not activity.in_activity():
        return {}
    details = activity.info().heartbeat_details
    if details and isinstance(details[-1], dict) and isinstance(details[-1].get("delivered"), dict):
        return details[-1]
    return {}


def _receipt_from(value: Any) -> stages_pb2.DeliveryReceipt:
    return json_format.ParseDict(value, stages_pb2.DeliveryReceipt(), ignore_unknown_fields=True)


def build_activities(ctx: StageContext) -> list[Callable[..., Any]]:
    return DistributionActivities(ctx).activities()
