"""Temporal Schedules: inbox rescans (and, through :func:`interval_schedule`, fixity audits).

Every damfleet schedule is the same shape: start one workflow every interval, and skip a
turn while the previous run is still going (never two rescans or audits of one scope).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio.client import (
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError, RPCStatusCode

from damfleet.client._base import FleetBase
from damfleet.client.batches import with_job_defaults
from damfleet.client.errors import DamfleetClientError, JobNotFoundError
from damfleet.policies import WorkflowName
from damfleet.storage import normalize_uri
from damfleet.v1 import common_pb2, jobs_pb2

__all__ = ["ScheduleInfo", "SchedulesMixin", "interval_schedule"]


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule as ``damfleet schedule list`` shows it."""

    schedule_id: str
    paused: bool
    note: str
    next_action_times: list[str]
    recent_actions: int


def interval_schedule(
    workflow: str, arg: Any, *, workflow_id: str, task_queue: str, every: timedelta, paused: bool, note: str,
) -> Schedule:
    """A schedule starting ``workflow(arg)`` every ``every``; a run still going when the next
    is due makes the schedule skip that turn."""
    return Schedule(
        action=ScheduleActionStartWorkflow(workflow, arg, id=workflow_id, task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(paused=paused, note=note),
    )


class SchedulesMixin(FleetBase):
    """Create, list, pause and delete schedules."""

    async def create_rescan_schedule(
        self,
        schedule_id: str,
        prefix: str,
        *,
        every: timedelta,
        profile: str = "",
        collection: str = "",
        tenant: str = "",
        priority: int = 0,
        settle_seconds: float = 30.0,
        dedup: bool | None = None,
        task_queue: str | None = None,
        paused: bool = False,
    ) -> str:
        """A Temporal Schedule that rescans an inbox prefix every ``every`` and batches new objects."""
        source = normalize_uri(prefix)
        if not source.endswith("/"):
            source += "/"
        template = with_job_defaults(jobs_pb2.BatchRequest(
            profile=profile,
            metadata=common_pb2.AssetMetadata(collection=collection, tenant=tenant),
            priority=priority,
            dedup=self.settings.jobs.dedup if dedup is None else dedup,
        ), self.settings)
        from damfleet.catalog import ledger_uri_for
        from damfleet.storage import Storage

        ledger = ledger_uri_for(Storage({}, self.settings.storage_root), source)
        request = jobs_pb2.RescanRequest(
            source_prefix=source, batch=template, settle_seconds=settle_seconds, ledger_uri=ledger
        )
        await self.client.create_schedule(
            schedule_id,
            interval_schedule(
                WorkflowName.RESCAN_INBOX, request, workflow_id=f"rescan-{schedule_id}",
                task_queue=task_queue or self.pipeline_queue, every=every, paused=paused,
                note=f"rescan {source} every {every}",
            ),
        )
        return schedule_id

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Every schedule in the namespace with its paused flag and next run times."""
        out: list[ScheduleInfo] = []
        async for entry in await self.client.list_schedules():
            info = entry.info
            state = entry.schedule.state if entry.schedule else None
            out.append(
                ScheduleInfo(
                    schedule_id=entry.id,
                    paused=bool(state and state.paused),
                    note=(state.note if state else "") or "",
                    next_action_times=[t.isoformat() for t in (info.next_action_times if info else [])][:3],
                    recent_actions=len(info.recent_actions) if info else 0,
                )
            )
        return out

    async def pause_schedule(self, schedule_id: str, *, unpause: bool = False, note: str = "") -> None:
        """Pause (or unpause) a schedule; runs already started are not affected."""
        handle = self.client.get_schedule_handle(schedule_id)
        try:
            if unpause:
                await handle.unpause(note=note or "unpaused from damfleet")
            else:
                await handle.pause(note=note or "paused from damfleet")
        except RPCError as err:
            raise _schedule_error(schedule_id, err) from err

    async def delete_schedule(self, schedule_id: str) -> None:
        """Delete a schedule; runs already started are not affected."""
        try:
            await self.client.get_schedule_handle(schedule_id).delete()
        except RPCError as err:
            raise _schedule_error(schedule_id, err) from err


def _schedule_error(schedule_id: str, err: RPCError) -> DamfleetClientError:
    if err.status == RPCStatusCode.NOT_FOUND:
        return JobNotFoundError(f"no schedule {schedule_id!r}")
    return DamfleetClientError(f"schedule {schedule_id}: {err.message}")
