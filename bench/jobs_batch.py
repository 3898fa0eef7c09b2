"""Batch orchestration cost: throughput and history size per child, with stand-in stages.

    python bench/jobs_batch.py [assets] [continue_as_new_after] [max_in_flight]

Starts a dev server, a fleet lane with the real workflows and catalog activities and
stand-in stage activities (tests/jobs_support.py), runs one BatchIngest over a generated
manifest and prints ONE line of JSON: the history of the largest run as a fraction of
Temporal's limits (ratios first), events and bytes per child, assets per second.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.testing import WorkflowEnvironment  # noqa: E402

from damfleet import search_attributes  # noqa: E402
from damfleet.binaries import temporal_cli  # noqa: E402
from tests.jobs_support import run_fleet, write_manifest  # noqa: E402

EVENT_LIMIT = 51_200
BYTES_LIMIT = 50 * 1024 * 1024


async def main(assets: int, per_run: int, window: int) -> dict[str, float]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL_KEYS,
        dev_server_extra_args=["--dynamic-config-value", "matching.useNewMatcher=true"],
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            rows = [{"source_uri": f"media/{i:06d}.jpg", "profile": "archive"} for i in range(assets)]
            manifest = write_manifest(root / "bench.csv", rows)
            async with run_fleet(env.client, root, transcode_slots=window) as fleet:
                started = time.monotonic()
                batch = await fleet.fleet.batch(manifest=str(manifest), max_in_flight=window,
                                                continue_as_new_after=per_run, page_size=500)
                progress = await batch.wait()
                elapsed = time.monotonic() - started
                runs = [e.run_id async for e in env.client.list_workflows(f"WorkflowId = '{batch.workflow_id}'")]
                sizes = []
                for run_id in runs:
                    history = await env.client.get_workflow_handle(batch.workflow_id, run_id=run_id).fetch_history()
                    sizes.append((len(history.events), sum(e.ByteSize() for e in history.events)))
    finally:
        await env.shutdown()
    max_events = max(s[0] for s in sizes)
    max_bytes = max(s[1] for s in sizes)
    return {
        "history_fraction_of_event_limit": round(max_events / EVENT_LIMIT, 4),
        "history_fraction_of_size_limit": round(max_bytes / BYTES_LIMIT, 4),
        "events_per_child": round(max_events / min(per_run, assets), 2),
        "bytes_per_child": round(max_bytes / min(per_run, assets)),
        "assets_per_second": round(assets / elapsed, 2),
        "assets": assets,
        "completed": progress.completed,
        "continue_as_new_runs": progress.runs,
        "runs_seen": len(runs),
        "max_in_flight": window,
        "continue_as_new_after": per_run,
        "seconds": round(elapsed, 1),
    }


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:4]]
    assets, per_run, window = (args + [1000, 500, 50][len(args):])[:3]
    print(json.dumps(asyncio.run(main(assets, per_run, window))))
