"""The gRPC inference service, started for real on a loopback port, and its client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from damfleet import samples
from damfleet.ai.backend import MediaSource
from damfleet.ai.remote import RemoteInference
from damfleet.ai.server import SERVICE_NAME, start_server
from damfleet.errors import BadInputError, CorruptMediaError, SourceNotFoundError, TransientError
from damfleet.settings import Settings
from damfleet.storage import Storage
from tests.conftest import free_port, make_settings

REPO = Path(__file__).resolve().parents[3]
WEIGHTS = REPO / "tests" / "fixtures" / "yolo" / "shapes.pt"

#: A client connected to a running service, and the storage both share.
Service = tuple[RemoteInference, Storage]


@pytest.fixture
def service_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, DAMFLEET_AI_YOLO_WEIGHTS=str(WEIGHTS), DAMFLEET_AI_YOLO_IMAGE_SIZE="320",
                         DAMFLEET_AI_WHISPER_CPU_THREADS="2", DAMFLEET_AI_INFERENCE_CONNECT_SECONDS="5",
                         DAMFLEET_AI_INFERENCE_SHARED_DIR=str(tmp_path / "shared"))


@pytest_asyncio.fixture
async def service(service_settings: Settings) -> AsyncIterator[tuple[RemoteInference, Storage]]:
    server, port, _health = await start_server(service_settings, listen="127.0.0.1:0")
    client = RemoteInference(f"127.0.0.1:{port}", service_settings.ai)
    storage = Storage.from_settings(service_settings)
    try:
        yield client, storage
    finally:
        await client.aclose()
        await storage.aclose()
        await server.stop(None)


async def _store(storage: Storage, path: Path) -> str:
    uri = storage.keys(f"s{uuid.uuid4().hex[:10]}").original(path.name)
    await storage.upload_file(path, uri)
    return uri


async def test_remote_transcription_streams_progress_and_the_transcript(service: Service) -> None:
    client, storage = service
    uri = await _store(storage, samples.speech_path())
    seen: list[float] = []
    transcript = await client.transcribe(MediaSource(uri=uri, kind="audio"), progress=seen.append)
    text = " ".join(s.text for s in transcript.segments).lower()
    assert "bicycle" in text and "delivered" in text
    assert transcript.language == "en" and transcript.segments[0].words
    assert seen and seen == sorted(seen) and seen[-1] == pytest.approx(transcript.duration_seconds)


async def test_remote_detection_and_health(service: Service, tmp_path: Path) -> None:
    import numpy as np

    from tests.damfleet.ai.test_yolo_detect import shapes_script

    client, storage = service
    image, truth = shapes_script().draw_scene(np.random.default_rng(31337))
    image.save(tmp_path / "scene.png")
    uri = await _store(storage, tmp_path / "scene.png")
    detections = await client.detect(MediaSource(uri=uri, kind="image"), scratch=tmp_path)
    assert {label.label for label in detections.labels} == {b.label for b in truth}
    health = await client.health()
    assert health.serving and {m.name: m.loaded for m in health.models} == {"whisper": True, "yolo": True}
    assert await client.detection_available()
    async with grpc.aio.insecure_channel(client.url) as channel:
        status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
    assert status.status == health_pb2.HealthCheckResponse.SERVING


async def test_service_errors_keep_their_class(service: Service, tmp_path: Path) -> None:
    client, storage = service
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"OggS" + os.urandom(3000))
    uri = await _store(storage, broken)
    with pytest.raises(CorruptMediaError):
        await client.transcribe(MediaSource(uri=uri, kind="audio"))
    with pytest.raises(SourceNotFoundError):
        await client.transcribe(MediaSource(uri=uri.replace("broken", "absent"), kind="audio"))
    outside = Path("/etc/hostname").as_uri()
    with pytest.raises(BadInputError, match="outside the inference service's storage root"):
        await client.transcribe(MediaSource(uri=outside, kind="audio"))


async def test_media_by_path_only_under_the_shared_dir(service: Service, tmp_path: Path) -> None:
    import shutil

    from damfleet.v1 import inference_pb2, inference_pb2_grpc

    client, _storage = service
    shared = tmp_path / "shared"
    shared.mkdir()
    clip = shared / "speech.opus"
    shutil.copyfile(samples.speech_path(), clip)
    async with grpc.aio.insecure_channel(client.url) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        request = inference_pb2.TranscribeRequest(media=inference_pb2.MediaRef(path=str(clip), media_kind="audio"))
        events = [event async for event in stub.Transcribe(request)]
        assert "bicycle" in events[-1].transcript.segments[0].text.lower()
        outside = inference_pb2.TranscribeRequest(media=inference_pb2.MediaRef(path=str(samples.speech_path())))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            _ = [event async for event in stub.Transcribe(outside)]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "DAMFLEET_AI_INFERENCE_SHARED_DIR" in (caught.value.details() or "")


async def test_unreachable_service_is_transient(service_settings: Settings) -> None:
    ai = service_settings.ai.model_copy(update={"inference_connect_seconds": 1.0})
    client = RemoteInference(f"127.0.0.1:{free_port()}", ai)
    with pytest.raises(TransientError, match="unreachable"):
        await client.transcribe(MediaSource(uri="file:///nothing.wav", kind="audio"))
    with pytest.raises(TransientError):
        await client.detection_available()


def test_cli_serves_and_reports_health(service_settings: Settings) -> None:
    port, metrics_port = free_port(), free_port()
    env = {**os.environ, "DAMFLEET_STATE_DIR": service_settings.state_dir,
           "DAMFLEET_STORAGE_ROOT": service_settings.storage_root, "DAMFLEET_AI_YOLO_WEIGHTS": str(WEIGHTS),
           "DAMFLEET_AI_INFERENCE_METRICS_PORT": str(metrics_port)}
    health = [sys.executable, "-m", "damfleet.cli", "inference", "health", "--url", f"127.0.0.1:{port}"]
    down = subprocess.run(health, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and '"serving": false' in down.stdout
    server = subprocess.Popen(
        [sys.executable, "-m", "damfleet.cli", "inference", "serve", "--listen", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        for _ in range(120):
            probe = subprocess.run(health, check=False, env=env, capture_output=True, text=True, timeout=60)
            if probe.returncode == 0 or server.poll() is not None:
                break
            time.sleep(0.5)
        assert probe.returncode == 0, probe.stdout + probe.stderr
        assert '"serving": true' in probe.stdout and '"yolo"' in probe.stdout
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        assert 'damfleet_ai_model_load_seconds{model="whisper"}' in metrics
        assert 'damfleet_ai_model_loads_total{model="yolo"} 1.0' in metrics
    finally:
        server.terminate()
        assert server.wait(30) == 0, "SIGTERM is a graceful stop"


async def test_a_busy_service_refuses_model_calls_but_stays_healthy(
    service_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At DAMFLEET_AI_INFERENCE_MAX_WORKERS model calls, more are refused (retryable), health is not.

    The model itself is not the subject here, so a stand-in transcription holds the one slot
    until released; server, client, probe and health service are the real ones.
    """
    import asyncio
    import threading

    from damfleet.ai import probe
    from damfleet.ai.backend import LocalInference
    from damfleet.v1 import inference_pb2

    entered, release = threading.Event(), threading.Event()

    def held_transcription(self, path, *, progress=None, cancel=None):
        entered.set()
        release.wait(120)
        return inference_pb2.Transcript(duration_seconds=1.0)

    monkeypatch.setattr(LocalInference, "transcribe_blocking", held_transcription)
    settings = service_settings.model_copy(
        update={"ai": service_settings.ai.model_copy(update={"inference_max_workers": 1})})
    server, port, _health = await start_server(settings, listen="127.0.0.1:0", preload=False)
    address = f"127.0.0.1:{port}"
    client = RemoteInference(address, settings.ai)
    storage = Storage.from_settings(settings)
    try:
        media = MediaSource(uri=await _store(storage, samples.speech_path()), kind="audio")
        first = asyncio.ensure_future(client.transcribe(media))
        assert await asyncio.to_thread(entered.wait, 60)
        with pytest.raises(TransientError, match="busy"):
            await client.transcribe(media)
        # Readiness and liveness both pass: a saturated service is never restarted mid-work.
        assert await asyncio.to_thread(probe.check, address, settings.ai, timeout=10) is None
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        release.set()
        assert (await first).duration_seconds == 1.0
        # The slot is free again.
        assert (await client.transcribe(media)).duration_seconds == 1.0
    finally:
        release.set()
        await client.aclose()
        await storage.aclose()
        await server.stop(None)
