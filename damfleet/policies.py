"""The one place for timeouts, retry policies and concurrency, over the stage table.

Stages, pools, task queues and activity names are defined once in :mod:`damfleet.stages`
(``Queue``, ``ActivityName`` and ``ALL_QUEUES`` are re-exported here, where callers have
always imported them); this module adds how each activity is scheduled. No stage, queue
or activity name is written as a string anywhere else. The numbers start from
../shared/ARCHITECTURE.md (Immich, Enduro, AWS VOD anchors) and are tuned by measurement;
each queue's reasoning is in its policy's docstring.

This module is imported inside the workflow sandbox, so it must stay free of side
effects and heavy imports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

from temporalio.common import RetryPolicy

from damfleet.errors import PERMANENT_ERROR_TYPES
from damfleet.settings import parse_flag
from damfleet.stages import ALL_QUEUES, POOLS, ActivityName, Queue, StageName, stage_named

__all__ = [
    "ACTIVITY_POLICIES",
    "ALL_QUEUES",
    "ActivityName",
    "ActivityPolicy",
    "Queue",
    "WorkflowName",
    "default_concurrency",
    "lane_of",
    "policy_for",
    "retry_window",
    "transcode_queue",
]


class WorkflowName:
    ASSET_PIPELINE = "AssetPipeline"
    BATCH_INGEST = "BatchIngest"
    RESCAN_INBOX = "RescanInbox"
    REDELIVER_ASSET = "RedeliverAsset"       # retry failed deliveries of a finished run
    FIXITY_AUDIT = "FixityAudit"             # re-verify stored originals (scheduled), repair damage


@dataclass(frozen=True)
class ActivityPolicy:
    """How one activity is scheduled: its queue, timeouts and retries."""

    task_queue: str
    start_to_close: timedelta
    retry: RetryPolicy
    heartbeat: timedelta | None = None
    schedule_to_close: timedelta | None = None

    def options(self, lane: str = "", *, queue: str | None = None) -> dict[str, object]:
        """Keyword arguments for ``workflow.execute_activity``, routed to ``lane`` (see :func:`lane_of`);
        ``queue`` replaces the policy's own (another pool of the stage, :func:`transcode_queue`)."""
        opts: dict[str, object] = {
            "task_queue": (queue or self.task_queue) + lane,
            "start_to_close_timeout": self.start_to_close,
            "retry_policy": self.retry,
        }
        if self.heartbeat is not None:
            opts["heartbeat_timeout"] = self.heartbeat
        if self.schedule_to_close is not None:
            opts["schedule_to_close_timeout"] = self.schedule_to_close
        return opts


def _backoff(initial: timedelta, maximum: timedelta) -> RetryPolicy:
    """Doubling backoff from ``initial`` capped at ``maximum``, with no attempt limit.

    Temporal's ``maximum_attempts`` counts every attempt, timeouts included, so a limit
    here would let three worker deaths fail a good asset. Instead the attempt budget
    belongs to the error (``max_attempts`` on each class in :mod:`damfleet.errors`,
    applied by the activity wrapper), permanent errors stop on attempt 1 through
    ``non_retryable_error_types``, and the schedule-to-close timeout (the queue's retry
    window) bounds everything else, outages included.
    """
    return RetryPolicy(
        initial_interval=initial,
        backoff_coefficient=2.0,
        maximum_interval=maximum,
        maximum_attempts=0,
        non_retryable_error_types=list(PERMANENT_ERROR_TYPES),
    )


def retry_window(queue_setting: str, default_hours: float) -> timedelta:
    """A queue's retry window (schedule-to-close): how long an outage is waited out.

    Read from ``DAMFLEET_RETRY_WINDOW_<QUEUE>_HOURS`` (for example
    ``DAMFLEET_RETRY_WINDOW_INGEST_HOURS=12``) when this module is first imported, so every
    worker of a fleet must agree on it (the Helm chart sets it once for all pools). A
    value that is not a positive number is refused loudly rather than ignored.
    """
    name = f"DAMFLEET_RETRY_WINDOW_{queue_setting}_HOURS"
    raw = os.environ.get(name, "").strip()
    if not raw:
        return timedelta(hours=default_hours)
    try:
        hours = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number of hours") from None
    if not hours > 0:
        raise ValueError(f"{name}={raw!r} must be a positive number of hours")
    return timedelta(hours=hours)


