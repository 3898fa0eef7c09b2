"""Live progress of a running stage, read from its activity's last heartbeat.

A workflow cannot see its activities' heartbeats, so the ``status`` query alone shows a
running stage as "running, 0 s". The server keeps each pending activity's latest
heartbeat details, though, and ``DescribeWorkflowExecution`` returns them: the client
merges them into the status (:meth:`damfleet.client.FleetClient.status`), so ``status``,
``watch`` and the demo show the transcode's real percentage and current rendition.

The functions here are pure: they turn the heartbeat records the stages write
(:mod:`damfleet.transcode.stage`, :mod:`damfleet.ai.enrich`) into a percentage and a
short description, and fill a ``StageResult``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from damfleet.stages import STAGES
from damfleet.v1 import stages_pb2

__all__ = ["STAGE_OF_ACTIVITY", "LiveProgress", "apply_live_progress", "progress_from_details"]

#: Which pipeline stage an activity type belongs to (only the ones that report progress).
STAGE_OF_ACTIVITY: dict[str, str] = {s.progress_activity: s.name for s in STAGES if s.progress_activity}


@dataclass(frozen=True)
class LiveProgress:
    """What a running activity has reported: percent (None when it cannot say) and what it does now."""

    percent: float | None = None
    detail: str = ""


def progress_from_details(details: Any) -> LiveProgress:
    """A heartbeat record as percent + detail; anything unrecognised gives an empty result."""
    if isinstance(details, stages_pb2.TranscodeHeartbeat):
        current = details.current
        if current:
            current = f"{current} {details.rendition_percent:.0f}%"
        return LiveProgress(max(0.0, min(100.0, details.percent)), current)
    if not isinstance(details, dict):
        return LiveProgress()
    if isinstance(details.get("percent"), int | float):
        current = str(details.get("current") or "")
        if current and isinstance(details.get("rendition_percent"), int | float):
            current = f"{current} {details['rendition_percent']:.0f}%"
        return LiveProgress(max(0.0, min(100.0, float(details["percent"]))), current)
    done, total = details.get("transcribed_seconds"), details.get("total_seconds")
    if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
        return LiveProgress(max(0.0, min(100.0, 100.0 * done / total)), str(details.get("phase") or ""))
    return LiveProgress(None, str(details.get("phase") or ""))


def apply_live_progress(result: Any, stage: str, progress: LiveProgress, *, attempt: int, now: float) -> None:
    """Fill a ``PipelineResult``'s running stage: percent, detail, attempt, seconds so far."""
    if stage not in result.stages:
        return
    entry = result.stages[stage]
    if progress.percent is not None:
        entry.percent = round(progress.percent, 1)
    if progress.detail:
        entry.detail = progress.detail
    if attempt:
        entry.attempts = attempt
    if entry.started_at and not entry.seconds:
        entry.seconds = round(max(0.0, now - entry.started_at), 1)
