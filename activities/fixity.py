"""Fixity activities (task queue ``q-ingest``): thin Temporal wrappers over :mod:`damfleet.fixity`.

They run on the ingest pool because that pool already streams and hashes originals with
the storage credentials. One :class:`~damfleet.fixity.ByteThrottle` per worker process
holds every audit on that worker to ``DAMFLEET_FIXITY_BYTES_PER_SECOND`` together, so an
audit never starves uploads of disk or network bandwidth, however many pages run at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import Counter
from temporalio import activity

from activities.common import Heartbeater, StageContext, scratch_dir, translate_errors
from damfleet import fixity
from damfleet.policies import ActivityName
from damfleet.v1 import fixity_pb2

__all__ = ["FIXITY_BYTES", "FIXITY_FAILURES", "FixityActivities", "build_activities"]

log = logging.getLogger(__name__)

FIXITY_FAILURES = Counter(
    "damfleet_fixity_failures_total",
    "Stored originals a fixity audit found damaged, by finding (MISMATCH, MISSING, UNREADABLE) and repair",
    ["status", "repair"],
)
FIXITY_BYTES = Counter("damfleet_fixity_bytes_total", "Bytes of stored originals re-hashed by fixity audits")


class FixityActivities:
    """Audit planning, page verification and reports; one instance per worker process."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.throttle = fixity.ByteThrottle(ctx.settings.fixity.bytes_per_second)

    @activity.defn(name=ActivityName.PLAN_FIXITY_AUDIT)
    @translate_errors
    async def plan_fixity_audit(self, request: fixity_pb2.FixityPlanInput) -> fixity_pb2.FixityPlan:
        """List the assets in scope into stored pages, keeping this audit's sampling bucket."""
        async with Heartbeater() as beat:
            plan = await fixity.plan_audit(request, storage=self.ctx.storage, settings=self.ctx.settings,
                                           progress=lambda listed: beat.update({"listed": listed}))
        log.info("fixity audit %s: %d of %d assets (bucket %d of %d) in %d pages", request.audit_id,
                 plan.total_assets, plan.listed_assets, plan.bucket, plan.buckets, plan.page_count)
        return plan

    @activity.defn(name=ActivityName.VERIFY_FIXITY_PAGE)
    @translate_errors
    async def verify_fixity_page(self, request: fixity_pb2.FixityPageInput) -> fixity_pb2.FixityPageResult:
        """Re-hash one page of originals (throttled, heartbeating bytes done); repair when asked.

        A retry resumes after the page's last checkpoint (stored every 30 s). Whatever it
        repeats is safe: checks are read-only, a restore is re-verified, and a quarantined
        original is found missing and already marked.
        """
        settings = self.ctx.settings
        sources = fixity.repair_sources(settings, self.ctx.storage) if request.repair else []

        def failed(finding: fixity_pb2.FixityFinding) -> None:
            FIXITY_FAILURES.labels(fixity.status_name(finding.status),
                                   fixity_pb2.FixityRepair.Name(finding.repair).removeprefix("FIXITY_REPAIR_")).inc()

        try:
            async with Heartbeater() as beat, scratch_dir(settings, f"fixity-{request.page}") as scratch:
                def progress(index: int, done: int, total: int) -> None:
                    beat.update({"page": request.page, "asset": index, "bytes_done": done, "bytes_total": total})

                result = await fixity.verify_page(request, storage=self.ctx.storage, throttle=self.throttle,
                                                  sources=sources, scratch=scratch, progress=progress,
                                                  on_failure=failed)
        finally:
            await fixity.close_sources(sources)
        FIXITY_BYTES.inc(result.counts.bytes_read)
        log.info("fixity audit %s page %d: %d checked, %d ok, %d damaged, %d repaired", request.audit_id,
                 request.page, result.counts.checked, result.counts.ok, len(result.failures), result.counts.repaired)
        return result

    @activity.defn(name=ActivityName.WRITE_FIXITY_REPORT)
    @translate_errors
    async def write_fixity_report(self, request: fixity_pb2.FixityReportInput) -> str:
        """Merge the page findings into report.json; returns its URI."""
        async with Heartbeater():
            return await fixity.write_report(request, storage=self.ctx.storage)


def build_activities(ctx: StageContext) -> list[Callable[..., Any]]:
    acts = FixityActivities(ctx)
    return [acts.plan_fixity_audit, acts.verify_fixity_page, acts.write_fixity_report]