#: Ingest: bad input fails on attempt 1; a storage outage is waited out for the retry
#: window (6 h) with backoff capped at 30 s, so the asset resumes within 30 s of
#: the store coming back. A worker death is noticed by the 60 s heartbeat.
INGEST_POLICY = ActivityPolicy(
    task_queue=Queue.INGEST,
    start_to_close=timedelta(minutes=30),
    heartbeat=timedelta(seconds=60),
    schedule_to_close=retry_window("INGEST", 6),
    retry=_backoff(timedelta(seconds=2), timedelta(seconds=30)),
)

#: Transcode runs for up to hours and heartbeats real progress; a stalled or crashed tool
#: is retried a few times (its error's budget), a lost worker or an outage until the
#: window closes, with capped exponential backoff (Enduro: 1 s .. 10 min; capped lower
#: here so a recovered store is noticed within minutes).
TRANSCODE_POLICY = ActivityPolicy(
    task_queue=Queue.TRANSCODE,
    start_to_close=timedelta(hours=4),
    heartbeat=timedelta(seconds=60),
    schedule_to_close=retry_window("TRANSCODE", 24),
    retry=_backoff(timedelta(seconds=5), timedelta(minutes=2)),
)

#: AI backs off exponentially too; an unreachable inference service keeps the task on
#: the queue instead of marking anything done.
ENRICH_POLICY = ActivityPolicy(
    task_queue=Queue.AI_ENRICH,
    start_to_close=timedelta(hours=2),
    heartbeat=timedelta(seconds=120),
    schedule_to_close=retry_window("AI_ENRICH", 24),
    retry=_backoff(timedelta(seconds=5), timedelta(minutes=2)),
)

#: Distribution waits out external outages: capped exponential backoff for up to a day,
#: each attempt bounded to a few minutes; 4xx other than 408/425/429 is permanent.
DELIVER_POLICY = ActivityPolicy(
    task_queue=Queue.DISTRIBUTION,
    start_to_close=timedelta(minutes=30),
    heartbeat=timedelta(seconds=60),
    schedule_to_close=retry_window("DISTRIBUTION", 24),
    retry=_backoff(timedelta(seconds=2), timedelta(minutes=15)),
)

_SHORT_RETRY = _backoff(timedelta(seconds=1), timedelta(seconds=30))

#: Short bookkeeping activities (manifests, listing, discarding outputs): minutes per
#: attempt (a manifest or a listing can be long) with heartbeats, so a lost worker is
#: noticed in seconds; retried for the ingest queue's window.
SHORT_POLICY_INGEST = ActivityPolicy(
    task_queue=Queue.INGEST,
    start_to_close=timedelta(minutes=5),
    heartbeat=timedelta(seconds=30),
    schedule_to_close=retry_window("INGEST", 6),
    retry=_SHORT_RETRY,
)

#: Claiming content for dedup is two small reads and one small write: seconds, so a claim
#: lost with its worker is retried at once instead of stalling the asset for minutes.
CLAIM_POLICY = ActivityPolicy(
    task_queue=Queue.INGEST,
    start_to_close=timedelta(seconds=30),
    schedule_to_close=retry_window("INGEST", 6),
    retry=_SHORT_RETRY,
)

#: Reading a finished run's result for redelivery: a quick call to the Temporal frontend.
SHORT_POLICY_DISTRIBUTION = ActivityPolicy(
    task_queue=Queue.DISTRIBUTION,
    start_to_close=timedelta(minutes=2),
    schedule_to_close=retry_window("DISTRIBUTION", 24),
    retry=_SHORT_RETRY,
)

#: Listing every stored asset of a large root takes minutes (one LIST call per 1,000 keys);
#: it heartbeats the count listed and is safe to repeat (it rewrites the same pages).
FIXITY_PLAN_POLICY = ActivityPolicy(
    task_queue=Queue.INGEST,
    start_to_close=timedelta(hours=1),
    heartbeat=timedelta(seconds=60),
    schedule_to_close=retry_window("FIXITY", 48),
    retry=_backoff(timedelta(seconds=5), timedelta(minutes=5)),
)

#: One page of originals (500 by default) read at the throttled rate can take hours; the
#: activity heartbeats bytes hashed, and a lost worker is noticed within a minute. A failed
#: storage read backs off like transcode: the data is not going anywhere.
FIXITY_VERIFY_POLICY = ActivityPolicy(
    task_queue=Queue.INGEST,
    start_to_close=timedelta(hours=12),
    heartbeat=timedelta(seconds=60),
    schedule_to_close=retry_window("FIXITY", 48),
    retry=_backoff(timedelta(seconds=5), timedelta(minutes=10)),
)

