"""Pipeline worker: workflows only, on ``q-pipeline``. Imports no media libraries.

It also runs the fleet probe (:mod:`workers.fleet_metrics`): queue backlog and storage
health are fleet-wide facts, exported by this one pool so they are counted once.
"""

from __future__ import annotations

from temporalio.client import Client

from damfleet.policies import Queue
from damfleet.settings import Settings
from workers.common import run_worker, serve
from workflows import ALL_WORKFLOWS


async def probe_fleet(client: Client, settings: Settings) -> None:
    """Export every queue's backlog and pollers and the storage root's health, forever."""
    if not settings.worker.metrics_port:
        return
    from damfleet.client import FleetClient
    from damfleet.storage import Storage
    from workers.fleet_metrics import FleetProbe

    storage = Storage.from_settings(settings)
    try:
        await FleetProbe(FleetClient(client, settings), storage).run()
    finally:
        await storage.aclose()


async def main() -> None:
    await run_worker(task_queue=Queue.PIPELINE, workflows=ALL_WORKFLOWS, background=probe_fleet)


if __name__ == "__main__":
    serve(main)
