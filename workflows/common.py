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
    from damfleet.policies import ActivityName
    from damfleet.v1 import stages_pb2

__all__ = ["RunActivity", "deliver_all", "failure_message", "notify"]

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
            receipts.append(
                stages_pb2.DeliveryReceipt(
                    target=job.target, role=job.output.role, ok=False, error=message,
                    idempotency_key=job.idempotency_key, source_uri=job.output.uri,
                )
            )
            failures.append(f"distribution to {job.target} ({job.output.role}): {message}")
        else:
            receipts.append(outcome)
    return receipts, failures


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
