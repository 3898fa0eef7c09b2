"""Ingest activities (task queue ``q-ingest``): thin Temporal wrappers over :mod:`damfleet.ingest`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.common import Heartbeater, StageContext, scratch_dir, translate_errors
from damfleet import catalog, ingest
from damfleet.policies import ActivityName
from damfleet.v1 import jobs_pb2, stages_pb2

__all__ = ["IngestActivities", "build_activities"]

log = logging.getLogger(__name__)


class IngestActivities:
    """Activities of the ingest pool; one instance per worker process shares storage clients."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx

    @activity.defn(name=ActivityName.INGEST)
    @translate_errors
    async def ingest_asset(self, request: stages_pb2.IngestInput) -> stages_pb2.IngestOutput:
        """Fetch, verify, identify and store one source. Bad input fails non-retryably.

        With ``claim_content`` (dedup) it also claims the content for its collection, so
        the run needs no separate claim activity (see :func:`damfleet.catalog.claim_while_ingesting`).
        """
        async with Heartbeater() as beat, scratch_dir(self.ctx.settings, f"ingest-{request.asset_id}") as scratch:
            def progress(phase: str, done: int, total: int) -> None:
                beat.update({"phase": phase, "bytes_done": done, "bytes_total": total})

            result = await ingest.ingest_asset(
                request, storage=self.ctx.storage, settings=self.ctx.settings, scratch=scratch, progress=progress
            )
            if request.claim_content:
                await catalog.claim_while_ingesting(result, activity.info().workflow_id, storage=self.ctx.storage)
        log.info("ingested %s as %s (%s, %d bytes)", request.source_uri, request.asset_id,
                 result.asset.media.mime_type, result.asset.size_bytes)
        return result

    @activity.defn(name=ActivityName.DISCARD_ASSET)
    @translate_errors
    async def discard_asset(self, asset_id: str) -> int:
        """Remove everything stored under an asset's prefix (cancelled or failed runs)."""
        async with Heartbeater():
            removed = await self.ctx.storage.delete_prefix(self.ctx.storage.keys(asset_id).prefix)
        log.info("discarded %d objects of asset %s", removed, asset_id)
        return removed


    @activity.defn(name=ActivityName.DISCARD_FAILED_ASSET)
    @translate_errors
    async def discard_failed_asset(self, request: jobs_pb2.DiscardFailedInput) -> jobs_pb2.DiscardFailedOutput:
        """A failed run leaves nothing behind; its original goes to quarantine/ when the setting asks."""
        async with Heartbeater():
            removed, kept = await ingest.discard_failed_asset(
                self.ctx.storage, request.asset_id, reason=request.reason,
                quarantine=self.ctx.settings.jobs.quarantine_failed, now=time.time(),
            )
        log.info("discarded %d objects of failed asset %s%s", removed, request.asset_id,
                 f", original quarantined at {kept[0].uri}" if kept else "")
        return jobs_pb2.DiscardFailedOutput(removed=removed, quarantined=kept)


def build_activities(ctx: StageContext) -> list[Callable[..., Any]]:
    acts = IngestActivities(ctx)
    return [acts.ingest_asset, acts.discard_asset, acts.discard_failed_asset]
