"""Run results as plain data: the one place a ``PipelineResult`` or ``BatchProgress`` becomes
the dicts that ``--json`` prints, the demo summarises and the terminal tables show.

Two shapes, each kept stable for the scripts that read it:

- :func:`pipeline_summary` / :func:`batch_summary`: ``damfleet status --json`` (and what
  ``watch``, the demo's live table and ``submit --wait`` show while runs go);
- :func:`asset_summary` / :func:`summary_json`: a finished asset as the demo and
  ``submit --wait --json`` report it (outputs, transcript, labels, receipts).

Plain functions of the messages, no client and no terminal, so they are tested without a fleet.
"""

from __future__ import annotations

import time
from typing import Any

from google.protobuf.json_format import MessageToDict

from damfleet.stages import STAGE_NAMES
from damfleet.v1 import common_pb2, jobs_pb2, pipeline_pb2

__all__ = [
    "FINISHED_STATES",
    "STAGES",
    "asset_percent",
    "asset_summary",
    "batch_summary",
    "pipeline_summary",
    "stage_outputs",
    "stage_status_name",
    "state_name",
    "summary_json",
]

#: The pipeline's stages in the order every summary lists them (the stage table's order).
STAGES = STAGE_NAMES
FINISHED_STATES = frozenset({"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED", "CANCELLED"})
_STAGE_DONE = {"COMPLETED", "SKIPPED", "FAILED", "CANCELLED", "COMPLETED_WITH_ERRORS"}


def state_name(value: int) -> str:
    """``COMPLETED_WITH_ERRORS`` for a ``JobState`` value."""
    return common_pb2.JobState.Name(value)


def stage_status_name(value: int) -> str:
    """``RUNNING`` for ``STAGE_STATUS_RUNNING``."""
    return common_pb2.StageStatus.Name(value).removeprefix("STAGE_STATUS_")


def asset_percent(summary: dict[str, Any]) -> float:
    """Overall percent of an asset run: each stage a quarter, running ones by their heartbeats
    (transcode and AI enrichment run side by side: both count)."""
    stages = summary.get("stages", {})
    done = sum(1 for s in STAGES if stages.get(s, {}).get("status") in _STAGE_DONE)
    partial = sum((stages[s].get("percent") or 0.0) / 100.0
                  for s in STAGES if stages.get(s, {}).get("status") == "RUNNING")
    if summary.get("state") in FINISHED_STATES:
        return 100.0
    return round(100.0 * (done + partial) / len(STAGES), 1)


def pipeline_summary(result: pipeline_pb2.PipelineResult) -> dict[str, Any]:
    """``status --json`` of an asset run: state, stage, progress, per-stage timing and errors."""
    done = sum(1 for s in STAGES if s in result.stages and stage_status_name(result.stages[s].status) in _STAGE_DONE)
    summary = {
        "workflow_id": result.workflow_id,
        "type": "AssetPipeline",
        "state": state_name(result.state),
        "stage": result.current_stage,
        "progress": {"stages_done": done, "stages_total": len(STAGES), "percent": round(100.0 * done / len(STAGES), 1)},
        "asset_id": result.asset_id,
        "error": result.error,
        "failures": list(result.failures),
        "duplicate_of": result.duplicate_of,
        "stages": {
            name: {
                "status": stage_status_name(result.stages[name].status),
                "seconds": result.stages[name].seconds,
                "reason": result.stages[name].reason,
                "attempts": result.stages[name].attempts,
                "waiting": result.stages[name].waiting,
                "last_error": result.stages[name].last_error,
                "percent": result.stages[name].percent,
                "detail": result.stages[name].detail,
            }
            for name in STAGES if name in result.stages
        },
        "outputs": [{"role": o.role, "uri": o.uri, "size_bytes": o.size_bytes} for o in result.outputs],
    }
    # Percent counts the running stage's own progress (from its heartbeats), not only whole stages.
    summary["progress"]["percent"] = asset_percent(summary)
    return summary


