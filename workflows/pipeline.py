"""AssetPipeline: one asset through ingest, transcode, AI enrichment and distribution.

Deterministic orchestration only. Each stage is an activity called by name on its own
task queue with that queue's timeouts and retry policy from :mod:`damfleet.policies`,
so this worker imports no media library. State a user cares about (job state, current
stage, per-stage timing and results) is kept in a ``PipelineResult`` that the
``status`` query returns at any time and the run returns at the end.

Outcomes:
- FAILED: a required stage (ingest, transcode) failed; the run fails with that message.
- COMPLETED_WITH_ERRORS: renditions exist, but enrichment or some deliveries failed;
  ``failures`` lists them, and deliveries can be retried without re-running the rest.
- CANCELLED: the running activities are cancelled through their heartbeats, waited for,
  and everything stored for the asset is discarded.

Transcode and AI enrichment run side by side (enrichment reads the original, not the
renditions); distribution starts once both have ended. ``current_stage`` is then the
earliest running stage in stage order: transcode while it runs, then ai_enrich.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from damfleet import search_attributes as sa
    from damfleet import stages
    from damfleet.ai.plan import plan_enrichment, skip_reason
    from damfleet.policies import ActivityName, WorkflowName, lane_of, policy_for, transcode_queue
    from damfleet.profiles import Profile, get_profile
    from damfleet.stages import StageName
    from damfleet.v1 import common_pb2, jobs_pb2, pipeline_pb2, stages_pb2
    from damfleet.validation import dedup_enabled, request_problem
    from workflows.common import deliver_all, deliver_per_target, failure_message, notify

__all__ = ["STAGES", "AssetPipeline", "asset_id_for", "failure_message"]

#: Stage names in order (:data:`damfleet.stages.STAGES`): the keys of ``PipelineResult.stages``.
STAGES = stages.STAGE_NAMES
#: Stages whose outputs go to delivery targets unless a profile names roles.
_DELIVERED_STAGES = tuple(stage.name for stage in stages.STAGES if stage.delivers)

M = TypeVar("M")

#: The generation from which ingest claims the content for dedup (``IngestInput.claim_content``),
#: so its runs schedule no claim activity; new with that generation, so never a marker of its own.
INGEST_CLAIMS_CONTENT = "ingest-claims-content"
#: Generation markers, oldest first. A run started by this code records the newest one (in
#: its first workflow task) and no other: every ``workflow.patched`` call records a marker and,
#: through the SDK, an upsert of ``TemporalChangeVersion``, two history events and a visibility
#: write each, and a marker recorded after the first task sits on the asset's critical path.
#: A run with a generation's marker takes the new branch of every patch folded into that
#: generation or an older one (:meth:`AssetPipeline._patched`) without recording it; runs
#: started before replay as they were recorded. A later change adds its own patch (and a
#: later wave folds such patches into a new generation, appended here).
GENERATIONS: tuple[str, ...] = (
    "one-marker-one-upsert-per-task",
    # Issue 11: ingest claims the content for dedup (no claim activity), and the two changes
    # that had their own markers since: enrichment beside transcode, images on the light pool.
    INGEST_CLAIMS_CONTENT,
)
#: The marker a run started by this code records.
CURRENT_PATCH = GENERATIONS[-1]
#: AI enrichment runs beside transcode (both scheduled in one workflow task) instead of after
#: it. Runs of the first generation recorded it as their own marker where they took it.
ENRICH_BESIDE_TRANSCODE = "enrich-beside-transcode"
#: Images go to the transcode stage's light pool; first-generation runs recorded this marker.
TRANSCODE_LIGHT_QUEUE = "transcode-light-queue"
#: Each folded patch and the generation that folded it: a run of that generation or a later
#: one took its new branch. A later change is not here: it calls ``workflow.patched`` itself.
FOLDED_PATCHES: dict[str, str] = {
    **dict.fromkeys(("pause-pending-state", "dedup-by-default", "transcode-renditions-from-workflow",
                     "deliveries-per-target", "discard-failed-runs"), GENERATIONS[0]),
    **dict.fromkeys((ENRICH_BESIDE_TRANSCODE, TRANSCODE_LIGHT_QUEUE), GENERATIONS[1]),
}

_KIND_NAMES = {
    common_pb2.MEDIA_KIND_IMAGE: "image",
    common_pb2.MEDIA_KIND_VIDEO: "video",
    common_pb2.MEDIA_KIND_AUDIO: "audio",
}


def _reported_attempt(output: Any) -> int:
    """The attempt a stage activity's output reports (0: none). Delivery receipts carry
    theirs as ``attempts``; a batch of them, the highest."""
    if isinstance(output, stages_pb2.DeliverBatchOutput):
        return max((receipt.attempts for receipt in output.receipts), default=0)
    if isinstance(output, stages_pb2.DeliveryReceipt):
        return output.attempts
    return int(getattr(output, "attempt", 0))


def asset_id_for(workflow_id: str) -> str:
    """A stable asset id derived from the workflow id (same id on every replay and retry)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"damfleet:{workflow_id}").hex


