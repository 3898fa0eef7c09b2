"""ingest worker: the activities of activities/ingest.py (and the batch/dedup bookkeeping of
activities/catalog.py, and the fixity audits of activities/fixity.py) on their own task queue."""

from __future__ import annotations

from activities import catalog, fixity
from activities.common import StageContext
from activities.ingest import build_activities
from damfleet.policies import Queue
from workers.common import run_worker, serve


async def main() -> None:
    ctx = StageContext()
    await run_worker(
        task_queue=Queue.INGEST,
        activities=build_activities(ctx) + catalog.build_activities(ctx) + fixity.build_activities(ctx),
        on_shutdown=ctx.storage.aclose,
    )


if __name__ == "__main__":
    serve(main)
