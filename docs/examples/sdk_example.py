"""The damfleet client SDK in a few lines (docs/jobs.md). A test runs this file as written.

    python docs/examples/sdk_example.py photo.jpg [manifest.csv]

connects with the DAMFLEET_* settings (address, namespace, TLS), so it runs against
``damfleet dev`` on this machine or a production cluster alike.
"""

from __future__ import annotations

import asyncio
import sys

from damfleet.client import FleetClient
from damfleet.settings import Settings
from damfleet.v1 import common_pb2


async def main(source: str, manifest: str = "", settings: Settings | None = None) -> dict[str, object]:
    fleet = await FleetClient.connect(settings)

    # One interactive upload, ahead of any backfill (priority 1 = highest .. 5 = lowest).
    handle = await fleet.submit(source, title="Harbour at dawn", collection="news", priority=2)
    status = await handle.status()  # state, current stage, per-stage timing and errors
    print(f"{handle.workflow_id}: {common_pb2.JobState.Name(status.state)} {status.current_stage}")

    result = await handle.wait()  # the final PipelineResult, whatever the outcome
    print(f"{handle.workflow_id}: {common_pb2.JobState.Name(result.state)}, {len(result.outputs)} outputs")

    # Submitting the same thing again returns the same run instead of starting another.
    again = await fleet.submit(source, title="Harbour at dawn", collection="news", priority=2)
    assert again.workflow_id == handle.workflow_id

    summary: dict[str, object] = {"workflow_id": handle.workflow_id, "state": common_pb2.JobState.Name(result.state)}
    if manifest:
        # A batch from a CSV/XLSX manifest: lower priority, bounded window, progress counts.
        batch = await fleet.batch(manifest=manifest, collection="news")
        progress = await batch.wait()
        print(f"{batch.workflow_id}: {progress.completed}/{progress.total} completed, {progress.failed} failed, "
              f"{progress.bad_row_count} bad rows")
        if progress.failed:
            await fleet.retry_failed(batch.workflow_id)  # re-run only the failed assets
        summary["batch"] = {"workflow_id": batch.workflow_id, "total": progress.total,
                            "completed": progress.completed, "failed": progress.failed}
    return summary


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:3]))
