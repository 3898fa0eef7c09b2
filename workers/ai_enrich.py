"""ai_enrich worker: the activities of activities/ai_enrich.py on their own task queue."""

from __future__ import annotations

from activities.ai_enrich import build_activities
from activities.common import StageContext
from damfleet.policies import Queue
from workers.common import run_worker, serve


async def main() -> None:
    ctx = StageContext()
    await run_worker(task_queue=Queue.AI_ENRICH, activities=build_activities(ctx), on_shutdown=ctx.storage.aclose)


if __name__ == "__main__":
    serve(main)
