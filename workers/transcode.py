"""transcode worker: the activities of activities/transcode.py on their own task queue."""

from __future__ import annotations

from activities.common import StageContext
from activities.transcode import build_activities
from damfleet.policies import Queue
from workers.common import run_worker, serve


async def main() -> None:
    ctx = StageContext()
    await run_worker(task_queue=Queue.TRANSCODE, activities=build_activities(ctx), on_shutdown=ctx.storage.aclose)


if __name__ == "__main__":
    serve(main)
