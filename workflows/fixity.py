"""FixityAudit: re-verify stored originals against their ingest sha256, on a Temporal Schedule.

A first activity lists the assets in scope (a prefix, a collection) into pages stored next
to the audit, keeping one sampling bucket of ``sample_buckets`` (so every asset is checked
once per cycle of that many audits). The workflow then verifies one page per activity on
the ingest queue, ``max_in_flight`` pages at a time; each page activity streams its
originals through the worker's byte-rate throttle, heartbeats its progress, stores the
page's findings, and repairs or quarantines damage when asked. A last activity merges
the findings into ``report.json`` and advances the cycle.

Scale: the workflow keeps counts and the first failures only. After
``continue_as_new_after`` pages (or when the server suggests it) it lets the window drain
and continues as new with its state, so each run's history stays a few thousand events
(a 100,000-asset audit at 500 assets per page is 200 pages).

The ``DamfleetFixityFailures`` search attribute carries the damage found so far, and the
``progress`` query answers counts at any time.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from damfleet import search_attributes as sa
    from damfleet.policies import ActivityName, WorkflowName, lane_of, policy_for
    from damfleet.v1 import common_pb2, fixity_pb2
    from workflows.common import failure_message

__all__ = [
    "DEFAULT_CONTINUE_AS_NEW_AFTER",
    "DEFAULT_MAX_IN_FLIGHT",
    "FAILURES_KEPT",
    "FixityAudit",
    "failure_count",
]

DEFAULT_MAX_IN_FLIGHT = 4
#: ~6 history events per page: 100 pages keep a run near 700 events.
DEFAULT_CONTINUE_AS_NEW_AFTER = 100
#: Failures listed in the workflow result; the stored report lists every one.
FAILURES_KEPT = 100


def failure_count(counts: fixity_pb2.FixityCounts) -> int:
    """Damaged originals found (repaired or not): what an alert fires on."""
    return counts.mismatch + counts.missing + counts.unreadable


def _add_counts(total: fixity_pb2.FixityCounts, page: fixity_pb2.FixityCounts) -> None:
    for field in fixity_pb2.FixityCounts.DESCRIPTOR.fields:
        setattr(total, field.name, getattr(total, field.name) + getattr(page, field.name))


@workflow.defn(name=WorkflowName.FIXITY_AUDIT)
class FixityAudit:
    @workflow.init
    def __init__(self, request: fixity_pb2.FixityAuditRequest) -> None:
        self._state = fixity_pb2.FixityAuditState()
        self._state.CopyFrom(request.state)
        self._running = 0
        self._errors: list[str] = []
        self._shown_failures = -1
        self._shown_state = -1
        self._report_uri = ""

    @workflow.query(name="progress")
    def progress(self) -> fixity_pb2.FixityAuditResult:
        """Counts over every continue-as-new run so far, and the first failures."""
        return self._result(0.0)

    @workflow.run
    async def run(self, request: fixity_pb2.FixityAuditRequest) -> fixity_pb2.FixityAuditResult:
        try:
            return await self._run(request)
        except asyncio.CancelledError:
            # Page activities in flight were cancelled through their heartbeats; their
            # checkpoints stay, and nothing else needs undoing (checks are read-only).
            self._upsert(common_pb2.CANCELLED)
            raise

    async def _run(self, request: fixity_pb2.FixityAuditRequest) -> fixity_pb2.FixityAuditResult:
        state = self._state
        if not state.started_at:
            state.started_at = workflow.now().timestamp()
        self._upsert(common_pb2.RUNNING)
        if not state.planned:
            plan_input = fixity_pb2.FixityPlanInput(
                audit_id=workflow.info().workflow_id, prefix=request.prefix, sample_buckets=request.sample_buckets,
                page_size=request.page_size, collection=request.collection,
            )
            if request.HasField("bucket"):
                plan_input.bucket = request.bucket
            try:
                state.plan.CopyFrom(await self._activity(ActivityName.PLAN_FIXITY_AUDIT, plan_input,
                                                         fixity_pb2.FixityPlan))
            except ActivityError as err:
                self._upsert(common_pb2.FAILED)
                message, error_type = failure_message(err)
                raise ApplicationError(f"fixity audit cannot list its assets: {message}", type=error_type,
                                       non_retryable=True) from err
            state.planned = True

        await self._verify_pages(request)
        if self._errors:
            self._upsert(common_pb2.FAILED)
            raise ApplicationError(f"fixity audit incomplete: {'; '.join(self._errors[:5])}", type="FixityPageFailed",
                                   non_retryable=True)
        if state.next_page < state.plan.page_count:
            await workflow.wait_condition(workflow.all_handlers_finished)
            state.runs += 1
            following = fixity_pb2.FixityAuditRequest()
            following.CopyFrom(request)
            following.state.CopyFrom(state)
            workflow.continue_as_new(following)

        report = fixity_pb2.FixityReportInput(
            audit_id=workflow.info().workflow_id, plan=state.plan, counts=state.counts,
            started_at=state.started_at, runs=state.runs + 1,
        )
        report.request.CopyFrom(request)
        report.request.ClearField("state")
        self._report_uri = await self._activity(ActivityName.WRITE_FIXITY_REPORT, report, str)
        done = common_pb2.COMPLETED_WITH_ERRORS if failure_count(state.counts) else common_pb2.COMPLETED
        self._upsert(done)
        return self._result(workflow.now().timestamp() - state.started_at)

    async def _verify_pages(self, request: fixity_pb2.FixityAuditRequest) -> None:
        """A sliding window of page activities, up to this run's share of pages."""
        state = self._state
        window = request.max_in_flight or DEFAULT_MAX_IN_FLIGHT
        per_run = request.continue_as_new_after or DEFAULT_CONTINUE_AS_NEW_AFTER
        started = 0
        tasks: set[asyncio.Task[None]] = set()
        try:
            while state.next_page < state.plan.page_count and not self._errors:
                if started >= per_run or workflow.info().is_continue_as_new_suggested():
                    break
                await workflow.wait_condition(lambda: self._running < window)
                page = state.next_page
                state.next_page += 1
                started += 1
                self._running += 1
                task = asyncio.create_task(self._verify_page(request, page))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await workflow.wait_condition(lambda: self._running == 0)
        except asyncio.CancelledError:
            pending = list(tasks)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            raise

    async def _verify_page(self, request: fixity_pb2.FixityAuditRequest, page: int) -> None:
        state = self._state
        try:
            result = await self._activity(
                ActivityName.VERIFY_FIXITY_PAGE,
                fixity_pb2.FixityPageInput(
                    audit_id=workflow.info().workflow_id, pages_prefix=state.plan.pages_prefix, page=page,
                    findings_prefix=state.plan.audit_prefix + "findings/", collection=request.collection,
                    repair=request.repair, include_renditions=request.include_renditions,
                ),
                fixity_pb2.FixityPageResult,
            )
        except ActivityError as err:
            self._errors.append(f"page {page}: {failure_message(err)[0]}")
            return
        finally:
            self._running -= 1
        _add_counts(state.counts, result.counts)
        for finding in result.failures:
            if len(state.failures) < FAILURES_KEPT:
                state.failures.append(finding)
            else:
                state.failures_omitted += 1
        self._upsert(common_pb2.RUNNING)

    async def _activity(self, name: str, arg: Any, result_type: type[Any]) -> Any:
        return await workflow.execute_activity(
            name, arg, result_type=result_type,
            **policy_for(name).options(lane_of(workflow.info().task_queue)),  # type: ignore[arg-type]
        )

    def _upsert(self, state: int) -> None:
        """Upsert state and failure count only when they changed (each upsert is a history event)."""
        updates: list[Any] = []
        if state != self._shown_state:
            updates.append(sa.STATE.value_set(common_pb2.JobState.Name(state)))
            self._shown_state = state
        failures = failure_count(self._state.counts)
        if failures != self._shown_failures:
            updates.append(sa.FIXITY_FAILURES.value_set(failures))
            self._shown_failures = failures
        if updates:
            workflow.upsert_search_attributes(updates)

    def _result(self, seconds: float) -> fixity_pb2.FixityAuditResult:
        state = self._state
        return fixity_pb2.FixityAuditResult(
            audit_id=workflow.info().workflow_id,
            counts=state.counts,
            failures=failure_count(state.counts),
            failed=state.failures,
            failures_omitted=state.failures_omitted,
            report_uri=self._report_uri,
            bucket=state.plan.bucket,
            buckets=state.plan.buckets,
            runs=state.runs + 1,
            total_assets=state.plan.total_assets,
            seconds=seconds,
        )
