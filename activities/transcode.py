"""Transcode activities (task queue ``q-transcode``): thin Temporal wrappers over :mod:`damfleet.transcode`.

The activity heartbeats the real percentage (ffmpeg's ``out_time`` against the source
duration, weighted across renditions) plus the list of finished renditions with their
stored outputs. A retry reads that list back from ``activity.info().heartbeat_details``
and resumes at the next unfinished rendition. Cancellation arrives through the
heartbeat as ``asyncio.CancelledError``: the running ffmpeg or libvips helper is killed
(process group, TERM then KILL), the current rendition's uploaded files are deleted,
scratch is removed, and the error is re-raised so Temporal records the cancel.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.common import Heartbeater, StageContext, scratch_dir, translate_errors
from damfleet.policies import ActivityName
from damfleet.transcode import stage
from damfleet.v1 import stages_pb2

__all__ = ["TranscodeActivities", "build_activities"]

log = logging.getLogger(__name__)


def _resume_details() -> stages_pb2.TranscodeHeartbeat | None:
    """The last progress record an earlier attempt heartbeated, if any."""
    details = activity.info().heartbeat_details
    return stage.as_heartbeat(details[-1]) if details else None


class TranscodeActivities:
    """Activities of the transcode pool; one instance per worker process."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx

    @activity.defn(name=ActivityName.TRANSCODE)
    @translate_errors
    async def transcode_asset(self, input: stages_pb2.TranscodeInput) -> stages_pb2.TranscodeOutput:
        """Make the profile's renditions of one asset; resumable, cancellable, heartbeating."""
        asset_id = input.asset.asset_id
        resume = _resume_details()
        async with Heartbeater() as beat, scratch_dir(self.ctx.settings, f"transcode-{asset_id}") as scratch:
            finished = len(resume.done) if resume is not None else 0

            def progress(details: stages_pb2.TranscodeHeartbeat) -> None:
                nonlocal finished
                beat.update(details)
                if len(details.done) != finished:
                    # A rendition just finished: record it now, not at the next timer beat,
                    # so a worker lost a moment later does not redo it.
                    finished = len(details.done)
                    activity.heartbeat(details)

            result = await stage.transcode_asset(
                input,
                storage=self.ctx.storage,
                settings=self.ctx.settings,
                scratch=scratch,
                progress=progress,
                resume=resume,
            )
        log.info(
            "transcoded %s: %s (%s%s)",
            asset_id,
            ", ".join(result.renditions),
            result.hw_accel,
            f", resumed {', '.join(result.resumed_renditions)}" if result.resumed_renditions else "",
        )
        return result


def build_activities(ctx: StageContext) -> list[Callable[..., Any]]:
    acts = TranscodeActivities(ctx)
    return [acts.transcode_asset]
