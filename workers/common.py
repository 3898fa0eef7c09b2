"""Building and running one worker pool process.

Each ``python -m workers.<stage>`` process polls exactly one task queue with exactly
that stage's activities (or, for the pipeline pool, only workflows), with concurrency
from settings, a single Prometheus ``/metrics`` endpoint (damfleet's own metrics plus
the Temporal SDK's), and graceful shutdown on SIGTERM/SIGINT: stop polling, let
in-flight work finish within ``DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS``, then cancel
what is left so Temporal retries it on another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import threading
import traceback
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Gauge, generate_latest
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from damfleet import policies
from damfleet.scratch import sweep_orphaned_scratch
from damfleet.settings import Settings, get_settings
from damfleet.temporal import connect
from workers.metrics import MetricsInterceptor

__all__ = [
    "WORKER_UP", "WORKFLOW_PACKAGES", "MetricsServer", "configure_logging", "run_worker", "serve", "workflow_runner",
]

log = logging.getLogger("damfleet.worker")

WORKER_UP = Gauge("damfleet_worker_up", "1 while the worker is polling its task queue", ["task_queue"])
WORKER_SLOTS = Gauge("damfleet_worker_slots", "Configured concurrent task slots", ["task_queue"])


def configure_logging(settings: Settings, pool: str = "") -> None:
    """Text or JSON lines with workflow/activity/asset ids (see :mod:`damfleet.logging_setup`)."""
    from damfleet.logging_setup import configure_logging as configure

    configure(settings, pool=pool)


def _pool_name(task_queue: str) -> str:
    """The pool's name for log lines: the ``workers.<pool>`` module run, else the queue."""
    import sys
    from pathlib import Path

    from workers import POOLS

    stem = Path(sys.argv[0]).stem if sys.argv and sys.argv[0] else ""
    return stem if stem in POOLS else task_queue


#: Packages the pipeline worker's sandbox passes through in "passthrough" mode: damfleet's
#: workflows and what they import of damfleet (pure data: policies, profiles, generated protobuf).
WORKFLOW_PACKAGES: tuple[str, ...] = ("workflows", "damfleet")


def workflow_runner(mode: str) -> WorkflowRunner:
    """The runner the pipeline worker runs workflows in.

    - ``strict``: the full sandbox re-imports each workflow's modules for every run and
      executes it against guarded module proxies: on two busy cores an asset's five
      workflow tasks took about 85 ms to run in it.
    - ``passthrough``: the sandbox with the workflow modules imported once and shared
      (about 50 ms). A passed-through module runs against the real standard library, so
      the sandbox no longer guards damfleet's workflow code; what is left of it is the
      cost of entering it, several times per workflow task (the SDK asks the sandboxed
      instance for its serialization context once per payload visit).
    - ``off`` (default): the SDK's unsandboxed runner, with the same guarantees as
      ``passthrough`` for damfleet's code and about 4 ms less worker CPU per asset
      (bench/pipeline.py, ``single_asset_cpu_ms``). Runs stay isolated: workflow state is
      per instance, and the modules hold only constants.

    Non-determinism is caught by the tests, which run every workflow in the strict sandbox
    (their workers use the SDK's default runner), and by the saved-history replay test.
    """
    if mode == "off":
        return UnsandboxedWorkflowRunner()
    restrictions = SandboxRestrictions.default
    if mode == "passthrough":
        restrictions = restrictions.with_passthrough_modules(*WORKFLOW_PACKAGES)
    return SandboxedWorkflowRunner(restrictions=restrictions)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MetricsServer:
    """Serves damfleet's prometheus_client registry and the SDK's metrics on one port.

    The Temporal SDK exports its own metrics (poll latency, slots, schedule-to-start)
    from its Rust core on a private loopback port; this server appends that text to
    damfleet's registry so Prometheus scrapes one endpoint per pod.
    """

    def __init__(self, host: str, port: int, sdk_port: int | None) -> None:
        self.sdk_url = f"http://127.0.0.1:{sdk_port}/metrics" if sdk_port else None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.split("?")[0] not in ("/metrics", "/"):
                    self.send_error(404)
                    return
                body = server.render()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics", daemon=True)

    def render(self) -> bytes:
        body = generate_latest(REGISTRY)
        if self.sdk_url:
            try:
                with urllib.request.urlopen(self.sdk_url, timeout=2) as response:  # noqa: S310 - loopback only
                    body += response.read()
            except OSError:
                pass
        return body

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


