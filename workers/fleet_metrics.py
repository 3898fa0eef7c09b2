"""Fleet-wide gauges that one pool exports for everyone: queue backlog and storage health.

Backlog lives on the Temporal server, not in any worker, so it is read with
``DescribeTaskQueue`` (the same call as ``damfleet queues`` and KEDA's scaler). If every
pool exported it, Prometheus would hold five copies and ``sum()`` would be five times
wrong, so only the pipeline pool runs :class:`FleetProbe` (``workers/pipeline.py``).

Scratch space is per host, so every pool exports its own (:class:`ScratchCollector`,
computed at scrape time from ``statvfs``: always current, no background task).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["QUEUE_BACKLOG", "FleetProbe", "ScratchCollector", "register_scratch"]

log = logging.getLogger("damfleet.worker.fleet_metrics")

QUEUE_BACKLOG = Gauge("damfleet_queue_backlog", "Approximate tasks waiting on the queue", ["task_queue", "kind"])
QUEUE_BACKLOG_AGE = Gauge(
    "damfleet_queue_backlog_age_seconds", "Age of the oldest waiting task", ["task_queue", "kind"]
)
QUEUE_POLLERS = Gauge("damfleet_queue_pollers", "Workers polling the queue recently", ["task_queue", "kind"])
QUEUE_ADD_RATE = Gauge("damfleet_queue_tasks_add_rate", "Tasks added per second (server estimate)",
                       ["task_queue", "kind"])
QUEUE_DISPATCH_RATE = Gauge("damfleet_queue_tasks_dispatch_rate", "Tasks dispatched per second (server estimate)",
                            ["task_queue", "kind"])
STORAGE_UP = Gauge("damfleet_storage_up", "1 when the storage root answered the last probe", ["root"])
#: Labelled so that only the pool running the probe exports it (an unlabelled gauge would
#: read 0 in every other pool and trip DamfleetQueueProbeDown).
PROBE_UP = Gauge("damfleet_queue_probe_up", "1 when the last DescribeTaskQueue round succeeded", ["namespace"])


class ScratchCollector(Collector):
    """Free and total bytes of the filesystem holding the scratch folder, read at scrape time."""

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch

    def collect(self) -> Iterator[GaugeMetricFamily]:
        path = self.scratch if self.scratch.exists() else self.scratch.parent
        try:
            usage = shutil.disk_usage(path)
        except OSError:
            return
        free = GaugeMetricFamily("damfleet_scratch_free_bytes", "Free bytes where scratch lives", labels=["path"])
        free.add_metric([str(self.scratch)], usage.free)
        size = GaugeMetricFamily("damfleet_scratch_size_bytes", "Size of the filesystem holding scratch",
                                 labels=["path"])
        size.add_metric([str(self.scratch)], usage.total)
        yield free
        yield size


def register_scratch(scratch: Path) -> None:
    """Register the scratch collector once per process."""
    REGISTRY.register(ScratchCollector(scratch))


class FleetProbe:
    """Every ``interval`` seconds: each queue's backlog and pollers, and whether storage answers."""

    def __init__(self, fleet: Any, storage: Any, *, interval: float = 15.0, timeout: float = 10.0) -> None:
        self.fleet = fleet
        self.storage = storage
        self.interval = interval
        self.timeout = timeout

    async def probe_once(self) -> None:
        try:
            infos = await asyncio.wait_for(self.fleet.queues(), self.timeout)
        except Exception as exc:  # noqa: BLE001 - a probe must never stop the worker
            PROBE_UP.labels(self.fleet.client.namespace).set(0)
            log.warning("queue probe failed: %s", exc)
        else:
            PROBE_UP.labels(self.fleet.client.namespace).set(1)
            for q in infos:
                labels = (q.name, q.kind)
                QUEUE_BACKLOG.labels(*labels).set(q.backlog)
                QUEUE_BACKLOG_AGE.labels(*labels).set(q.backlog_age_seconds)
                QUEUE_POLLERS.labels(*labels).set(q.pollers)
                QUEUE_ADD_RATE.labels(*labels).set(q.tasks_add_rate)
                QUEUE_DISPATCH_RATE.labels(*labels).set(q.tasks_dispatch_rate)
        root = self.storage.root
        try:
            await asyncio.wait_for(self._touch_storage(), self.timeout)
        except Exception as exc:  # noqa: BLE001
            STORAGE_UP.labels(root).set(0)
            log.warning("storage %s did not answer: %s", root, exc)
        else:
            STORAGE_UP.labels(root).set(1)

    async def _touch_storage(self) -> None:
        """List at most one object under the root: cheap on S3 and on a folder, and it fails
        when the bucket is gone, credentials are wrong or the volume is unmounted."""
        root = self.storage.root + "/"
        if root.startswith("file://"):
            from damfleet.storage.local import path_from_uri

            path = path_from_uri(root)
            existing = path if path.exists() else path.parent  # created on first write
            if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
                raise PermissionError(f"storage root {path} is not a writable folder")
            return
        async for _ in self.storage.list(root):
            break

    async def run(self) -> None:
        while True:
            await self.probe_once()
            await asyncio.sleep(self.interval)
