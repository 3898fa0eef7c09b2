"""Attempts and waiting reasons per stage, read from a run's own history.

The workflow sees only an activity's final outcome, never its retries, so the number of
attempts a stage took and the error it is waiting out are read where Temporal keeps
them: ``ActivityTaskStarted`` events (the attempt that finished, and the failure before
it) and the pending activities of a running workflow (attempt now, last failure).
``damfleet status`` then shows "waiting: storage unreachable (attempt 4)".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflow.v1 import PendingActivityInfo

from damfleet.errors import all_error_classes
from damfleet.stages import STAGE_OF_ACTIVITY
from damfleet.v1 import pipeline_pb2

__all__ = ["StageAttempts", "apply_attempts", "stage_attempts", "waiting_reason"]

_REASONS: dict[str, str] = {}
for _cls in all_error_classes():  # parents first: a subclass sharing a type keeps its parent's words
    _REASONS.setdefault(_cls.error_type, _cls.waiting_reason)


@dataclass
class StageAttempts:
    attempts: int = 0
    last_error: str = ""
    waiting: str = ""


def _error_type(failure: Failure) -> str:
    if failure.HasField("timeout_failure_info"):
        return "Timeout"
    while failure.HasField("cause") and not failure.HasField("application_failure_info"):
        failure = failure.cause
    return failure.application_failure_info.type


def waiting_reason(failure: Failure) -> str:
    """Short words for what a retrying activity is waiting out."""
    if failure.HasField("timeout_failure_info"):
        return "worker lost (activity timed out)"
    return _REASONS.get(_error_type(failure), "retrying after an error")


def stage_attempts(
    events: Iterable[HistoryEvent], pending: Iterable[PendingActivityInfo] = ()
) -> dict[str, StageAttempts]:
    """Per stage: the most attempts any of its activities took, and the error before the last one."""
    scheduled: dict[int, str] = {}
    found: dict[str, StageAttempts] = {}

    def note(stage: str | None, attempt: int, failure: Failure | None, waiting: str = "") -> None:
        if stage is None:
            return
        entry = found.setdefault(stage, StageAttempts())
        if attempt >= entry.attempts:
            entry.attempts = attempt
            if failure is not None and failure.message:
                entry.last_error = failure.message
            entry.waiting = waiting

    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            name = scheduled.get(started.scheduled_event_id, "")
            failure = started.last_failure if started.HasField("last_failure") else None
            note(STAGE_OF_ACTIVITY.get(name), started.attempt, failure)
    for activity in pending:
        failure = activity.last_failure if activity.HasField("last_failure") else None
        waiting = ""
        if failure is not None and activity.attempt > 1:
            waiting = waiting_reason(failure)
            if activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED:
                waiting = f"{waiting}, retrying now"
        note(STAGE_OF_ACTIVITY.get(activity.activity_type.name), activity.attempt, failure, waiting)
    return found


def apply_attempts(result: pipeline_pb2.PipelineResult, found: dict[str, StageAttempts]) -> None:
    """Copy attempts, last error and waiting reason into the result's stages."""
    for stage, entry in found.items():
        if stage not in result.stages:
            continue
        target = result.stages[stage]
        target.attempts = entry.attempts
        target.last_error = entry.last_error[:500]
        target.waiting = entry.waiting