async def _housekeeping(settings: Settings) -> None:
    """Remove what killed workers left behind, now and every ``scratch_sweep_seconds``.

    - Scratch (a half-written proxy, a downloaded original) whose owner lock is free: the
      worker that owned it is gone. Folders with no owner file are left alone for longer
      than any activity may run.
    - On S3, damfleet's multipart uploads older than ``multipart_max_age_hours``: their
      parts are invisible but stored (and billed) until aborted.
    """
    grace = max(p.start_to_close.total_seconds() for p in policies.ACTIVITY_POLICIES.values())
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(None, lambda: sweep_orphaned_scratch(
                settings.scratch_path, unowned_grace_seconds=grace))
        except OSError as exc:
            log.warning("scratch sweep of %s failed: %s", settings.scratch_path, exc)
        if settings.storage_root.startswith("s3://"):
            await _abort_stale_uploads(settings)
        if settings.worker.scratch_sweep_seconds <= 0:
            return
        await asyncio.sleep(settings.worker.scratch_sweep_seconds)


async def _abort_stale_uploads(settings: Settings) -> None:
    from damfleet.errors import DamfleetError
    from damfleet.storage.s3 import S3Backend

    backend = S3Backend(settings.storage)
    try:
        aborted = await backend.abort_stale_uploads(
            settings.storage_root.rstrip("/") + "/", settings.storage.multipart_max_age_hours * 3600)
        if aborted:
            log.warning("aborted %d multipart uploads older than %gh under %s", aborted,
                        settings.storage.multipart_max_age_hours, settings.storage_root)
    except DamfleetError as exc:  # the store is down: the next round will try again
        log.warning("multipart upload sweep of %s failed: %s", settings.storage_root, exc)
    finally:
        await backend.aclose()


def serve(main: Callable[[], Awaitable[None]]) -> None:
    """Run a pool's ``main`` (``python -m workers.<pool>``), then leave the process at once.

    Why not return and let Python tear itself down: the Temporal SDK's Rust core and grpc keep
    native threads that can still call into Python while the interpreter finalizes, and then
    the process aborts ("Fatal Python error: PyGILState_Release ... finalizing") *after* a
    clean shutdown, so a pool that stopped well on SIGTERM exits 134 (seen in
    tests/workers/test_tracing_processes.py). By the time ``main`` returns, ``run_worker``
    has drained the worker, closed the pool's clients and flushed its spans; what is left
    is flushing logs and standard streams, then ``os._exit`` with the code Python would
    have used.
    """
    code = 0
    try:
        asyncio.run(main())
    except SystemExit as exc:
        if isinstance(exc.code, int) or exc.code is None:
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - reported as Python itself would, then the exit code 1
        traceback.print_exc()
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