@workflow.defn(name=WorkflowName.ASSET_PIPELINE)
class AssetPipeline:
    @workflow.init
    def __init__(self, request: pipeline_pb2.PipelineRequest) -> None:
        self._result = pipeline_pb2.PipelineResult(
            workflow_id=workflow.info().workflow_id,
            state=common_pb2.PENDING,
            profile=request.profile or "default",
        )
        for stage in STAGES:
            self._result.stages[stage].CopyFrom(
                pipeline_pb2.StageResult(stage=stage, status=common_pb2.STAGE_STATUS_PENDING)
            )
        self._pause_requested = False
        self._state_before_pause: int = common_pb2.JOB_STATE_UNSPECIFIED
        self._counted = False
        self._priority = Priority(priority_key=request.priority) if request.priority else None
        self._lane = lane_of(workflow.info().task_queue)
        #: Search-attribute updates made in this workflow task and not yet sent (see _upsert).
        self._pending_upserts: dict[str, Any] = {}
        #: Every stage activity so far reported succeeding on its first attempt (_note_attempt).
        self._first_attempts_only = True
        #: Index in GENERATIONS of the marker this run has (-1: none); set in its first task.
        self._generation_index: int | None = None

    # ---- queries and updates ----------------------------------------------------------

    @workflow.query(name="status")
    def status(self) -> pipeline_pb2.PipelineResult:
        """Job state, current stage, per-stage timing and results so far."""
        return self._result

    @workflow.update(name="pause")
    async def pause(self) -> str:
        """Finish the running activities, then start nothing new until resumed.

        While they still run the run shows PAUSE_PENDING, so nobody reads RUNNING as "the
        pause did not work"; it becomes PAUSED when the last of them ends (transcode and
        enrichment, which run side by side, both finish before distribution is held).
        """
        self._request_pause(True)
        return common_pb2.JobState.Name(self._result.state)

    @pause.validator
    def _validate_pause(self) -> None:
        if self._is_finished():
            raise ApplicationError(f"run already {common_pb2.JobState.Name(self._result.state)}; nothing to pause")

    @workflow.update(name="resume")
    async def resume(self) -> str:
        self._request_pause(False)
        return common_pb2.JobState.Name(self._result.state)

    @resume.validator
    def _validate_resume(self) -> None:
        if self._is_finished():
            raise ApplicationError(f"run already {common_pb2.JobState.Name(self._result.state)}; nothing to resume")

    @workflow.signal(name="set_paused")
    def set_paused(self, paused: bool) -> None:
        """Pause or resume on behalf of a parent batch: workflows can signal each other, not
        send updates, so BatchIngest's pause/resume reaches its running children this way."""
        if not self._is_finished():
            self._request_pause(paused)

    def _request_pause(self, paused: bool) -> None:
        self._pause_requested = paused
        # Showing PAUSE_PENDING upserts a search attribute (a command): runs started before
        # that state existed replay without it (tests/workflows/test_replay.py).
        if not self._patched("pause-pending-state"):
            return
        state = self._result.state
        if paused and state in (common_pb2.VALIDATING, common_pb2.RUNNING):
            self._state_before_pause = state
            self._set_state(common_pb2.PAUSE_PENDING)
        elif not paused and state == common_pb2.PAUSE_PENDING:
            self._set_state(self._state_before_pause)

    # ---- the run ------------------------------------------------------------------------

    @workflow.run
    async def run(self, request: pipeline_pb2.PipelineRequest) -> pipeline_pb2.PipelineResult:
        # The client refuses these before starting; a run started from the Temporal CLI
        # or UI gets the same check and the same words, and no stage is blamed.
        self._since(CURRENT_PATCH)  # first, so the first workflow task records the marker
        problem = request_problem(request)
        if problem:
            return self._reject(problem)
        profile = get_profile(request.profile)
        asset_id = request.asset_id or asset_id_for(workflow.info().workflow_id)
        self._result.asset_id = asset_id
        workflow.logger.info("pipeline started for %s (profile %s)", request.source_uri.rsplit("/", 1)[-1],
                             profile.name, extra={"asset_id": asset_id})
        self._upsert(
            sa.PROFILE.value_set(profile.name),
            sa.COLLECTION.value_set(request.metadata.collection),
            sa.TENANT.value_set(request.metadata.tenant),
        )
        try:
            return await self._run_stages(request, profile, asset_id)
        except asyncio.CancelledError:
            await self._cancelled(asset_id)
            raise

    async def _run_stages(
        self, request: pipeline_pb2.PipelineRequest, profile: Profile, asset_id: str
    ) -> pipeline_pb2.PipelineResult:
        # Ingest: required. Bad input fails the run here, before anything is stored.
        ingest_input = stages_pb2.IngestInput(
            asset_id=asset_id,
            source_uri=request.source_uri,
            expected_sha256=request.expected_sha256,
            profile=profile.name,
            metadata=request.metadata,
            # Dedup's claim made by ingest itself: one task hop less than a claim activity.
            # Evaluated only in runs of that generation (a folded patch: no marker, no call).
            claim_content=self._since(INGEST_CLAIMS_CONTENT) and dedup_enabled(request),
        )
        try:
            ingested = await self._stage(
                StageName.INGEST, common_pb2.VALIDATING, ActivityName.INGEST, ingest_input, stages_pb2.IngestOutput
            )
        except ActivityError as err:
            await self._discard_failed(asset_id, failure_message(err)[0])
            return self._fail(StageName.INGEST, *failure_message(err))
        asset = ingested.asset
        self._result.asset.CopyFrom(asset)
        self._add_outputs(ingested.outputs)
        self._upsert(sa.MEDIA_KIND.value_set(_KIND_NAMES.get(asset.media.kind, "unknown")))
        # Runs started before dedup became the default read an unset field as "no dedup";
        # the patch keeps their histories replaying (tests/workflows/test_replay.py).
        dedup = dedup_enabled(request) if self._patched("dedup-by-default") else request.dedup
        claim = ingested.claim if ingested.HasField("claim") else None
        if dedup and await self._link_duplicate(asset, claim):
            return self._result

        # Transcode: required. Renditions are what the rest of the pipeline works on. The
        # workflow decides them from the profile, once; runs started before it did left the
        # list empty for the stage to resolve, and replay with that input.
        transcode_input = stages_pb2.TranscodeInput(asset=asset, profile=profile.name)
        if self._patched("transcode-renditions-from-workflow"):
            transcode_input.renditions.extend(profile.renditions.get(_KIND_NAMES.get(asset.media.kind, ""), ()))
        # Images go to the light pool's queue (seconds each, beside a video encode instead
        # of behind it); runs started before it existed replay on q-transcode.
        queue = None
        if asset.media.kind == common_pb2.MEDIA_KIND_IMAGE and self._patched(TRANSCODE_LIGHT_QUEUE):
            queue = transcode_queue("image")

        # AI enrichment: optional. A failure here leaves a usable asset: COMPLETED_WITH_ERRORS.
        # It reads the original, not the renditions, so it runs beside transcode: both are
        # scheduled in one workflow task and distribution waits for both, one task hop less
        # per asset. Runs started before that replay them one after the other; a run that
        # skips enrichment has nothing to run beside transcode and records no marker.
        kind = _KIND_NAMES.get(asset.media.kind, "")
        plan = plan_enrichment(kind, asset.media.has_audio, transcribe=profile.transcribe,
                               detect=profile.detect_objects)
        ai_skip = skip_reason(plan, profile=profile.name, profile_transcribes=profile.transcribe,
                              profile_detects=profile.detect_objects, kind=kind,
                              has_audio=asset.media.has_audio, requested_skip=request.skip_ai)
        enrich_input = None if ai_skip else stages_pb2.EnrichInput(
            asset=asset, profile=profile.name, transcribe=plan.transcribe, detect_objects=plan.detect,
        )
        beside = enrich_input is not None and self._patched(ENRICH_BESIDE_TRANSCODE)
        enriched: stages_pb2.EnrichOutput | None = None
        try:
            if beside:
                assert enrich_input is not None
                transcoded, enriched = await self._transcode_beside_enrich(transcode_input, queue, enrich_input)
            else:
                transcoded = await self._stage(
                    StageName.TRANSCODE,
                    common_pb2.RUNNING,
                    ActivityName.TRANSCODE,
                    transcode_input,
                    stages_pb2.TranscodeOutput,
                    queue=queue,
                )
        except ActivityError as err:
            await self._discard_failed(asset_id, failure_message(err)[0])
            return self._fail(StageName.TRANSCODE, *failure_message(err))
        # Transcode's outputs first, then enrichment's, whichever finished first.
        self._add_outputs(transcoded.outputs)

        if ai_skip:
            self._skip(StageName.AI_ENRICH, ai_skip)
        elif not beside:
            try:
                enriched = await self._stage(
                    StageName.AI_ENRICH, common_pb2.RUNNING, ActivityName.ENRICH, enrich_input, stages_pb2.EnrichOutput
                )
            except ActivityError as err:
                message, _ = failure_message(err)
                self._stage_failed(StageName.AI_ENRICH, message)
        if enriched is not None:
            self._take_enrichment(enriched)

        await self._distribute(request, profile, asset_id)

        self._result.current_stage = ""
        final = common_pb2.COMPLETED_WITH_ERRORS if self._result.failures else common_pb2.COMPLETED
        self._set_state(final)
        return self._result

    def _take_enrichment(self, enriched: stages_pb2.EnrichOutput) -> None:
        """Record a finished enrichment: its outputs (after transcode's), transcript and labels."""
        self._add_outputs(enriched.outputs)
        if enriched.HasField("transcript"):
            self._result.transcript.CopyFrom(enriched.transcript)
        self._result.labels.extend(enriched.labels)
        if enriched.labels:
            self._upsert(sa.LABELS.value_set([label.label for label in enriched.labels][:50]))
        if enriched.skipped_reason and not enriched.outputs:
            self._skip(StageName.AI_ENRICH, enriched.skipped_reason)
        elif enriched.skipped_reason:
            self._result.stages[StageName.AI_ENRICH].reason = enriched.skipped_reason

    # ---- transcode and enrichment side by side -----------------------------------------

    async def _transcode_beside_enrich(
        self, transcode_input: stages_pb2.TranscodeInput, queue: str | None, enrich_input: stages_pb2.EnrichInput
    ) -> tuple[stages_pb2.TranscodeOutput, stages_pb2.EnrichOutput | None]:
        """Run transcode and enrichment at once; return transcode's output and enrichment's
        (None when it failed: its stage says why and ``failures`` lists it).

        Both activities are scheduled in the same workflow task, so the task that follows
        the shorter one is off the asset's critical path. Transcode is required: when it
        fails, enrichment is cancelled and waited for, and its ActivityError is raised as
        a sequential run's would be. A cancelled run cancels and waits for both.
        """
        await self._gate(StageName.TRANSCODE)  # a pause before the pair holds both
        transcode_stage = self._begin(StageName.TRANSCODE, common_pb2.RUNNING)
        enrich_stage = self._begin(StageName.AI_ENRICH, common_pb2.RUNNING)
        self._show_running_stage()
        # Tasks start in creation order within this workflow task: transcode is scheduled
        # first, the same on every replay (asyncio tasks are deterministic in a workflow).
        transcode = asyncio.create_task(self._run_begun(
            transcode_stage, ActivityName.TRANSCODE, transcode_input, stages_pb2.TranscodeOutput, queue))
        enrich = asyncio.create_task(self._enrich_beside(enrich_stage, enrich_input))
        both = [transcode, enrich]
        try:
            # workflow.wait, not asyncio.wait: asyncio's iterates a set (not deterministic).
            await workflow.wait([transcode])
            error = transcode.exception()  # raises CancelledError if the run's cancellation reached it
            if error is not None:
                enrich.cancel()
                await workflow.wait([enrich])
                if enrich_stage.status == common_pb2.STAGE_STATUS_RUNNING:
                    self._end(enrich_stage, common_pb2.STAGE_STATUS_CANCELLED,
                              reason="cancelled: transcode failed, so the run fails")
                raise error
            self._show_running_stage()  # ai_enrich, if it still runs
            await workflow.wait([enrich])
            return transcode.result(), enrich.result()
        except asyncio.CancelledError:
            # The run is being cancelled: each running activity acknowledges through its
            # heartbeat (WAIT_CANCELLATION_COMPLETED) before anything is discarded.
            for task in both:
                task.cancel()
            await workflow.wait(both)
            raise

    async def _run_begun(
        self, stage: pipeline_pb2.StageResult, name: str, arg: Any, result_type: type[M], queue: str | None = None
    ) -> M:
        """The activity of a stage already begun; the stage ends when it does (its own timing)."""
        output = await self._activity(name, arg, result_type, queue)
        # No search-attribute change here: an upsert from this task would be flushed before
        # the run's own task wakes in this workflow task, making two upserts of one task.
        self._end(stage, common_pb2.STAGE_STATUS_COMPLETED)
        return output

    async def _enrich_beside(
        self, stage: pipeline_pb2.StageResult, enrich_input: stages_pb2.EnrichInput
    ) -> stages_pb2.EnrichOutput | None:
        """Enrichment beside transcode: a failure is recorded when it happens and returns None."""
        try:
            return await self._run_begun(stage, ActivityName.ENRICH, enrich_input, stages_pb2.EnrichOutput)
        except ActivityError as err:
            self._stage_failed(StageName.AI_ENRICH, failure_message(err)[0])
            return None

    def _show_running_stage(self) -> None:
        """``current_stage`` (and the stage search attribute) with stages side by side: the
        earliest running stage in stage order, so transcode while it runs, then ai_enrich.
        Once none runs it keeps the last one, as a sequential run does between stages."""
        running = next((s for s in STAGES if self._result.stages[s].status == common_pb2.STAGE_STATUS_RUNNING), "")
        if running and running != self._result.current_stage:
            self._result.current_stage = running
            self._upsert(sa.STAGE.value_set(running))

    # ---- dedup --------------------------------------------------------------------------

    async def _link_duplicate(self, asset: common_pb2.AssetRecord, claim: jobs_pb2.ClaimContentOutput | None) -> bool:
        """Dedup (request.dedup, true unless the request says otherwise): if the collection already holds this content, link to that
        asset instead of processing it again; this run's stored copy is discarded.

        ``claim`` is the one ingest made; without it (ingest could not claim, a worker older
        than ``claim_content``, a run started before it) the claim is an activity of its own.
        """
        if claim is None:
            claim_input = jobs_pb2.ClaimContentInput(asset=asset, workflow_id=workflow.info().workflow_id)
            try:
                claim = await self._activity(ActivityName.CLAIM_CONTENT, claim_input, jobs_pb2.ClaimContentOutput)
            except ActivityError as err:
                # Dedup saves work; it never blocks an upload. Process the asset normally.
                workflow.logger.warning("dedup lookup for %s failed, processing anyway: %s", asset.asset_id, err)
                return False
        if not claim.duplicate:
            return False
        await self._activity(ActivityName.DISCARD_ASSET, asset.asset_id, int)
        collection = asset.metadata.collection or "default"
        reason = (f"duplicate of asset {claim.existing.asset_id} (workflow {claim.existing_workflow_id}) "
                  f"in collection {collection!r}")
        self._result.duplicate_of = claim.existing.asset_id
        self._result.asset.CopyFrom(claim.existing)
        del self._result.outputs[:]
        for stage in STAGES[1:]:  # every stage after ingest
            self._skip(stage, reason)
        self._result.current_stage = ""
        self._set_state(common_pb2.COMPLETED)
        return True

    # ---- distribution -------------------------------------------------------------------

    async def _distribute(self, request: pipeline_pb2.PipelineRequest, profile: Profile, asset_id: str) -> None:
        targets = list(request.targets) or list(profile.targets)
        webhooks = list(profile.webhooks)
        if not targets and not webhooks:
            self._skip(StageName.DISTRIBUTION, f"profile {profile.name!r} has no delivery targets")
            return
        await self._gate(StageName.DISTRIBUTION)
        stage = self._begin(StageName.DISTRIBUTION, common_pb2.RUNNING)
        deliverable = [
            o for o in self._result.outputs
            # The original goes out only when a profile names it (a preservation copy, which
            # fixity audits can repair from); renditions and enrichments by default.
            if (o.stage in _DELIVERED_STAGES and not profile.deliver_roles) or o.role in profile.deliver_roles
        ]
        jobs = [
            stages_pb2.DeliverInput(
                asset_id=asset_id,
                target=target,
                output=output,
                metadata=request.metadata,
                idempotency_key=f"{asset_id}:{target}:{output.role}:{output.uri.rsplit('/', 1)[-1]}",
            )
            for target in targets
            for output in deliverable
        ]
        if self._patched("deliveries-per-target"):
            receipts, failures = await deliver_per_target(jobs, self._activity)
        else:  # runs started before deliver_outputs existed replay one activity per output
            receipts, failures = await deliver_all(jobs, self._activity)
        self._result.receipts.extend(receipts)
        self._result.failures.extend(failures)
        for hook in webhooks:
            request = stages_pb2.NotifyInput(
                asset_id=asset_id,
                target=hook,
                workflow_id=workflow.info().workflow_id,
                state=common_pb2.COMPLETED_WITH_ERRORS if self._result.failures else common_pb2.COMPLETED,
                asset=self._result.asset,
                outputs=self._result.outputs,
                receipts=self._result.receipts,
                idempotency_key=f"{asset_id}:{hook}:webhook",
            )
            receipt, failure = await notify(request, self._activity)
            self._result.receipts.append(receipt)
            if failure:
                self._result.failures.append(failure)
        failed = [r for r in self._result.receipts if not r.ok]
        self._end(
            stage,
            common_pb2.STAGE_STATUS_COMPLETED_WITH_ERRORS if failed else common_pb2.STAGE_STATUS_COMPLETED,
            reason=f"{len(failed)} of {len(self._result.receipts)} deliveries failed" if failed else "",
        )

    # ---- helpers ------------------------------------------------------------------------

    async def _activity(self, name: str, arg: Any, result_type: type[M], queue: str | None = None) -> M:
        policy = policy_for(name)
        extra: dict[str, Any] = {}
        if self._priority is not None:
            extra["priority"] = self._priority
        try:
            output = await workflow.execute_activity(
                name,
                arg,
                result_type=result_type,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                **policy.options(self._lane, queue=queue),  # type: ignore[arg-type]
                **extra,
            )
        except ActivityError as err:
            if name in stages.STAGE_OF_ACTIVITY:
                self._first_attempts_only = False
            if isinstance(err.cause, CancelledError):
                # The run is being cancelled and the activity has acknowledged it
                # (WAIT_CANCELLATION_COMPLETED surfaces that as an ActivityError):
                # a cancellation of the run, not a failure of the stage.
                raise asyncio.CancelledError() from err
            raise
        self._note_attempt(name, output)
        return output

    def _note_attempt(self, name: str, output: Any) -> None:
        """Record the attempt a stage activity reported in its output as its stage's attempts.

        The workflow cannot see retries; the activity knows its attempt. When every stage
        activity of a run reports its first, the finished result says so
        (``first_attempts_only``) and readers skip the history fetch that would only
        confirm it. An output without a report (a worker older than the field) counts as
        unknown, and the history is read as before.
        """
        stage = stages.STAGE_OF_ACTIVITY.get(name)
        if stage is None:
            return
        attempt = _reported_attempt(output)
        if attempt != 1:
            self._first_attempts_only = False
        entry = self._result.stages[stage]
        entry.attempts = max(entry.attempts, attempt)

    async def _stage(
        self, stage: str, state: int, name: str, arg: Any, result_type: type[M], queue: str | None = None
    ) -> M:
        await self._gate(stage)
        result = self._begin(stage, state)
        output = await self._activity(name, arg, result_type, queue)
        self._end(result, common_pb2.STAGE_STATUS_COMPLETED)
        return output

    async def _gate(self, next_stage: str) -> None:
        """Hold here while a pause is requested; the job shows PAUSED meanwhile, and its
        current stage is the one that will start on resume (not the one that just ended)."""
        if not self._pause_requested:
            if self._result.state == common_pb2.PAUSE_PENDING:
                self._set_state(self._state_before_pause)
            return
        previous = self._state_before_pause if self._result.state == common_pb2.PAUSE_PENDING else self._result.state
        self._result.current_stage = next_stage
        self._set_state(common_pb2.PAUSED)
        await workflow.wait_condition(lambda: not self._pause_requested)
        self._set_state(previous)

    def _begin(self, stage: str, state: int) -> pipeline_pb2.StageResult:
        self._result.current_stage = stage
        self._set_state(state)
        self._upsert(sa.STAGE.value_set(stage))
        result = self._result.stages[stage]
        result.status = common_pb2.STAGE_STATUS_RUNNING
        result.started_at = workflow.now().timestamp()
        return result

    def _end(self, result: pipeline_pb2.StageResult, status: int, reason: str = "") -> None:
        result.status = status  # type: ignore[assignment]
        # A stage that never started has no duration (not "now minus the epoch").
        result.seconds = round(workflow.now().timestamp() - result.started_at, 3) if result.started_at else 0.0
        if reason:
            result.reason = reason

    def _skip(self, stage: str, reason: str) -> None:
        result = self._result.stages[stage]
        result.status = common_pb2.STAGE_STATUS_SKIPPED
        result.reason = reason

    def _stage_failed(self, stage: str, message: str) -> None:
        result = self._result.stages[stage]
        self._end(result, common_pb2.STAGE_STATUS_FAILED, reason=message)
        self._result.failures.append(f"{stage}: {message}")

    def _add_outputs(self, outputs: Any) -> None:
        """Each output is stored once, in ``result.outputs``, carrying the stage that made it
        (``damfleet.summaries.stage_outputs`` reads a stage's; the per-stage copy is deprecated).
        No command changes, so running histories replay unchanged."""
        self._result.outputs.extend(outputs)

    def _fail(self, stage: str, message: str, error_type: str) -> pipeline_pb2.PipelineResult:
        self._stage_failed(stage, message)
        self._result.error = f"{stage} failed: {message}"
        self._set_state(common_pb2.FAILED)
        raise ApplicationError(self._result.error, type=error_type, non_retryable=True)

    def _reject(self, problem: str) -> pipeline_pb2.PipelineResult:
        """Fail a request that could never run, before any stage starts: no stage is blamed."""
        self._result.current_stage = ""
        self._result.error = f"invalid request: {problem}"
        self._set_state(common_pb2.FAILED)
        raise ApplicationError(self._result.error, type="BadInput", non_retryable=True)

    async def _discard_failed(self, asset_id: str, reason: str) -> None:
        """A failed run leaves nothing behind but its failure record (this run's history):
        everything stored under the asset's keys is removed (the original is first copied to
        ``quarantine/`` where the setting asks, and listed as an output) and its dedup claim
        is given up, so the same bytes submitted again are processed instead of linked to an
        asset without outputs. Runs that failed before this existed replay without it."""
        if not self._patched("discard-failed-runs"):
            return
        await self._release_claim(asset_id)
        kept: list[common_pb2.Output] = []
        try:
            discarded = await self._bookkeeping(
                ActivityName.DISCARD_FAILED_ASSET, jobs_pb2.DiscardFailedInput(asset_id=asset_id, reason=reason),
                jobs_pb2.DiscardFailedOutput,
            )
            kept = list(discarded.quarantined)
        except (ActivityError, CancelledError) as err:
            workflow.logger.warning("discarding failed asset %s failed: %s", asset_id, err)
        # The result lists only what exists: the discarded objects are gone.
        del self._result.outputs[:]
        self._result.outputs.extend(kept)

    async def _release_claim(self, asset_id: str) -> None:
        asset = self._result.asset
        if not (asset.sha256 and asset.asset_id == asset_id):
            return
        claim = jobs_pb2.ClaimContentInput(asset=asset, workflow_id=workflow.info().workflow_id)
        try:
            await self._bookkeeping(ActivityName.RELEASE_CONTENT, claim, bool)
        except (ActivityError, CancelledError) as err:
            workflow.logger.warning("releasing the dedup claim of %s failed: %s", asset_id, err)

    async def _discard(self, asset_id: str, *, release_claim: bool = False) -> None:
        """Remove everything stored for the asset; best effort, logged when it cannot."""
        if release_claim:
            await self._release_claim(asset_id)
        try:
            await self._bookkeeping(ActivityName.DISCARD_ASSET, asset_id, int)
        except (ActivityError, CancelledError) as err:
            workflow.logger.warning("discarding asset %s failed: %s", asset_id, err)

    async def _bookkeeping(self, name: str, arg: Any, result_type: type[M]) -> M:
        """An activity that must run even while the workflow is being cancelled."""
        return await workflow.execute_activity(
            name, arg, result_type=result_type, **policy_for(name).options(self._lane),  # type: ignore[arg-type]
        )

    async def _cancelled(self, asset_id: str) -> None:
        # Only stages still running were cut short (transcode and enrichment may both be);
        # a paused run sits between stages.
        for stage in STAGES:
            if self._result.stages[stage].status == common_pb2.STAGE_STATUS_RUNNING:
                self._end(self._result.stages[stage], common_pb2.STAGE_STATUS_CANCELLED, reason="cancelled")
        self._set_state(common_pb2.CANCELLED)
        # The running activities have acknowledged cancellation (WAIT_CANCELLATION_COMPLETED);
        # now remove everything stored for the asset so nothing looks complete.
        if self._result.stages[StageName.INGEST].status != common_pb2.STAGE_STATUS_PENDING:
            await self._discard(asset_id, release_claim=self._patched("discard-failed-runs"))

    def _set_state(self, state: int) -> None:
        self._result.state = state  # type: ignore[assignment]
        if state in (common_pb2.COMPLETED, common_pb2.COMPLETED_WITH_ERRORS):
            self._result.first_attempts_only = self._first_attempts_only
        self._upsert(sa.STATE.value_set(common_pb2.JobState.Name(state)))
        if self._is_finished():
            # The run returns or raises next, in this same step: its updates go out now,
            # before the command that closes the run.
            self._flush_upserts()
        if self._is_finished() and not self._counted:
            # damfleet_assets_total{state}: Temporal's own workflow_completed cannot tell
            # COMPLETED from COMPLETED_WITH_ERRORS (both complete the workflow). The SDK's
            # workflow metric meter skips replays, so each run counts once.
            self._counted = True
            workflow.logger.info("pipeline ended %s%s", common_pb2.JobState.Name(state),
                                 f": {self._result.error}" if self._result.error else "",
                                 extra={"asset_id": self._result.asset_id})
            workflow.metric_meter().create_counter(
                "damfleet_assets_total", "Asset runs finished, by final state"
            ).add(1, {"state": common_pb2.JobState.Name(state), "profile": self._result.profile})

    def _since(self, generation: str) -> bool:
        """Whether this run belongs to ``generation`` (one of :data:`GENERATIONS`) or a later one.

        Decided once, in the run's first workflow task (``run`` asks first): a new run records
        :data:`CURRENT_PATCH` and asks for no older marker; a replayed run finds the marker it
        recorded, or none. ``workflow.patched`` remembers each answer, so a run never changes
        generation.
        """
        if self._generation_index is None:
            self._generation_index = next(
                (index for index in reversed(range(len(GENERATIONS))) if workflow.patched(GENERATIONS[index])), -1)
        return self._generation_index >= GENERATIONS.index(generation)

    def _patched(self, patch_id: str) -> bool:
        """``workflow.patched(patch_id)`` for a folded patch: true without a marker of its own in a
        run of the generation that folded it or a later one.

        Only for :data:`FOLDED_PATCHES`: a run started before a newer change has
        CURRENT_PATCH too, and must replay that change's old branch.
        """
        if patch_id not in FOLDED_PATCHES:
            raise ValueError(f"patch {patch_id!r} is newer than {CURRENT_PATCH!r}: use workflow.patched()")
        return self._since(FOLDED_PATCHES[patch_id]) or workflow.patched(patch_id)

    def _upsert(self, *updates: Any) -> None:
        """Update search attributes with one upsert command per workflow task, not per call.

        Each upsert is a command, a history event and a visibility write; a stage change
        alone made two or three (state, stage, media kind) on every one of an asset's
        workflow tasks. Updates are collected (the latest value per attribute wins) and sent
        as one upsert once the workflow's code has run as far as it can in this task, or at
        once when the run ends. Runs started before replay one upsert per call.
        """
        if not self._since(GENERATIONS[0]):
            workflow.upsert_search_attributes(list(updates))
            return
        if not self._pending_upserts:
            # Callbacks run after every task ready in this workflow task: the same
            # deterministic point on every replay.
            asyncio.get_running_loop().call_soon(self._flush_upserts)
        for update in updates:
            self._pending_upserts[update.key.name] = update

    def _flush_upserts(self) -> None:
        if self._pending_upserts:
            updates = list(self._pending_upserts.values())
            self._pending_upserts.clear()
            workflow.upsert_search_attributes(updates)

    def _is_finished(self) -> bool:
        return self._result.state in (
            common_pb2.COMPLETED, common_pb2.COMPLETED_WITH_ERRORS, common_pb2.FAILED, common_pb2.CANCELLED,
        )

