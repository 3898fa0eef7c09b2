"""Shared helpers for the fixity tests: a lane with the fixity workers, and the real ingest."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities import fixity as fixity_activities
from activities.common import StageContext
from damfleet import ingest
from damfleet.client import FleetClient
from damfleet.policies import Queue
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, stages_pb2
from tests.conftest import make_settings
from tests.jobs_support import terminate_lane
from workflows import ALL_WORKFLOWS


@dataclass
class Lane:
    client: Client
    fleet: FleetClient
    settings: Settings
    storage: Storage
    lane: str


@asynccontextmanager
async def fixity_lane(client: Client, root: Path, *, activities: list[Any] | None = None,
                      env: dict[str, str] | None = None) -> AsyncIterator[Lane]:
    """A pipeline worker and an ingest worker with the fixity activities (real unless given)."""
    lane = f"-{uuid.uuid4().hex[:8]}"
    settings = make_settings(root, DAMFLEET_WORKER_QUEUE_SUFFIX=lane,
                             DAMFLEET_TEMPORAL_ADDRESS=client.service_client.config.target_host, **(env or {}))
    ctx = StageContext(settings)
    acts = activities if activities is not None else fixity_activities.build_activities(ctx)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(Worker(client, task_queue=Queue.PIPELINE + lane, workflows=ALL_WORKFLOWS,
                                               max_concurrent_workflow_tasks=50))
        await stack.enter_async_context(Worker(client, task_queue=Queue.INGEST + lane, activities=acts))
        try:
            yield Lane(client, FleetClient(client, settings), settings, ctx.storage, lane)
        finally:
            await terminate_lane(client, Queue.PIPELINE + lane)
    await ctx.storage.aclose()


async def ingest_asset(lane: Lane, source: Path, asset_id: str) -> common_pb2.AssetRecord:
    scratch = lane.settings.scratch_path / asset_id
    scratch.mkdir(parents=True, exist_ok=True)
    request = stages_pb2.IngestInput(asset_id=asset_id, source_uri=str(source), profile="archive")
    return (await ingest.ingest_asset(request, storage=lane.storage, settings=lane.settings, scratch=scratch)).asset
