"""Worker entry points: import isolation, one /metrics endpoint, graceful SIGTERM shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Worker

from damfleet.client import FleetClient
from damfleet.policies import Queue
from damfleet.v1 import pipeline_pb2
from tests.conftest import free_port, make_settings
from tests.jobs_support import eventually
from workers.metrics import ACTIVITY_TOTAL, MetricsInterceptor

HEAVY_MODULES = ("pyvips", "ffmpeg", "torch", "faster_whisper", "ultralytics", "ctranslate2", "httpx")


@activity.defn(name="flaky_for_metrics")
async def flaky_for_metrics(fail: bool) -> str:
    if fail:
        raise ApplicationError("bad input", non_retryable=True)
    return "ok"


@workflow.defn(name="MetricsProbe", sandboxed=False)
class MetricsProbe:
    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity("flaky_for_metrics", False, start_to_close_timeout=timedelta(seconds=10))
        try:
            await workflow.execute_activity(
                "flaky_for_metrics", True, start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError:
            pass  # the failure is what is measured
        return "done"


async def test_activity_metrics_record_outcomes(temporal_env) -> None:
    """The interceptor labels each attempt with its activity, queue and outcome."""
    queue = f"metrics-{uuid.uuid4().hex[:8]}"
    async with Worker(temporal_env.client, task_queue=queue, workflows=[MetricsProbe],
                      activities=[flaky_for_metrics], interceptors=[MetricsInterceptor()]):
        await temporal_env.client.execute_workflow("MetricsProbe", id=queue, task_queue=queue)
    assert ACTIVITY_TOTAL.labels("flaky_for_metrics", queue, "completed")._value.get() == 1
    assert ACTIVITY_TOTAL.labels("flaky_for_metrics", queue, "failed_permanent")._value.get() == 1


def test_pipeline_worker_imports_no_media_or_model_libraries() -> None:
    code = (
        "import sys, workers.pipeline, workflows; "
        f"heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]; "
        "print(','.join(heavy)); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"pipeline worker imported: {result.stdout} {result.stderr[-2000:]}"


def _worker_env(tmp_path: Path, temporal_env, lane: str, metrics_port: int) -> dict[str, str]:
    target = temporal_env.client.service_client.config.target_host
    env = dict(os.environ)
    env.update({
        "DAMFLEET_TEMPORAL_ADDRESS": target,
        "DAMFLEET_STATE_DIR": str(tmp_path / "state"),
        "DAMFLEET_WORKER_QUEUE_SUFFIX": lane,
        "DAMFLEET_WORKER_METRICS_PORT": str(metrics_port),
        "DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS": "5",
    })
    return env


def _get(url: str, deadline: float) -> str:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


async def test_worker_serves_metrics_and_stops_gracefully_on_sigterm(temporal_env, tmp_path: Path) -> None:
    lane = f"-{uuid.uuid4().hex[:8]}"
    port = free_port()
    log = tmp_path / "pipeline.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "workers.pipeline"], env=_worker_env(tmp_path, temporal_env, lane, port),
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        # The worker really polls its lane's queue: a workflow started there makes progress.
        client: Client = temporal_env.client
        handle = await client.start_workflow(
            "AssetPipeline", pipeline_pb2.PipelineRequest(source_uri="file:///nonexistent.mp4"),
            id=f"metrics-{uuid.uuid4().hex}", task_queue=Queue.PIPELINE + lane,
            result_type=pipeline_pb2.PipelineResult,
        )
        for _ in range(100):
            status = await handle.query("status", result_type=pipeline_pb2.PipelineResult)
            if status.current_stage == "ingest":
                break
            await asyncio.sleep(0.2)
        assert status.current_stage == "ingest"
        await handle.terminate("test done")

        text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics", time.monotonic() + 30)
        assert f'damfleet_worker_up{{task_queue="{Queue.PIPELINE}{lane}"}} 1.0' in text
        assert "temporal_" in text, "the SDK's metrics are served on the same endpoint"
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
    output = log.read_text()
    assert code == 0, output[-2000:]
    assert "shutdown requested" in output and "stopped" in output


async def test_light_transcode_pool_polls_its_own_queue_with_its_own_slots(temporal_env, tmp_path: Path) -> None:
    """``python -m workers.transcode_light`` polls q-transcode-light (the queue the workflow
    sends images to) with DAMFLEET_TRANSCODE_LIGHT_CONCURRENCY slots, and stops on SIGTERM."""
    lane = f"-{uuid.uuid4().hex[:8]}"
    port = free_port()
    env = {**_worker_env(tmp_path, temporal_env, lane, port), "DAMFLEET_TRANSCODE_LIGHT_CONCURRENCY": "3"}
    log = tmp_path / "transcode_light.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "workers.transcode_light"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    queue = Queue.TRANSCODE_LIGHT + lane
    try:
        deadline = time.monotonic() + 120
        while True:
            text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics", deadline)
            if f'damfleet_worker_up{{task_queue="{queue}"}} 1.0' in text or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert f'damfleet_worker_up{{task_queue="{queue}"}} 1.0' in text, log.read_text()[-2000:]
        assert f'damfleet_worker_slots{{task_queue="{queue}"}} 3.0' in text
        fleet = FleetClient(temporal_env.client, make_settings(tmp_path, DAMFLEET_WORKER_QUEUE_SUFFIX=lane))

        async def polled() -> bool:
            (info,) = await fleet.queues([Queue.TRANSCODE_LIGHT])
            return info.pollers >= 1

        assert await eventually(polled, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
    assert code == 0, log.read_text()[-2000:]


def test_workflow_sandbox_modes() -> None:
    """off (default) runs unsandboxed; passthrough shares damfleet's workflow modules across
    runs; strict re-imports them per run."""
    from temporalio.worker import UnsandboxedWorkflowRunner
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from damfleet.settings import SettingsError, load_settings
    from workers.common import WORKFLOW_PACKAGES, workflow_runner

    shared = workflow_runner("passthrough")
    strict = workflow_runner("strict")
    assert isinstance(shared, SandboxedWorkflowRunner) and isinstance(strict, SandboxedWorkflowRunner)
    assert set(WORKFLOW_PACKAGES) <= shared.restrictions.passthrough_modules
    assert "workflows" in shared.restrictions.passthrough_modules
    assert not {"workflows", "damfleet"} & strict.restrictions.passthrough_modules
    assert isinstance(workflow_runner("off"), UnsandboxedWorkflowRunner)
    assert load_settings({}).worker.workflow_sandbox == "off"
    try:
        load_settings({"DAMFLEET_WORKER_WORKFLOW_SANDBOX": "none"})
    except SettingsError as exc:
        assert "DAMFLEET_WORKER_WORKFLOW_SANDBOX" in str(exc)
    else:
        raise AssertionError("an unknown sandbox mode was accepted")


@pytest.mark.parametrize(("body", "code", "stderr"), [
    ("pass", 0, ""),
    ("raise SystemExit(2)", 2, ""),
    ("raise SystemExit('error: no such queue')", 1, "error: no such queue"),
    ("raise RuntimeError('broken pool')", 1, "RuntimeError: broken pool"),
])
def test_a_pool_leaves_with_its_own_exit_code_and_skips_the_interpreter_teardown(
    body: str, code: int, stderr: str
) -> None:
    """``serve`` exits with the code Python would have used, but without interpreter teardown,
    where native threads (Temporal's core, grpc) can abort a pool that already stopped well.
    The fault is injected as an abort during teardown (an atexit hook): it must not be reached."""
    script = (
        "import atexit, os, logging\n"
        "from workers.common import serve\n"
        "atexit.register(os.abort)  # stands in for a native thread crashing the teardown\n"
        "async def main():\n"
        "    logging.getLogger('pool').warning('last line before exit')\n"
        f"    {body}\n"
        "serve(main)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == code, proc.stderr
    assert stderr in proc.stderr
    assert "last line before exit" in proc.stderr  # logs flushed before leaving