ACTIVITY_POLICIES: dict[str, ActivityPolicy] = {
    ActivityName.INGEST: INGEST_POLICY,
    ActivityName.DISCARD_ASSET: SHORT_POLICY_INGEST,
    ActivityName.DISCARD_FAILED_ASSET: SHORT_POLICY_INGEST,
    ActivityName.READ_MANIFEST: SHORT_POLICY_INGEST,
    ActivityName.LIST_NEW_SOURCES: SHORT_POLICY_INGEST,
    ActivityName.READ_MANIFEST_PAGE: SHORT_POLICY_INGEST,
    ActivityName.CLAIM_CONTENT: CLAIM_POLICY,
    ActivityName.RELEASE_CONTENT: CLAIM_POLICY,
    ActivityName.TRANSCODE: TRANSCODE_POLICY,
    ActivityName.ENRICH: ENRICH_POLICY,
    ActivityName.DELIVER: DELIVER_POLICY,
    ActivityName.DELIVER_BATCH: DELIVER_POLICY,
    ActivityName.NOTIFY: DELIVER_POLICY,
    ActivityName.LOAD_FAILED_DELIVERIES: SHORT_POLICY_DISTRIBUTION,
    ActivityName.PLAN_FIXITY_AUDIT: FIXITY_PLAN_POLICY,
    ActivityName.VERIFY_FIXITY_PAGE: FIXITY_VERIFY_POLICY,
    ActivityName.WRITE_FIXITY_REPORT: SHORT_POLICY_INGEST,
}

#: Default number of activities (or workflow tasks) in flight per process, per queue.
_DEFAULT_CONCURRENCY: dict[str, int] = {pool.queue: pool.concurrency for pool in POOLS}


def lane_of(workflow_task_queue: str) -> str:
    """The lane suffix of a pipeline task queue: ``"q-pipeline-eu"`` -> ``"-eu"``.

    A lane is a complete, separate fleet on the same Temporal namespace: a workflow on
    ``q-pipeline<suffix>`` sends its activities to ``q-ingest<suffix>``, ``q-transcode<suffix>``
    and so on, served by workers started with ``DAMFLEET_WORKER_QUEUE_SUFFIX=<suffix>``.
    Operators use lanes to isolate tenants or canary a new worker version; tests use them so
    concurrent runs on one dev server never take each other's tasks.
    """
    if workflow_task_queue.startswith(Queue.PIPELINE):
        return workflow_task_queue[len(Queue.PIPELINE):]
    return ""


def _light_queue_setting() -> bool:
    """``DAMFLEET_TRANSCODE_LIGHT_QUEUE`` (default on), read once at import like the retry
    windows: the workflow routes by it, so it is read where the workflow can, without pydantic."""
    name = "DAMFLEET_TRANSCODE_LIGHT_QUEUE"
    raw = os.environ.get(name)
    if raw is None:
        return True
    try:
        return parse_flag(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be true or false") from None


#: Image transcodes go to the transcode stage's light pool (``q-transcode-light``).
TRANSCODE_LIGHT_QUEUE: bool = _light_queue_setting()


def transcode_queue(media_kind: str) -> str:
    """The queue an asset's transcode goes to: ``q-transcode-light`` for images (while
    ``DAMFLEET_TRANSCODE_LIGHT_QUEUE`` is on), ``q-transcode`` otherwise (no lane suffix).

    Changing the setting never breaks a run in flight: an activity's task queue is not part
    of what replay compares (tests/workflows/test_replay.py), and a task already queued stays
    on its queue, so keep the light pool until its backlog drains when turning it off.
    """
    return stage_named(StageName.TRANSCODE).queue_for(media_kind, light=TRANSCODE_LIGHT_QUEUE)


def policy_for(activity_name: str) -> ActivityPolicy:
    """The scheduling policy of an activity; raises KeyError for unknown names."""
    return ACTIVITY_POLICIES[activity_name]


def default_concurrency(task_queue: str) -> int:
    """Default max concurrent activities (or workflow tasks) for a queue's workers."""
    return _DEFAULT_CONCURRENCY[task_queue]
