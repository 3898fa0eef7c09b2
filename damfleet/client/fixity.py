"""Client side of fixity audits: start one, put them on a Temporal Schedule, read a report.

    fleet = await FleetClient.connect()
    handle = await start_audit(fleet, audit_request(fleet.settings, collection="news"))
    result = await handle.result()               # FixityAuditResult: counts, failures, report_uri
    await create_audit_schedule(fleet, "fixity-weekly", audit_request(fleet.settings, sample_percent=5),
                                every=timedelta(days=7))
    report = await audit_report(fleet, result.audit_id)   # the stored report.json as a dict

Functions over a :class:`~damfleet.client.FleetClient` rather than methods on it: the
fixity feature stays one module, and the client stays the same for a fleet without audits.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from damfleet import fixity
from damfleet.client.errors import JobNotFoundError
from damfleet.client.schedules import interval_schedule
from damfleet.errors import SourceNotFoundError
from damfleet.policies import WorkflowName
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.v1 import fixity_pb2

if TYPE_CHECKING:
    from damfleet.client import FleetClient

__all__ = ["audit_report", "audit_request", "create_audit_schedule", "start_audit"]


def audit_request(
    settings: Settings,
    *,
    prefix: str = "",
    collection: str = "",
    sample_percent: float | None = None,
    bucket: int | None = None,
    repair: bool = True,
    include_renditions: bool | None = None,
) -> fixity_pb2.FixityAuditRequest:
    """An audit request with paging and window defaults from ``DAMFLEET_FIXITY_*``.

    ``sample_percent`` 5 checks one of 20 stable buckets per audit (every asset once in
    20 audits); ``None`` or 100 checks everything. ``repair`` False only reports.
    ``include_renditions`` (default ``DAMFLEET_FIXITY_INCLUDE_RENDITIONS``) also re-hashes
    renditions against the sha256 in their object metadata; they are reported, not repaired.
    """
    f = settings.fixity
    request = fixity_pb2.FixityAuditRequest(
        prefix=prefix,
        collection=collection,
        sample_buckets=fixity.buckets_for_percent(sample_percent) if sample_percent is not None else 1,
        repair=repair,
        page_size=f.page_size,
        max_in_flight=f.max_in_flight,
        continue_as_new_after=f.continue_as_new_after,
        include_renditions=f.include_renditions if include_renditions is None else include_renditions,
    )
    if bucket is not None:
        request.bucket = bucket
    return request


async def start_audit(
    fleet: FleetClient, request: fixity_pb2.FixityAuditRequest, *, audit_id: str | None = None,
    task_queue: str | None = None,
) -> WorkflowHandle[Any, fixity_pb2.FixityAuditResult]:
    """Start a FixityAudit now; its id is also the report's name."""
    return await fleet.client.start_workflow(
        WorkflowName.FIXITY_AUDIT,
        request,
        id=audit_id or f"fixity-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue or fleet.pipeline_queue,
        result_type=fixity_pb2.FixityAuditResult,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )


async def create_audit_schedule(
    fleet: FleetClient,
    schedule_id: str,
    request: fixity_pb2.FixityAuditRequest,
    *,
    every: timedelta,
    paused: bool = False,
    task_queue: str | None = None,
) -> str:
    """A Temporal Schedule starting a FixityAudit every ``every``; an audit still running
    when the next is due makes the schedule skip that one (never two audits of one scope)."""
    buckets = max(1, request.sample_buckets)
    cycle = every * buckets
    await fleet.client.create_schedule(
        schedule_id,
        interval_schedule(
            WorkflowName.FIXITY_AUDIT, request, workflow_id=f"fixity-{schedule_id}",
            task_queue=task_queue or fleet.pipeline_queue, every=every, paused=paused,
            note=f"fixity audit of {request.prefix or 'all assets'} every {every}, "
                 f"1/{buckets} per run: every asset within {cycle}",
        ),
    )
    return schedule_id


async def audit_report(fleet: FleetClient, audit_id: str) -> dict[str, Any]:
    """The stored report of a finished audit; for one still running, its progress so far."""
    storage = Storage.from_settings(fleet.settings)
    try:
        return await fixity.read_report(storage, audit_id)
    except SourceNotFoundError:
        pass
    finally:
        await storage.aclose()
    from google.protobuf import json_format

    try:
        await fleet.client.get_workflow_handle(audit_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise JobNotFoundError(f"no fixity audit {audit_id!r}") from None
        raise
    try:
        progress = await fleet.client.get_workflow_handle(audit_id).query(
            "progress", result_type=fixity_pb2.FixityAuditResult)
    except Exception as exc:  # noqa: BLE001 - a closed run without a report (failed or terminated)
        raise JobNotFoundError(f"audit {audit_id} has no report and cannot be queried: {exc}") from None
    data = json_format.MessageToDict(progress, preserving_proto_field_name=True)
    data["counts"] = fixity.counts_dict(progress.counts)
    data["failures"] = [fixity.finding_dict(f) for f in progress.failed]
    data["failure_count"] = progress.failures
    data["total_assets"] = progress.total_assets
    data.pop("failed", None)
    data["finished"] = False
    return data
