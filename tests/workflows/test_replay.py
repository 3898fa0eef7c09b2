"""Replay safety (issue 12): saved histories of representative runs replay against today's workflows.

A change to workflow code that would break runs already in flight (a reordered activity, a new
timer, a removed signal handler) makes the SDK's ``Replayer`` raise a non-determinism error on
these histories, so it fails CI instead of stranding production runs. Histories come from
``python -m tests.workflows.record_histories`` (see that module for when to re-record).
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from damfleet.v1 import pipeline_pb2
from workflows import ALL_WORKFLOWS

HISTORIES = Path(__file__).resolve().parent / "histories"
EXPECTED = {
    "pipeline_success", "pipeline_failed_ingest", "pipeline_retry", "pipeline_completed_with_errors",
    "pipeline_pause_resume", "pipeline_cancel", "batch_run0", "batch_run1", "batch_child",
    # issue 11: enrichment beside transcode, completed and cancelled while both ran
    "pipeline_enrich_beside_transcode", "pipeline_cancel_beside_transcode",
    # issue 11: the second generation (one marker): ingest claims the content; an image on the light pool
    "pipeline_ingest_claims_content", "pipeline_image_light_queue",
}


WORKFLOW_IDS: dict[str, str] = json.loads((HISTORIES / "workflow_ids.json").read_text())


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(WORKFLOW_IDS[path.stem], path.read_text())


def test_the_representative_runs_are_all_recorded() -> None:
    names = set(WORKFLOW_IDS)
    assert names == {p.stem for p in HISTORIES.glob("*.json")} - {"workflow_ids"}
    assert EXPECTED <= names, f"missing histories: {sorted(EXPECTED - names)}; run the recorder"
    first_batch_run = json.loads((HISTORIES / "batch_run0.json").read_text())["events"]
    assert first_batch_run[-1]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"


@pytest.mark.parametrize("path", sorted(HISTORIES / f"{name}.json" for name in WORKFLOW_IDS), ids=lambda p: p.stem)
async def test_saved_history_replays_against_current_workflows(path: Path) -> None:
    await Replayer(workflows=ALL_WORKFLOWS).replay_workflow(_history(path))


@workflow.defn(name="AssetPipeline")
class _ReorderedPipeline:
    """A deliberately incompatible change: waits on a timer before its first activity."""

    @workflow.run
    async def run(self, request: pipeline_pb2.PipelineRequest) -> pipeline_pb2.PipelineResult:
        await workflow.sleep(timedelta(seconds=1))
        return pipeline_pb2.PipelineResult()


async def test_an_incompatible_change_fails_replay() -> None:
    """The check can fail: the same history against changed code is a non-determinism error."""
    replayer = Replayer(workflows=[_ReorderedPipeline], workflow_runner=UnsandboxedWorkflowRunner())
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(_history(HISTORIES / "pipeline_success.json"))


def test_a_later_patch_cannot_fold_into_the_current_one() -> None:
    """Runs started before a new change have CURRENT_PATCH too: folding the new change into it
    would replay them down its new branch. ``_patched`` refuses any patch it does not list."""
    from workflows.pipeline import FOLDED_PATCHES, AssetPipeline

    assert "dedup-by-default" in FOLDED_PATCHES
    with pytest.raises(ValueError, match="newer than"):
        AssetPipeline._patched(object.__new__(AssetPipeline), "some-later-change")


@pytest.mark.parametrize("name", ["pipeline_enrich_beside_transcode", "pipeline_cancel_beside_transcode"])
async def test_runs_that_enriched_beside_transcode_need_their_patch(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same code with ``enrich-beside-transcode`` answered "not patched" (the sequential
    code before it) cannot replay these runs: the patch is what keeps both orders safe."""
    from workflows.pipeline import ENRICH_BESIDE_TRANSCODE

    patched = workflow.patched
    monkeypatch.setattr(workflow, "patched", lambda patch_id: patch_id != ENRICH_BESIDE_TRANSCODE and patched(patch_id))
    replayer = Replayer(workflows=ALL_WORKFLOWS, workflow_runner=UnsandboxedWorkflowRunner())
    with pytest.raises(NondeterminismError, match=ENRICH_BESIDE_TRANSCODE):
        await replayer.replay_workflow(_history(HISTORIES / f"{name}.json"))


@pytest.mark.parametrize("name", ["pipeline_ingest_claims_content", "pipeline_image_light_queue"])
async def test_second_generation_runs_need_their_marker(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs of today's generation record one marker, CURRENT_PATCH, and nothing for the changes
    folded into it. Code that did not find that marker (taking the first generation's branches)
    cannot replay them: the one marker is what keeps every generation's runs safe."""
    from tests.workflows.test_pipeline import _markers
    from workflows.pipeline import CURRENT_PATCH, ENRICH_BESIDE_TRANSCODE, TRANSCODE_LIGHT_QUEUE

    history = _history(HISTORIES / f"{name}.json")
    recorded = _markers(history)
    assert CURRENT_PATCH in recorded
    assert ENRICH_BESIDE_TRANSCODE not in recorded and TRANSCODE_LIGHT_QUEUE not in recorded
    patched = workflow.patched
    monkeypatch.setattr(workflow, "patched", lambda patch_id: patch_id != CURRENT_PATCH and patched(patch_id))
    replayer = Replayer(workflows=ALL_WORKFLOWS, workflow_runner=UnsandboxedWorkflowRunner())
    with pytest.raises(NondeterminismError):
        await replayer.replay_workflow(history)
