"""transcode_light worker: the transcode activities for images, on their own task queue.

The transcode pool has one slot per pod (a video encode uses the pod's CPU budget), so an
image queued there waits for whole encodes. Images go to ``q-transcode-light`` instead
(the workflow routes them, :func:`damfleet.policies.transcode_queue`), served here with
several slots, each libvips helper limited to ``DAMFLEET_TRANSCODE_LIGHT_VIPS_THREADS``
threads: the pool's CPU use is its slots. Same image and activities as the transcode
pool; its own Deployment and KEDA trigger, so it scales on its own backlog.
"""

from __future__ import annotations

import os

from activities.common import StageContext
from activities.transcode import build_activities
from damfleet.policies import Queue
from damfleet.settings import Settings, get_settings
from workers.common import run_worker, serve


def light_settings(settings: Settings) -> Settings:
    """This pool's settings: ``DAMFLEET_TRANSCODE_LIGHT_CONCURRENCY`` when set is its slots
    (else ``DAMFLEET_WORKER_CONCURRENCY``, else the stage table's)."""
    slots = settings.transcode.light_concurrency or settings.worker.concurrency
    return settings.model_copy(update={"worker": settings.worker.model_copy(update={"concurrency": slots})})


async def main() -> None:
    settings = light_settings(get_settings())
    threads = settings.transcode.light_vips_threads
    if threads:
        # Read by libvips in the helper children (they inherit this environment).
        os.environ["VIPS_CONCURRENCY"] = str(threads)
    ctx = StageContext(settings)
    await run_worker(task_queue=Queue.TRANSCODE_LIGHT, activities=build_activities(ctx), settings=settings,
                     on_shutdown=ctx.storage.aclose)


if __name__ == "__main__":
    serve(main)
