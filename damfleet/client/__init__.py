"""Python client SDK for upstream services: submit assets and batches, follow and control them.

Everything is async and typed with the protobuf contracts of ``proto/damfleet/v1``::

    fleet = await FleetClient.connect()                   # settings from DAMFLEET_* variables
    handle = await fleet.submit("s3://uploads/clip.mov", title="Harbour", collection="news")
    print((await handle.status()).current_stage)
    result = await handle.wait()                          # PipelineResult, whatever the outcome
    assert result.state == common_pb2.COMPLETED

    batch = await fleet.batch(manifest="s3://inbox/2024-06.csv", collection="news")
    progress = await fleet.batch_progress(batch.workflow_id)   # total, completed, failed, percent...

``submit`` builds a :class:`PipelineRequest` and hands it to ``submit_request``, the one
call that checks a request and starts (or joins) its run; a caller holding a full request
calls ``submit_request`` itself. Batches work the same way (``batch`` builds,
``submit_batch_request`` checks and starts).

Control operations (``pause``, ``resume``, ``cancel``) on an unknown id raise
:class:`JobNotFoundError`; on a run that has already finished they raise
:class:`JobControlError` with a message saying so. Both are ``DamfleetClientError``.

Duplicate submissions: with ``dedup`` on (the default, ``DAMFLEET_JOBS_DEDUP``), the
workflow id is derived from the request (the content checksum when given, else the
source URI) within its collection and profile, so submitting the same thing twice returns
the existing run instead of starting another; the pipeline itself also links content
already ingested in the collection to the existing asset.

The package is split by what a caller does: :mod:`~damfleet.client.ids` (workflow ids),
:mod:`~damfleet.client.handles` (follow one run), :mod:`~damfleet.client.jobs` (asset runs
and their control), :mod:`~damfleet.client.batches`, :mod:`~damfleet.client.schedules`,
:mod:`~damfleet.client.queues` and :mod:`~damfleet.client.fixity` (audits). Import from
here: the names below are the SDK.
"""

from __future__ import annotations

from damfleet.client.errors import DamfleetClientError, JobControlError, JobNotFoundError
from damfleet.client.fixity import audit_report, audit_request, create_audit_schedule, start_audit
from damfleet.client.fleet import FleetClient
from damfleet.client.handles import AssetHandle, BatchHandle
from damfleet.client.ids import batch_workflow_id, new_workflow_id, request_workflow_id
from damfleet.client.queues import QueueInfo
from damfleet.client.schedules import ScheduleInfo

__all__ = [
    "AssetHandle",
    "BatchHandle",
    "DamfleetClientError",
    "FleetClient",
    "JobControlError",
    "JobNotFoundError",
    "QueueInfo",
    "ScheduleInfo",
    "audit_report",
    "audit_request",
    "batch_workflow_id",
    "create_audit_schedule",
    "new_workflow_id",
    "request_workflow_id",
    "start_audit",
]

