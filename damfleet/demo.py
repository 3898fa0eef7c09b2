"""The demo: submit sample media to a running fleet, follow it, summarise what it produced.

Plain functions over the client SDK, so ``damfleet demo`` (which also starts the fleet)
and the end-to-end test share them. What a finished asset looks like in the summary is
:func:`damfleet.summaries.asset_summary`, the same shape as ``submit --wait --json``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowFailureError

from damfleet.client import AssetHandle, FleetClient
from damfleet.policies import Queue
from damfleet.summaries import asset_summary
from damfleet.v1 import common_pb2, pipeline_pb2

__all__ = ["final_result", "run_assets"]


async def final_result(handle: AssetHandle) -> pipeline_pb2.PipelineResult:
    """The run's result; for a failed run, its last status (which names the error).

    Shared with ``submit --wait``."""
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
    finals = {h.workflow_id: asyncio.create_task(final_result(h)) for _, h in handles}
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
