"""Shared helpers for the fixity tests: a lane with the fixity workers, and the real ingest."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from activities import catalog as catalog_activities
from activities import fixity as fixity_activities
from activities.common import StageContext
from activities.distribution import DistributionActivities
from activities.ingest import build_activities as ingest_activities
from damfleet import ingest
from damfleet.client import FleetClient
from damfleet.policies import Queue
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, stages_pb2
from tests.conftest import make_settings
from tests.jobs_support import StandIns, terminate_lane
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
                      env: dict[str, str] | None = None, pipeline: bool = False) -> AsyncIterator[Lane]:
    """A pipeline worker and an ingest worker with the fixity activities (real unless given).

    With ``pipeline``, AssetPipeline runs too: real ingest and distribution, a stand-in
    transcode (no media work: only the original matters to fixity).
    """
    lane = f"-{uuid.uuid4().hex[:8]}"
    settings = make_settings(root, DAMFLEET_WORKER_QUEUE_SUFFIX=lane,
                             DAMFLEET_TEMPORAL_ADDRESS=client.service_client.config.target_host, **(env or {}))
    ctx = StageContext(settings)
    acts = activities if activities is not None else fixity_activities.build_activities(ctx)
    queues: list[tuple[str, dict[str, Any]]] = [
        (Queue.PIPELINE, {"workflows": ALL_WORKFLOWS, "max_concurrent_workflow_tasks": 50}),
        # Cancellation reaches an activity with a heartbeat's response: beat often, as
        # production workers do (DAMFLEET_WORKER_HEARTBEAT_THROTTLE_SECONDS).
        (Queue.INGEST, {"activities": acts + (ingest_activities(ctx) + catalog_activities.build_activities(ctx)
                                              if pipeline else []),
                        "max_heartbeat_throttle_interval": timedelta(milliseconds=500),
                        "default_heartbeat_throttle_interval": timedelta(milliseconds=500)}),
    ]
    distribution = DistributionActivities(ctx)
    if pipeline:
        stand_ins = StandIns(ctx.storage)
        queues += [(Queue.TRANSCODE, {"activities": [stand_ins.transcode]}),
                   (Queue.TRANSCODE_LIGHT, {"activities": [stand_ins.transcode]}),
                   (Queue.AI_ENRICH, {"activities": [stand_ins.enrich]}),
                   (Queue.DISTRIBUTION, {"activities": distribution.activities()})]
    async with AsyncExitStack() as stack:
        for queue, kwargs in queues:
            await stack.enter_async_context(Worker(client, task_queue=queue + lane, **kwargs))
        try:
            yield Lane(client, FleetClient(client, settings), settings, ctx.storage, lane)
        finally:
            await terminate_lane(client, Queue.PIPELINE + lane)
    await distribution.aclose()
    await ctx.storage.aclose()


async def ingest_asset(lane: Lane, source: Path, asset_id: str) -> common_pb2.AssetRecord:
    scratch = lane.settings.scratch_path / asset_id
    scratch.mkdir(parents=True, exist_ok=True)
    request = stages_pb2.IngestInput(asset_id=asset_id, source_uri=str(source), profile="archive")
    return (await ingest.ingest_asset(request, storage=lane.storage, settings=lane.settings, scratch=scratch)).asset
