"""damfleet's own worker metrics and per-activity log context, from one Temporal interceptor
around every activity.

The SDK already exports poll and schedule-to-start latencies (in seconds: the worker runtime
is built with ``durations_as_seconds``); these add what operators of a media fleet ask
first: how long each stage's activities take, how they end (success, retryable failure,
permanent failure, cancelled), why they fail (the error type: ``CorruptMedia``,
``TargetUnavailable``...), how many are running right now, and per delivery target how many
deliveries landed or failed, how many bytes went out and how long each took.

The same interceptor puts the activity's asset id into the log context (so every line the
activity writes carries it, see :mod:`damfleet.logging_setup`) and logs one line when the
attempt ends: what ran, for which asset, how it ended and how long it took.

Every duration is in seconds and every counter ends in ``_total``. The alert rules and
the Grafana dashboard that read these live in ``monitoring/`` (and in the Helm chart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from damfleet.logging_setup import asset_context
from damfleet.policies import ActivityName

__all__ = [
    "ACTIVITY_FAILURES",
    "ACTIVITY_SECONDS",
    "ACTIVITY_TOTAL",
    "DELIVERIES",
    "DELIVERY_BYTES",
    "DELIVERY_SECONDS",
    "MetricsInterceptor",
    "failure_reason",
]

ACTIVITY_SECONDS = Histogram(
    "damfleet_activity_seconds",
    "Wall time of one activity attempt",
    ["activity", "task_queue", "outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
ACTIVITY_TOTAL = Counter(
    "damfleet_activity_total", "Activity attempts by outcome", ["activity", "task_queue", "outcome"]
)
ACTIVITY_FAILURES = Counter(
    "damfleet_activity_failures_total",
    "Failed activity attempts by reason class (the ApplicationError type, e.g. CorruptMedia)",
    ["activity", "task_queue", "reason", "retryable"],
)
ACTIVITY_IN_FLIGHT = Gauge("damfleet_activity_in_flight", "Activity attempts running now", ["activity", "task_queue"])
DELIVERIES = Counter(
    "damfleet_deliveries_total", "Delivery attempts per target by outcome", ["target", "target_type", "outcome"]
)
DELIVERY_BYTES = Counter("damfleet_delivery_bytes_total", "Bytes delivered per target", ["target"])
DELIVERY_SECONDS = Histogram(
    "damfleet_delivery_seconds",
    "Wall time of one delivery attempt per target",
    ["target"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)

_DELIVERY_ACTIVITIES = {ActivityName.DELIVER, ActivityName.DELIVER_BATCH, ActivityName.NOTIFY}

log = logging.getLogger("damfleet.activity")


def asset_id_of(args: Any) -> str:
    """The asset an activity works on, from its input message (``asset_id`` or ``asset.asset_id``)."""
    request = args[0] if args else None
    asset_id = getattr(request, "asset_id", "")
    if not asset_id:
        asset_id = getattr(getattr(request, "asset", None), "asset_id", "")
    return asset_id if isinstance(asset_id, str) else ""


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "completed"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, ApplicationError) and exc.non_retryable:
        return "failed_permanent"
    return "failed_retryable"


def failure_reason(exc: BaseException) -> str:
    """A bounded label for why an attempt failed: the error type, never the message (which
    holds paths and ids and would make one series per asset)."""
    if isinstance(exc, ApplicationError):
        return exc.type or "ApplicationError"
    return type(exc).__name__


def _record_delivery(input: ExecuteActivityInput, result: Any, error: BaseException | None, seconds: float) -> None:
    request = input.args[0] if input.args else None
    target = getattr(request, "target", "") or "unknown"
    if error is not None:
        outcome = "cancelled" if isinstance(error, asyncio.CancelledError) else "failed"
        DELIVERIES.labels(target, "", outcome).inc()
    else:
        # deliver_outputs returns one receipt per output; the others return one receipt.
        for receipt in getattr(result, "receipts", None) or [result]:
            ok = getattr(receipt, "ok", True)
            DELIVERIES.labels(target, getattr(receipt, "target_type", ""), "completed" if ok else "failed").inc()
            if ok:
                size = getattr(receipt, "size_bytes", 0) or getattr(getattr(request, "output", None), "size_bytes", 0)
                DELIVERY_BYTES.labels(target).inc(size or 0)
    DELIVERY_SECONDS.labels(target).observe(seconds)


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        labels = (info.activity_type, info.task_queue)
        started = time.monotonic()
        ACTIVITY_IN_FLIGHT.labels(*labels).inc()
        error: BaseException | None = None
        result: Any = None
        with asset_context(asset_id=asset_id_of(input.args)):
            try:
                result = await super().execute_activity(input)
                return result
            except BaseException as exc:
                error = exc
                raise
            finally:
                self._record(input, info, labels, started, result, error)

    def _record(self, input: ExecuteActivityInput, info: activity.Info, labels: tuple[str, str], started: float,
                result: Any, error: BaseException | None) -> None:
        seconds = time.monotonic() - started
        ACTIVITY_IN_FLIGHT.labels(*labels).dec()
        outcome = _outcome(error)
        ACTIVITY_SECONDS.labels(*labels, outcome).observe(seconds)
        ACTIVITY_TOTAL.labels(*labels, outcome).inc()
        if error is not None and outcome != "cancelled":
            retryable = "false" if outcome == "failed_permanent" else "true"
            ACTIVITY_FAILURES.labels(*labels, failure_reason(error), retryable).inc()
        if info.activity_type in _DELIVERY_ACTIVITIES:
            _record_delivery(input, result, error, seconds)
        if outcome == "completed":
            log.info("%s completed in %.2f s", info.activity_type, seconds)
        elif outcome == "failed_retryable":
            # One line: the SDK's traceback follows only for errors damfleet did not expect.
            log.warning("%s attempt %d failed after %.2f s, will retry: %s: %s", info.activity_type,
                        info.attempt, seconds, failure_reason(error), error)  # type: ignore[arg-type]


class MetricsInterceptor(Interceptor):
    """Add to ``Worker(interceptors=[...])`` to record per-activity metrics."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)
