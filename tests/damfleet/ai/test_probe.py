"""``python -m damfleet.ai.probe``: what it counts as healthy, against real gRPC servers on loopback.

The TLS, token and client-certificate cases run against ``damfleet inference serve`` as the Helm
chart renders it (tests/deploy/test_inference_tls.py); here: a busy service, a draining one, the
bad-settings exit, and that the probe stays light (no model code imported).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from damfleet.ai import probe
from damfleet.ai.server import SERVICE_NAME
from damfleet.v1 import inference_pb2, inference_pb2_grpc
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[3]


class _Blocking(inference_pb2_grpc.InferenceServicer):
    """Health blocks until released: a stand-in for a long call holding the only RPC slot."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def Health(self, request: inference_pb2.HealthRequest, context: grpc.aio.ServicerContext
                     ) -> inference_pb2.HealthResponse:
        self.entered.set()
        await self.release.wait()
        return inference_pb2.HealthResponse(serving=True)


@pytest_asyncio.fixture
async def busy_server() -> AsyncIterator[tuple[str, HealthServicer, _Blocking]]:
    """A server whose transport allows one RPC at a time (maximum_concurrent_rpcs=1), as a proxy may."""
    server = grpc.aio.server(maximum_concurrent_rpcs=1)
    servicer = _Blocking()
    inference_pb2_grpc.add_InferenceServicer_to_server(servicer, server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    try:
        yield f"127.0.0.1:{port}", health, servicer
    finally:
        servicer.release.set()
        await server.stop(None)


async def test_a_busy_service_is_alive_but_not_ready(busy_server, tmp_path: Path) -> None:
    address, _health, servicer = busy_server
    ai = make_settings(tmp_path).ai
    async with grpc.aio.insecure_channel(address) as channel:
        occupying = asyncio.ensure_future(inference_pb2_grpc.InferenceStub(channel).Health(inference_pb2.HealthRequest()))
        await asyncio.wait_for(servicer.entered.wait(), 30)
        # A transport limit applies to health checks too: this is why --liveness exists.
        ready = await asyncio.to_thread(probe.check, address, ai, timeout=10)
        assert ready is not None and "RESOURCE_EXHAUSTED" in ready
        assert await asyncio.to_thread(probe.check, address, ai, timeout=10, liveness=True) is None
        servicer.release.set()
        await occupying
    assert await asyncio.to_thread(probe.check, address, ai, timeout=10) is None


async def test_a_draining_service_fails_the_probe(busy_server, tmp_path: Path) -> None:
    address, health, servicer = busy_server
    servicer.release.set()
    await health.enter_graceful_shutdown()
    problem = await asyncio.to_thread(probe.check, address, make_settings(tmp_path).ai, timeout=10, liveness=True)
    assert problem == f"{SERVICE_NAME} is NOT_SERVING"


def test_bad_settings_exit_2_and_no_model_code_is_imported(tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(REPO), "DAMFLEET_STATE_DIR": str(tmp_path), "DAMFLEET_AI_INFERENCE_LISTEN": "nonsense"}
    bad = subprocess.run([sys.executable, "-m", "damfleet.ai.probe"], env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "DAMFLEET_AI_INFERENCE_LISTEN must be host:port" in bad.stderr
    heavy = ("import sys, damfleet.ai.probe; print(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('numpy', 'torch', 'ultralytics', 'faster_whisper', 'typer') or m.startswith('damfleet.ai.') and "
             "m not in ('damfleet.ai.probe', 'damfleet.ai.security')))")
    imported = subprocess.run([sys.executable, "-c", heavy], env=env, capture_output=True, text=True, timeout=60,
                              check=True)
    assert imported.stdout.strip() == "[]"
