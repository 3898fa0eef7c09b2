"""Orchestration pieces several workflows share: reading failures, fanning out deliveries.

Deterministic code only (it runs inside workflows); activities are invoked through the
calling workflow's own ``run`` function, so each workflow keeps its lane, priority and
cancellation settings.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from google.protobuf import json_format

    from damfleet.policies import ActivityName
    from damfleet.v1 import stages_pb2

__all__ = ["RunActivity", "deliver_all", "deliver_per_target", "failure_message", "notify"]

#: ``run(activity_name, argument, result_type)``: how the calling workflow executes an activity.
RunActivity = Callable[[str, Any, type[Any]], Awaitable[Any]]


def failure_message(err: BaseException) -> tuple[str, str]:
    """(message, error type) of the root ApplicationError behind an activity or child failure."""
    cause: BaseException | None = err
    while isinstance(cause, FailureError) and not isinstance(cause, ApplicationError) and cause.cause is not None:
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return cause.message, cause.type or "ApplicationError"
    if isinstance(cause, FailureError):
        return cause.message, type(cause).__name__
    return str(cause), type(cause).__name__


async def deliver_all(
    jobs: Sequence[stages_pb2.DeliverInput], run: RunActivity
) -> tuple[list[stages_pb2.DeliveryReceipt], list[str]]:
    """Run every delivery concurrently; a failed one becomes a failed receipt (``ok=False``)
    carrying its idempotency key, so it can be found and redelivered later.

    Returns the receipts in job order and a human-readable line per failure.
    """
    outcomes = await asyncio.gather(
        *(run(ActivityName.DELIVER, job, stages_pb2.DeliveryReceipt) for job in jobs), return_exceptions=True
    )
    receipts: list[stages_pb2.DeliveryReceipt] = []
    failures: list[str] = []
    for job, outcome in zip(jobs, outcomes, strict=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, BaseException):
            message, _ = failure_message(outcome)
            receipts.append(_failed_receipt(job, message))
        else:
            receipts.append(outcome)
    return receipts, _failure_lines(receipts)


async def deliver_per_target(
    jobs: Sequence[stages_pb2.DeliverInput], run: RunActivity
) -> tuple[list[stages_pb2.DeliveryReceipt], list[str]]:
    """Like :func:`deliver_all`, with one activity per target carrying all of its outputs.

    Targets run concurrently; each keeps per-output receipts. When a target's activity
    finally fails, the outputs its last attempt reported delivered (the failure's details)
    keep their receipts and the rest get failed receipts with the activity's message.
    """
    groups: dict[str, list[stages_pb2.DeliverInput]] = {}
    for job in jobs:
        groups.setdefault(job.target, []).append(job)
    batches = [
        stages_pb2.DeliverBatchInput(asset_id=group[0].asset_id, target=target, deliveries=group)
        for target, group in groups.items()
    ]
    outcomes = await asyncio.gather(
        *(run(ActivityName.DELIVER_BATCH, batch, stages_pb2.DeliverBatchOutput) for batch in batches),
        return_exceptions=True,
    )
    by_key: dict[str, stages_pb2.DeliveryReceipt] = {}
    for batch, outcome in zip(batches, outcomes, strict=True):
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome
        if isinstance(outcome, BaseException):
            message, _ = failure_message(outcome)
            landed = _delivered_details(outcome)
            for job in batch.deliveries:
                by_key[job.idempotency_key] = landed.get(job.idempotency_key) or _failed_receipt(job, message)
        else:
            by_key.update((r.idempotency_key, r) for r in outcome.receipts)
    receipts = [by_key.get(job.idempotency_key) or _failed_receipt(job, "no receipt returned") for job in jobs]
    return receipts, _failure_lines(receipts)


def _failed_receipt(job: stages_pb2.DeliverInput, message: str) -> stages_pb2.DeliveryReceipt:
    return stages_pb2.DeliveryReceipt(
        target=job.target, role=job.output.role, ok=False, error=message,
        idempotency_key=job.idempotency_key, source_uri=job.output.uri,
    )


def _failure_lines(receipts: Sequence[stages_pb2.DeliveryReceipt]) -> list[str]:
    return [f"distribution to {r.target} ({r.role}): {r.error}" for r in receipts if not r.ok]


def _delivered_details(err: BaseException) -> dict[str, stages_pb2.DeliveryReceipt]:
    """Receipts a failed batch activity reported as delivered (its ApplicationError details)."""
    cause: BaseException | None = err
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__ if not isinstance(cause, FailureError) else cause.cause
    if cause is None or not cause.details or not isinstance(cause.details[0], dict):
        return {}
    found: dict[str, stages_pb2.DeliveryReceipt] = {}
    for key, value in (cause.details[0].get("delivered") or {}).items():
        try:
            found[key] = json_format.ParseDict(value, stages_pb2.DeliveryReceipt(), ignore_unknown_fields=True)
        except json_format.ParseError:
            continue
    return found


async def notify(
    request: stages_pb2.NotifyInput, run: RunActivity
) -> tuple[stages_pb2.DeliveryReceipt, str | None]:
    """Send one webhook notification; a failure becomes a failed receipt and a failure line."""
    try:
        return await run(ActivityName.NOTIFY, request, stages_pb2.DeliveryReceipt), None
    except ActivityError as err:
        message, _ = failure_message(err)
        receipt = stages_pb2.DeliveryReceipt(
            target=request.target, target_type="webhook", role="webhook", ok=False, error=message,
            idempotency_key=request.idempotency_key,
        )
        return receipt, f"webhook {request.target}: {message}"
