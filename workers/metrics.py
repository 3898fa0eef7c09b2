"""damfleet's own worker metrics, recorded by a Temporal interceptor around every activity.

The SDK already exports poll and schedule-to-start latencies; these add what operators of a
media fleet ask first: how long each stage's activities take, how they end (success,
retryable failure, permanent failure, cancelled), and how many are running right now.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

__all__ = ["ACTIVITY_SECONDS", "ACTIVITY_TOTAL", "MetricsInterceptor"]

ACTIVITY_SECONDS = Histogram(
    "damfleet_activity_seconds",
    "Wall time of one activity attempt",
    ["activity", "task_queue", "outcome"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200),
)
ACTIVITY_TOTAL = Counter(
    "damfleet_activity_total", "Activity attempts by outcome", ["activity", "task_queue", "outcome"]
)
ACTIVITY_IN_FLIGHT = Gauge("damfleet_activity_in_flight", "Activity attempts running now", ["activity", "task_queue"])


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "completed"
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    if isinstance(exc, ApplicationError) and exc.non_retryable:
        return "failed_permanent"
    return "failed_retryable"


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        labels = (info.activity_type, info.task_queue)
        started = time.monotonic()
        ACTIVITY_IN_FLIGHT.labels(*labels).inc()
        error: BaseException | None = None
        try:
            return await super().execute_activity(input)
        except BaseException as exc:
            error = exc
            raise
        finally:
            ACTIVITY_IN_FLIGHT.labels(*labels).dec()
            outcome = _outcome(error)
            ACTIVITY_SECONDS.labels(*labels, outcome).observe(time.monotonic() - started)
            ACTIVITY_TOTAL.labels(*labels, outcome).inc()


class MetricsInterceptor(Interceptor):
    """Add to ``Worker(interceptors=[...])`` to record per-activity metrics."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)
