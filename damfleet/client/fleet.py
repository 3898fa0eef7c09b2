"""The client class: every group of calls (asset runs, batches, schedules, queues) in one object."""

from __future__ import annotations

from damfleet.client.batches import BatchesMixin
from damfleet.client.jobs import JobsMixin
from damfleet.client.queues import QueuesMixin
from damfleet.client.schedules import SchedulesMixin

__all__ = ["FleetClient"]


class FleetClient(JobsMixin, BatchesMixin, SchedulesMixin, QueuesMixin):
    """Typed access to the fleet's workflows: submit, follow, control, batches, schedules, queues.

    One connection (``client``) and one ``settings``; the methods come from the modules of
    this package, one group each, all sharing :class:`damfleet.client._base.FleetBase`.
    """
