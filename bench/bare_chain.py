"""The floor under damfleet's orchestration overhead: a bare Temporal chain on the same server.

A workflow that calls four activities one after the other, each on its own task queue and
served by its own worker process (as damfleet's stages are), each activity sleeping a
little and returning its argument. No stage logic, no search attributes, no progress, no
result bookkeeping: what Temporal, its Python SDK and this machine cost per hop, and
nothing of damfleet's.

``bench/pipeline.py`` starts these processes next to its fleet, on the same dev server,
and measures single runs of both alternately, so ``single_asset_overhead_vs_bare_chain``
compares damfleet with the cheapest chain the same server can run, in the same minutes.
Run alone, this module is one of those worker processes::

    python bench/bare_chain.py <address> <namespace> workflow|step-1..step-4
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from temporalio import activity, workflow

#: One queue per step, like damfleet's one queue per stage.
STEP_QUEUES: tuple[str, ...] = tuple(f"bench-bare-step-{n}" for n in range(1, 5))
WORKFLOW_QUEUE = "bench-bare-workflow"
#: Each step's own time; the overhead figure subtracts it (as it does damfleet's activities).
STEP_SECONDS = 0.05


@activity.defn(name="bare_step")
async def bare_step(value: str) -> str:
    await asyncio.sleep(STEP_SECONDS)
    return value


@workflow.defn(name="BareChain", sandboxed=False)
class BareChain:
    @workflow.run
    async def run(self, value: str) -> str:
        for queue in STEP_QUEUES:
            value = await workflow.execute_activity(
                bare_step, value, task_queue=queue, start_to_close_timeout=timedelta(seconds=60),
            )
        return value


class ChainRun(NamedTuple):
    """One bare chain run as its client saw it."""

    history: Any
    #: Wall clock (this host's, as the server's event times are) at the start call and at the result.
    started_at: float
    ended_at: float


class BareChainProcesses:
    """The bare chain's five worker processes (the workflow's and one per step)."""

    def __init__(self, address: str, namespace: str) -> None:
        self.address, self.namespace = address, namespace
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        for role in ("workflow", *(f"step-{n}" for n in range(1, len(STEP_QUEUES) + 1))):
            self.processes.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), self.address, self.namespace, role],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            ))

    def stop(self) -> None:
        """Stop them as the fleet's own pools are stopped (TERM, then KILL after a grace)."""
        from damfleet.launcher import _terminate

        for process in self.processes:
            _terminate(process, grace_seconds=15)

    async def run_once(self, client: Any) -> ChainRun:
        """Start one chain and wait for its result."""
        started_at = time.time()
        handle = await client.start_workflow(
            BareChain.run, "x", id=f"bench-bare-{os.getpid()}-{time.time_ns()}", task_queue=WORKFLOW_QUEUE,
        )
        await handle.result()
        ended_at = time.time()
        return ChainRun(await handle.fetch_history(), started_at, ended_at)


async def _serve(address: str, namespace: str, role: str) -> None:
    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address, namespace=namespace)
    if role == "workflow":
        worker = Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[BareChain])
    else:
        worker = Worker(client, task_queue=STEP_QUEUES[int(role.removeprefix("step-")) - 1], activities=[bare_step])
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(_serve(*sys.argv[1:4]))
