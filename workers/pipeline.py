"""Pipeline worker: workflows only, on ``q-pipeline``. Imports no media libraries."""

from __future__ import annotations

import asyncio

from damfleet.policies import Queue
from workers.common import run_worker
from workflows import ALL_WORKFLOWS


async def main() -> None:
    await run_worker(task_queue=Queue.PIPELINE, workflows=ALL_WORKFLOWS)


if __name__ == "__main__":
    asyncio.run(main())
