"""The embedded dev server: runs and search attributes survive a restart of `damfleet dev`."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from damfleet import search_attributes as sa
from damfleet.errors import ConfigurationError
from damfleet.launcher import DevServer, Fleet, WorkerProcess
from damfleet.settings import load_settings
from damfleet.temporal import connect
from tests.conftest import free_port
from tests.jobs_support import eventually


async def test_runs_and_search_attributes_survive_a_restart(tmp_path: Path) -> None:
    settings = load_settings({
        "DAMFLEET_STATE_DIR": str(tmp_path / "state"),
        "DAMFLEET_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DAMFLEET_TEMPORAL_DEV_UI_PORT": str(free_port()),
    })
    workflow_id = f"survivor-{uuid.uuid4().hex[:8]}"
    server = DevServer(settings)
    server.start()
    try:
        await server.wait_ready()
        client = await connect(settings)
        await client.start_workflow(
            "AssetPipeline", id=workflow_id, task_queue=f"q-nobody-{workflow_id}",
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.STATE, "PENDING"),
                                                     SearchAttributePair(sa.TENANT, "acme")]),
        )
        with pytest.raises(ConfigurationError, match="already listens"):
            DevServer(settings).start()  # a second server on the same port is refused clearly
    finally:
        # Killed, not stopped: the write-ahead log syncs only at checkpoints, and a run it
        # has committed must survive the server's crash.
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()

    restarted = DevServer(settings)
    restarted.start()  # same SQLite file, same search-attribute flags: must come up again
    try:
        await restarted.wait_ready()
        client = await connect(settings)
        description = await client.get_workflow_handle(workflow_id).describe()
        assert description.typed_search_attributes.get(sa.TENANT) == "acme"
        query = 'DamfleetTenant = "acme" AND DamfleetState = "PENDING"'

        async def listed() -> list[str]:
            return [w.id async for w in client.list_workflows(query)]

        # Visibility lags the commit by up to half a second (DEV_DYNAMIC_CONFIG): wait for it.
        assert await eventually(listed) == [workflow_id]
    finally:
        restarted.stop()
    database = tmp_path / "state" / "temporal.db"
    with sqlite3.connect(database) as db:  # the setting is kept in the file
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


class _SleepyPool(WorkerProcess):
    """A pool process that only sleeps: the supervisor's behaviour, without five real workers."""

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(["sleep", "600"], start_new_session=True)


async def test_supervisor_reaps_and_restarts_a_killed_pool_with_backoff_and_a_cap(tmp_path: Path) -> None:
    settings = load_settings({"DAMFLEET_STATE_DIR": str(tmp_path / "state")})
    fleet = Fleet(settings, start_server=False)
    pool = _SleepyPool("ai_enrich", {}, tmp_path / "logs" / "ai_enrich.log")
    pool.start()
    fleet.workers.append(pool)
    reports: list[str] = []
    supervisor = asyncio.create_task(
        fleet.supervise(reports.append, interval_seconds=0.1, max_restarts=2, max_backoff_seconds=0.2))
    try:
        for round_ in range(2):
            before = pool.process
            assert before is not None
            os.kill(before.pid, signal.SIGKILL)
            for _ in range(200):
                await asyncio.sleep(0.05)
                if pool.process is not before and pool.alive:
                    break
            assert pool.process is not before and pool.alive, f"round {round_}: not restarted: {reports}"
            assert before.returncode == -signal.SIGKILL, "the dead process was reaped (no <defunct>)"
        os.kill(pool.process.pid, signal.SIGKILL)
        for _ in range(200):
            await asyncio.sleep(0.05)
            if pool.gave_up:
                break
        assert pool.gave_up and not pool.alive, "a pool in a crash loop is left down after the cap"
    finally:
        supervisor.cancel()
        fleet.stop(grace_seconds=2)
    log_text = pool.log_path.read_text()
    assert log_text.count("restarting it in") == 2 and "not restarting it" in log_text
    assert any("restarted (pid" in r for r in reports) and "not restarting it" in reports[-1]


async def test_connect_waits_for_a_frontend_that_comes_back(temporal_env, tmp_path: Path) -> None:
    from tests.faults import TcpRelay

    target = temporal_env.client.service_client.config.target_host
    host, port = target.rsplit(":", 1)
    relay = TcpRelay(host if host != "localhost" else "127.0.0.1", int(port)).start()
    try:
        settings = load_settings({"DAMFLEET_STATE_DIR": str(tmp_path / "state"),
                                  "DAMFLEET_TEMPORAL_ADDRESS": f"127.0.0.1:{relay.port}",
                                  "DAMFLEET_TEMPORAL_CONNECT_TIMEOUT_SECONDS": "60"})
        relay.outage()
        asyncio.get_running_loop().call_later(2.0, relay.restore)
        started = time.monotonic()
        client = await connect(settings)
        assert time.monotonic() - started >= 1.5, "connected through a relay that was refusing?"
        assert client.namespace == settings.temporal.namespace
        relay.outage()
        with pytest.raises(ConfigurationError, match="DAMFLEET_TEMPORAL_CONNECT_TIMEOUT_SECONDS"):
            await connect(settings, retry_seconds=1.0)
    finally:
        relay.close()


def test_the_light_transcode_pool_runs_only_while_images_are_routed_to_it(tmp_path: Path) -> None:
    """`damfleet dev` starts q-transcode-light's pool with DAMFLEET_TRANSCODE_LIGHT_QUEUE on (the
    default) and tells every pool the same value, so the workflow never routes to a queue nobody polls."""
    from damfleet.launcher import POOLS

    on = Fleet(load_settings({"DAMFLEET_STATE_DIR": str(tmp_path)}))
    off = Fleet(load_settings({"DAMFLEET_STATE_DIR": str(tmp_path), "DAMFLEET_TRANSCODE_LIGHT_QUEUE": "false"}))
    assert on.pools == POOLS and "transcode_light" in POOLS
    assert off.pools == tuple(pool for pool in POOLS if pool != "transcode_light")
    assert on.worker_env(0)["DAMFLEET_TRANSCODE_LIGHT_QUEUE"] == "true"
    assert off.worker_env(0)["DAMFLEET_TRANSCODE_LIGHT_QUEUE"] == "false"
