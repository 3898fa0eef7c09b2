"""Task queues as the server sees them: backlog, its age, pollers and rates per queue."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from damfleet.client._base import FleetBase
from damfleet.policies import ALL_QUEUES, Queue

__all__ = ["QueueInfo", "QueuesMixin"]


@dataclass(frozen=True)
class QueueInfo:
    """Backlog and pollers of one task queue (from the server's task-queue description)."""

    name: str
    kind: str                      # "workflow" or "activity"
    backlog: int
    backlog_age_seconds: float
    pollers: int
    tasks_add_rate: float
    tasks_dispatch_rate: float


class QueuesMixin(FleetBase):
    """Describe the fleet's task queues."""

    async def queues(self, names: Sequence[str] = ALL_QUEUES) -> list[QueueInfo]:
        """Backlog and pollers of each queue: workflow tasks for q-pipeline, activity tasks for the rest."""
        out: list[QueueInfo] = []
        for base in names:
            name = base + self.settings.worker.queue_suffix
            kinds = [("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)]
            if base != Queue.PIPELINE:
                kinds = [("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)]
            for kind, queue_type in kinds:
                response = await self.client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=self.client.namespace,
                        task_queue=TaskQueue(name=name),
                        task_queue_type=queue_type,
                        report_stats=True,
                    )
                )
                stats = response.stats
                out.append(
                    QueueInfo(
                        name=name,
                        kind=kind,
                        backlog=int(stats.approximate_backlog_count),
                        backlog_age_seconds=stats.approximate_backlog_age.ToTimedelta().total_seconds(),
                        pollers=len(response.pollers),
                        tasks_add_rate=round(stats.tasks_add_rate, 3),
                        tasks_dispatch_rate=round(stats.tasks_dispatch_rate, 3),
                    )
                )
        return out

