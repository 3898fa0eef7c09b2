"""The demo: submit sample media to a running fleet, follow it, summarise what it produced.

Plain functions over the client SDK, so ``damfleet demo`` (which also starts the fleet)
and the end-to-end test share them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from temporalio.client import WorkflowFailureError

from damfleet.client import AssetHandle, FleetClient
from damfleet.stages import STAGE_NAMES, Queue, StageName
from damfleet.v1 import common_pb2, pipeline_pb2

__all__ = ["asset_summary", "run_assets", "summary_json"]

STAGE_ORDER = STAGE_NAMES


def _state(value: int) -> str:
    return common_pb2.JobState.Name(value)


def _stage_status(value: int) -> str:
    return common_pb2.StageStatus.Name(value).removeprefix("STAGE_STATUS_")


def asset_summary(source: str, workflow_id: str, result: pipeline_pb2.PipelineResult) -> dict[str, Any]:
    """One asset's entry of the demo summary (also the shape of ``submit --wait --json``)."""
    stages: dict[str, Any] = {}
    for name in STAGE_ORDER:
        stage = result.stages[name] if name in result.stages else pipeline_pb2.StageResult()
        entry: dict[str, Any] = {"status": _stage_status(stage.status), "seconds": round(stage.seconds, 2)}
        if stage.reason:
            entry["reason"] = stage.reason
        entry["outputs"] = [o.role for o in stage.outputs]
        stages[name] = entry
    stages[StageName.DISTRIBUTION]["receipts"] = [
        {"target": r.target, "role": r.role, "location": r.location, "ok": r.ok}
        | ({"error": r.error} if r.error else {})
        for r in result.receipts
    ]
    summary: dict[str, Any] = {
        "source": source,
        "workflow_id": workflow_id,
        "asset_id": result.asset_id,
        "state": _state(result.state),
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


async def _final_result(handle: AssetHandle) -> pipeline_pb2.PipelineResult:
    """The run's result; for a failed run, its last status (which names the error)."""
    try:
        return await handle.wait()
    except WorkflowFailureError as err:
        status = await handle.status()
        if not status.error:
            status.error = str(err.cause or err)
        if status.state not in (common_pb2.FAILED, common_pb2.CANCELLED):
            status.state = common_pb2.FAILED
        return status


async def run_assets(
    fleet: FleetClient,
    sources: Sequence[Path | str],
    *,
    profile: str = "",
    on_progress: Callable[[list[tuple[str, pipeline_pb2.PipelineResult | None]]], None] | None = None,
    poll_seconds: float = 1.0,
    task_queue: str = Queue.PIPELINE,
) -> list[dict[str, Any]]:
    """Submit every source, report progress while they run, return their summaries."""
    handles = [
        # dedup off: the demo regenerates identical samples and should process them every time.
        (str(src), await fleet.submit(str(src), profile=profile, title=Path(str(src)).stem, task_queue=task_queue,
                                      dedup=False))
        for src in sources
    ]
    finals = {h.workflow_id: asyncio.create_task(_final_result(h)) for _, h in handles}
    while not all(task.done() for task in finals.values()):
        if on_progress is not None:
            snapshot = []
            for src, handle in handles:
                try:
                    snapshot.append((src, await fleet.status(handle.workflow_id)))  # with live progress
                except Exception:  # noqa: BLE001 - not yet picked up by a worker
                    snapshot.append((src, None))
            on_progress(snapshot)
        await asyncio.wait(list(finals.values()), timeout=poll_seconds)
    return [asset_summary(src, h.workflow_id, finals[h.workflow_id].result()) for src, h in handles]


def summary_json(assets: list[dict[str, Any]], started: float) -> dict[str, Any]:
    """The whole demo summary: per-asset entries, wall time, and per-stage times."""
    stage_seconds = {
        name: round(sum(a["stages"][name]["seconds"] for a in assets), 2) for name in STAGE_ORDER
    }
    return {
        "assets": assets,
        "wall_seconds": round(time.monotonic() - started, 2),
        "stage_seconds_total": stage_seconds,
        "all_completed": all(a["state"] == "COMPLETED" for a in assets),
    }