def batch_summary(progress: jobs_pb2.BatchProgress) -> dict[str, Any]:
    """``status --json`` of a batch: state, progress counts, failed assets and bad rows."""
    counts = MessageToDict(progress, preserving_proto_field_name=True)
    for key in ("batch_id", "state", "failed_assets", "bad_rows", "retry_of", "error"):
        counts.pop(key, None)
    for key in ("total", "completed", "completed_with_errors", "failed", "cancelled", "running", "pending",
                "duplicates", "percent", "bad_row_count", "runs"):
        counts.setdefault(key, 0)
    return {
        "workflow_id": progress.batch_id,
        "type": "BatchIngest",
        "state": state_name(progress.state),
        "stage": "paused" if progress.paused else ("running" if progress.running else ""),
        "progress": counts,
        "failed_assets": [
            {"line": a.line, "source_uri": a.source_uri, "workflow_id": a.workflow_id,
             "state": state_name(a.state), "error": a.error}
            for a in progress.failed_assets
        ],
        "bad_rows": [{"line": b.line, "reason": b.reason} for b in progress.bad_rows],
        "retry_of": progress.retry_of,
        "error": progress.error,
    }


def stage_outputs(result: pipeline_pb2.PipelineResult, stage: str) -> list[common_pb2.Output]:
    """The outputs ``stage`` made. Each output is stored once, in ``result.outputs``, and
    carries the stage that made it; ``StageResult.outputs`` is deprecated (runs started
    before this kept a copy there, with the same outputs, so both read the same)."""
    return [o for o in result.outputs if o.stage == stage]


def asset_summary(source: str, workflow_id: str, result: pipeline_pb2.PipelineResult) -> dict[str, Any]:
    """One asset's entry of the demo summary (also the shape of ``submit --wait --json``)."""
    stages: dict[str, Any] = {}
    for name in STAGES:
        stage = result.stages[name] if name in result.stages else pipeline_pb2.StageResult()
        entry: dict[str, Any] = {"status": stage_status_name(stage.status), "seconds": round(stage.seconds, 2)}
        if stage.reason:
            entry["reason"] = stage.reason
        entry["outputs"] = [o.role for o in stage_outputs(result, name)]
        stages[name] = entry
    stages["distribution"]["receipts"] = [
        {"target": r.target, "role": r.role, "location": r.location, "ok": r.ok}
        | ({"error": r.error} if r.error else {})
        for r in result.receipts
    ]
    summary: dict[str, Any] = {
        "source": source,
        "workflow_id": workflow_id,
        "asset_id": result.asset_id,
        "state": state_name(result.state),
        "media": (
            MessageToDict(result.asset.media, preserving_proto_field_name=True) if result.HasField("asset") else {}
        ),
        "stages": stages,
        "outputs": [
            {"uri": o.uri, "size": o.size_bytes, "sha256": o.sha256, "role": o.role, "stage": o.stage}
            for o in result.outputs
        ],
    }
    if result.transcript.text_excerpt or result.transcript.language:
        summary["transcript"] = {
            "language": result.transcript.language,
            "excerpt": result.transcript.text_excerpt,
            "segments": result.transcript.segment_count,
        }
    if result.labels:
        summary["labels"] = [{"label": x.label, "confidence": round(x.max_confidence, 3)} for x in result.labels]
    if result.error:
        summary["error"] = result.error
    if result.failures:
        summary["failures"] = list(result.failures)
    return summary


def summary_json(assets: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """The whole demo summary: per-asset entries, wall time, and per-stage times."""
    stage_seconds = {
        name: round(sum(a["stages"][name]["seconds"] for a in assets), 2) for name in STAGES
    }
    return {
        "assets": assets,
        "wall_seconds": round(time.monotonic() - started, 2),
        "stage_seconds_total": stage_seconds,
        "all_completed": all(a["state"] == "COMPLETED" for a in assets),
    }
