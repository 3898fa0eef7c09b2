"""distribution worker: the activities of activities/distribution.py on their own task queue."""

from __future__ import annotations

from activities.common import StageContext
from activities.distribution import DistributionActivities
from damfleet.policies import Queue
from workers.common import run_worker, serve


async def main() -> None:
    ctx = StageContext()
    acts = DistributionActivities(ctx)

    async def close() -> None:
        """Close the per-target HTTP/S3 connection pools, then storage's."""
        await acts.aclose()
        await ctx.storage.aclose()

    await run_worker(task_queue=Queue.DISTRIBUTION, activities=acts.activities(), on_shutdown=close)


if __name__ == "__main__":
    serve(main)
