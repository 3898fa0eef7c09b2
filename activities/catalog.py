"""Catalog activities (task queue ``q-ingest``): batch manifests, inbox listings, content dedup.

Thin Temporal wrappers over :mod:`damfleet.catalog`. They run on the ingest pool because
they need the same storage access and are short, I/O-bound bookkeeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.common import Heartbeater, StageContext, scratch_dir, translate_errors
from damfleet import catalog
from damfleet.policies import ActivityName
from damfleet.v1 import jobs_pb2

__all__ = ["CatalogActivities", "build_activities"]

log = logging.getLogger(__name__)


class CatalogActivities:
    """Batch and dedup bookkeeping; one instance per worker process shares storage clients."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx

    @activity.defn(name=ActivityName.READ_MANIFEST)
    @translate_errors
    async def read_manifest(self, request: jobs_pb2.PrepareBatchInput) -> jobs_pb2.PreparedBatch:
        """Parse a CSV/XLSX manifest into stored pages; bad rows are reported with line numbers."""
        async with Heartbeater() as beat, scratch_dir(self.ctx.settings, f"manifest-{request.batch_id}") as scratch:
            prepared = await catalog.prepare_manifest(
                request, storage=self.ctx.storage, settings=self.ctx.settings, scratch=scratch,
                progress=lambda rows: beat.update({"rows": rows}),
            )
        log.info("manifest %s: %d rows in %d pages, %d bad rows", request.manifest_uri, prepared.total_rows,
                 prepared.page_count, prepared.bad_row_count)
        return prepared

    @activity.defn(name=ActivityName.LIST_NEW_SOURCES)
    @translate_errors
    async def list_new_sources(self, request: jobs_pb2.PrepareBatchInput) -> jobs_pb2.PreparedBatch:
        """Page the objects under a prefix that the inbox ledger has not seen yet."""
        async with Heartbeater() as beat:
            prepared = await catalog.list_new_sources(
                request, storage=self.ctx.storage, settings=self.ctx.settings,
                progress=lambda listed: beat.update({"listed": listed}),
            )
        log.info("prefix %s: %d new sources", request.source_prefix, prepared.total_rows)
        return prepared

    @activity.defn(name=ActivityName.READ_MANIFEST_PAGE)
    @translate_errors
    async def read_manifest_page(self, request: jobs_pb2.ManifestPageInput) -> jobs_pb2.ManifestPage:
        """One page of rows of a prepared batch."""
        async with Heartbeater():
            return await catalog.read_page(request, storage=self.ctx.storage)

    @activity.defn(name=ActivityName.CLAIM_CONTENT)
    @translate_errors
    async def claim_content(self, request: jobs_pb2.ClaimContentInput) -> jobs_pb2.ClaimContentOutput:
        """Dedup: claim this content for the asset's collection, or name the asset that has it."""
        return await catalog.claim_content(request, storage=self.ctx.storage)


    @activity.defn(name=ActivityName.RELEASE_CONTENT)
    @translate_errors
    async def release_content(self, request: jobs_pb2.ClaimContentInput) -> bool:
        """Dedup: a failed or cancelled run gives up its claim on the content."""
        return await catalog.release_content(request, storage=self.ctx.storage)


def build_activities(ctx: StageContext) -> list[Callable[..., Any]]:
    acts = CatalogActivities(ctx)
    return [acts.read_manifest, acts.list_new_sources, acts.read_manifest_page, acts.claim_content,
            acts.release_content]
