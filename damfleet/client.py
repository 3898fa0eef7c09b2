"""Python client SDK for upstream services: submit assets to the fleet and follow them.

>>> fleet = await FleetClient.connect()            # settings from DAMFLEET_* variables
>>> handle = await fleet.submit("s3://uploads/clip.mov", title="Harbour", collection="news")
>>> result = await handle.wait()
>>> result.state == common_pb2.COMPLETED
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority

from damfleet.policies import Queue, WorkflowName
from damfleet.settings import Settings, get_settings
from damfleet.storage import normalize_uri
from damfleet.temporal import connect
from damfleet.v1 import common_pb2, pipeline_pb2

__all__ = ["AssetHandle", "FleetClient", "new_workflow_id"]


def new_workflow_id() -> str:
    return f"asset-{uuid.uuid4().hex}"


@dataclass
class AssetHandle:
    """A submitted asset pipeline run."""

    workflow_id: str
    handle: WorkflowHandle

    async def status(self) -> pipeline_pb2.PipelineResult:
        """Job state, current stage and per-stage results (works while running and after)."""
        return await self.handle.query("status", result_type=pipeline_pb2.PipelineResult)

    async def wait(self) -> pipeline_pb2.PipelineResult:
        """Wait for the run to end; a FAILED run raises WorkflowFailureError naming the cause."""
        return await self.handle.result()


class FleetClient:
    """Typed access to the fleet's workflows."""

    def __init__(self, client: Client, settings: Settings | None = None) -> None:
        self.client = client
        self.settings = settings or get_settings()

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> FleetClient:
        settings = settings or get_settings()
        return cls(await connect(settings), settings)

    async def submit(
        self,
        source: str,
        *,
        profile: str = "",
        expected_sha256: str = "",
        title: str = "",
        collection: str = "",
        tenant: str = "",
        extra: dict[str, str] | None = None,
        priority: int = 0,
        targets: list[str] | None = None,
        workflow_id: str | None = None,
        task_queue: str = Queue.PIPELINE,
    ) -> AssetHandle:
        """Start an AssetPipeline for one source URI (or local path)."""
        request = pipeline_pb2.PipelineRequest(
            source_uri=normalize_uri(source),
            expected_sha256=expected_sha256,
            profile=profile,
            metadata=common_pb2.AssetMetadata(title=title, collection=collection, tenant=tenant, extra=extra or {}),
            priority=priority,
            targets=targets or [],
        )
        return await self.submit_request(request, workflow_id=workflow_id, task_queue=task_queue)

    async def submit_request(
        self,
        request: pipeline_pb2.PipelineRequest,
        *,
        workflow_id: str | None = None,
        task_queue: str = Queue.PIPELINE,
    ) -> AssetHandle:
        wid = workflow_id or new_workflow_id()
        kwargs = {}
        if request.priority:
            kwargs["priority"] = Priority(priority_key=request.priority)
        handle = await self.client.start_workflow(
            WorkflowName.ASSET_PIPELINE,
            request,
            id=wid,
            task_queue=task_queue,
            result_type=pipeline_pb2.PipelineResult,
            **kwargs,
        )
        return AssetHandle(wid, handle)

    def get(self, workflow_id: str) -> AssetHandle:
        """A handle to an existing run by workflow id."""
        handle = self.client.get_workflow_handle(workflow_id, result_type=pipeline_pb2.PipelineResult)
        return AssetHandle(workflow_id, handle)