async def run_worker(
    *,
    task_queue: str,
    activities: Sequence[Callable[..., Any]] = (),
    workflows: Sequence[type] = (),
    settings: Settings | None = None,
    on_shutdown: Callable[[], Any] | None = None,
    background: Callable[[Client, Settings], Awaitable[None]] | None = None,
) -> None:
    """Run one worker until SIGTERM/SIGINT, then shut it down gracefully.

    ``background(client, settings)`` runs alongside the worker and is cancelled at shutdown
    (the pipeline pool's fleet probe: queue backlog and storage health).
    """
    settings = settings or get_settings()
    configure_logging(settings, pool=_pool_name(task_queue))
    task_queue_base = task_queue
    task_queue = task_queue + settings.worker.queue_suffix
    concurrency = settings.worker.concurrency or policies.default_concurrency(task_queue_base)

    sdk_port = _free_port() if settings.worker.metrics_port else None
    # durations_as_seconds: the SDK's latency histograms in seconds like damfleet's own,
    # so one dashboard unit fits all (the SDK defaults to milliseconds).
    runtime = (
        Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
            bind_address=f"127.0.0.1:{sdk_port}", durations_as_seconds=True)))
        if sdk_port
        else None
    )
    metrics = None
    if settings.worker.metrics_port:
        from workers.fleet_metrics import register_scratch

        register_scratch(settings.scratch_path)
        metrics = MetricsServer(settings.worker.metrics_host, settings.worker.metrics_port, sdk_port).start()
        log.info("metrics on :%d/metrics", metrics.port)

    identity = settings.worker.identity or f"{task_queue}@{socket.gethostname()}:{os.getpid()}"
    if settings.tracing != "off":  # name this process in traces (damfleet-<pool>) before connect() wires spans
        from damfleet import tracing
        from damfleet.errors import ConfigurationError

        try:
            tracing.configure(settings, service=_pool_name(task_queue))
        except ConfigurationError as exc:  # the 'tracing' extra is missing: one line, not a traceback
            log.error("%s", exc)
            raise SystemExit(2) from None
    client = await connect(settings, runtime=runtime, identity=identity)
    kwargs: dict[str, Any] = {
        "task_queue": task_queue,
        "graceful_shutdown_timeout": timedelta(seconds=settings.worker.graceful_shutdown_seconds),
        "identity": identity,
        # Cancellation reaches an activity only with a heartbeat's response; the SDK would
        # otherwise throttle heartbeats to 80% of the heartbeat timeout (48 s for transcode).
        "max_heartbeat_throttle_interval": timedelta(seconds=settings.worker.heartbeat_throttle_seconds),
        "default_heartbeat_throttle_interval": timedelta(seconds=settings.worker.heartbeat_throttle_seconds),
    }
    if workflows:
        kwargs["workflows"] = list(workflows)
        kwargs["max_concurrent_workflow_tasks"] = concurrency
        kwargs["workflow_runner"] = workflow_runner(settings.worker.workflow_sandbox)
    if activities:
        kwargs["activities"] = list(activities)
        kwargs["max_concurrent_activities"] = concurrency
        kwargs["interceptors"] = [MetricsInterceptor()]
    worker = Worker(client, **kwargs)
    sweeper = asyncio.create_task(_housekeeping(settings)) if activities else None

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    WORKER_UP.labels(task_queue).set(1)
    WORKER_SLOTS.labels(task_queue).set(concurrency)
    log.info("worker %s polling %s with %d slots", identity, task_queue, concurrency)
    run_task = asyncio.create_task(worker.run())
    stop_task = asyncio.create_task(stop.wait())
    side_task = asyncio.create_task(background(client, settings)) if background is not None else None
    done, _ = await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    WORKER_UP.labels(task_queue).set(0)
    if side_task is not None:
        side_task.cancel()
    if stop_task in done:
        log.info("shutdown requested: no new tasks; waiting up to %.0fs for in-flight work",
                 settings.worker.graceful_shutdown_seconds)
        await worker.shutdown()
    else:
        stop_task.cancel()
    try:
        await run_task
    finally:
        if sweeper is not None:
            sweeper.cancel()
        if on_shutdown is not None:
            result = on_shutdown()
            if asyncio.iscoroutine(result):
                await result
        if metrics is not None:
            metrics.stop()
        if settings.tracing != "off":
            from damfleet import tracing

            tracing.flush()
        log.info("worker %s stopped", identity)
