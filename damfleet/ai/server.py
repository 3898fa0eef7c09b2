"""The gRPC inference service behind ``damfleet inference serve``.

It hosts the same models as a local AI worker (one :class:`LocalInference`, models
loaded once at start), so GPU machines can serve many CPU-only AI workers. Beside the
``damfleet.v1.Inference`` service it runs the standard ``grpc.health.v1.Health`` service
(``SERVING`` once the models are loaded, ``NOT_SERVING`` while shutting down), which
Kubernetes' gRPC probes and ``grpc_health_probe`` understand.

Media is referenced, never streamed: a ``MediaRef.uri`` must lie under the service's own
storage root (so a caller cannot make it read arbitrary files), a ``MediaRef.path`` under
``DAMFLEET_AI_INFERENCE_SHARED_DIR``. Errors leave as gRPC status codes with the damfleet
error type in the trailing metadata, which :mod:`damfleet.ai.remote` turns back into the
same exception class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer

from damfleet import __version__ as damfleet_version
from damfleet.ai.backend import LocalInference
from damfleet.ai.remote import ERROR_TYPE_METADATA
from damfleet.ai.security import BearerTokenInterceptor, server_credentials
from damfleet.errors import (
    BadInputError,
    ConfigurationError,
    DamfleetError,
    SourceNotFoundError,
    TransientError,
)
from damfleet.settings import Settings
from damfleet.storage import Storage, path_from_uri
from damfleet.v1 import inference_pb2, inference_pb2_grpc

__all__ = ["SERVICE_NAME", "InferenceService", "serve", "start_server"]

log = logging.getLogger(__name__)

SERVICE_NAME = "damfleet.v1.Inference"

#: RPCs allowed beyond the model-call limit: health checks and calls about to be refused.
_HEALTH_RPC_HEADROOM = 32


def _status_for(exc: DamfleetError) -> grpc.StatusCode:
    if isinstance(exc, TransientError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, ConfigurationError):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(exc, SourceNotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, BadInputError):
        return grpc.StatusCode.INVALID_ARGUMENT
    return grpc.StatusCode.INTERNAL


async def _abort(context: grpc.aio.ServicerContext, exc: DamfleetError) -> None:
    await context.abort(_status_for(exc), str(exc), trailing_metadata=((ERROR_TYPE_METADATA, exc.error_type),))


class InferenceService(inference_pb2_grpc.InferenceServicer):
    """Transcribe, Detect and Health over one process's loaded models."""

    def __init__(self, settings: Settings, local: LocalInference, storage: Storage) -> None:
        self.settings = settings
        self.local = local
        self.storage = storage
        self.scratch_root = settings.scratch_path / "inference"
        self.max_model_calls = max(1, settings.ai.inference_max_workers)
        self.model_calls = 0

    @contextlib.asynccontextmanager
    async def _model_slot(self, context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
        """Admit a Transcribe/Detect call, or refuse it as RESOURCE_EXHAUSTED (callers retry).

        The limit covers model calls only. gRPC's own ``maximum_concurrent_rpcs`` would count
        health checks too, so a saturated service would fail Kubernetes' liveness probe and be
        restarted, killing the transcriptions it was busy with. One event loop serves every
        call, so a plain counter needs no lock.
        """
        if self.model_calls >= self.max_model_calls:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"inference service busy: {self.model_calls} model calls in flight "
                f"(DAMFLEET_AI_INFERENCE_MAX_WORKERS={self.max_model_calls}); retry later",
            )
        self.model_calls += 1
        try:
            yield
        finally:
            self.model_calls -= 1

    @contextlib.asynccontextmanager
    async def _media(self, ref: inference_pb2.MediaRef) -> AsyncIterator[tuple[Path, Path]]:
        """(local media path, scratch folder) for a request; the scratch is removed afterwards."""
        self.scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="req-", dir=self.scratch_root))
        try:
            yield await self._resolve(ref, scratch), scratch
        finally:
            await asyncio.to_thread(shutil.rmtree, scratch, True)

    async def _resolve(self, ref: inference_pb2.MediaRef, scratch: Path) -> Path:
        source = ref.WhichOneof("source")
        if source == "path":
            shared = self.settings.ai.inference_shared_dir
            path = Path(ref.path).resolve()
            if not shared or not path.is_relative_to(Path(shared).resolve()):
                raise BadInputError(f"path references must lie under DAMFLEET_AI_INFERENCE_SHARED_DIR: {ref.path!r}")
            if not path.is_file():
                raise SourceNotFoundError(f"no such file on the inference service: {ref.path}")
            return path
        if source != "uri":
            raise BadInputError("MediaRef needs a uri or a path")
        root = self.storage.root.rstrip("/") + "/"
        if not ref.uri.startswith(root):
            raise BadInputError(f"{ref.uri!r} is outside the inference service's storage root {root!r}")
        if ref.uri.startswith("file://"):
            path = path_from_uri(ref.uri).resolve()
            if not path.is_relative_to(path_from_uri(root).resolve()):
                raise BadInputError(f"{ref.uri!r} escapes the storage root")
            if not path.is_file():
                raise SourceNotFoundError(f"no such object: {ref.uri}")
            return path
        target = scratch / ("media" + Path(ref.uri).suffix[:16])
        await self.storage.download_file(ref.uri, target)
        return target

    async def Transcribe(
        self, request: inference_pb2.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inference_pb2.TranscribeEvent]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[float] = asyncio.Queue()
        cancel = threading.Event()

        def progress(seconds: float) -> None:
            loop.call_soon_threadsafe(events.put_nowait, seconds)

        try:
            async with self._model_slot(context), self._media(request.media) as (path, _scratch):
                job = asyncio.ensure_future(
                    asyncio.to_thread(self.local.transcribe_blocking, path, progress=progress, cancel=cancel)
                )
                while not job.done():
                    waiter = asyncio.ensure_future(events.get())
                    await asyncio.wait({job, waiter}, return_when=asyncio.FIRST_COMPLETED)
                    if waiter.done():
                        yield inference_pb2.TranscribeEvent(
                            progress=inference_pb2.TranscribeProgress(transcribed_seconds=waiter.result())
                        )
                    else:
                        waiter.cancel()
                transcript = job.result()
                while not events.empty():  # progress that arrived with the result
                    yield inference_pb2.TranscribeEvent(
                        progress=inference_pb2.TranscribeProgress(transcribed_seconds=events.get_nowait())
                    )
            yield inference_pb2.TranscribeEvent(transcript=transcript)
        except DamfleetError as exc:
            log.warning("transcribe %s failed: %s", request.request_id, exc)
            await _abort(context, exc)
        finally:
            cancel.set()  # the caller went away or we are done: stop the model loop either way

    async def Detect(
        self, request: inference_pb2.DetectRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.Detections:
        cancel = threading.Event()
        try:
            async with self._model_slot(context), self._media(request.media) as (path, scratch):
                return await asyncio.to_thread(
                    self.local.detect_blocking, path, request.media.media_kind, scratch, cancel=cancel
                )
        except DamfleetError as exc:
            log.warning("detect %s failed: %s", request.request_id, exc)
            await _abort(context, exc)
            raise  # unreachable: abort raises
        finally:
            cancel.set()

    async def Health(
        self, request: inference_pb2.HealthRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.HealthResponse:
        return inference_pb2.HealthResponse(serving=True, models=self.model_status(), version=damfleet_version)

    def model_status(self) -> list[inference_pb2.ModelStatus]:
        whisper = self.local.whisper()
        status = [
            inference_pb2.ModelStatus(name="whisper", source=whisper.source, loaded=whisper.loaded,
                                      load_seconds=whisper.load_seconds, configured=True)
        ]
        if self.settings.ai.yolo_weights:
            yolo = self.local.yolo()
            status.append(inference_pb2.ModelStatus(name="yolo", source=yolo.source, loaded=yolo.loaded,
                                                    load_seconds=yolo.load_seconds, configured=True))
        else:
            status.append(inference_pb2.ModelStatus(name="yolo", configured=False))
        return status


async def start_server(
    settings: Settings, *, listen: str | None = None, preload: bool = True
) -> tuple[grpc.aio.Server, int, HealthServicer]:
    """Load the models, start serving on ``listen``; returns the server, its port and the health servicer."""
    local = LocalInference(settings.ai, config_dir=settings.state_path / "ultralytics")
    if preload:
        await asyncio.to_thread(local.preload)
    storage = Storage.from_settings(settings)
    # Model calls beyond DAMFLEET_AI_INFERENCE_MAX_WORKERS are refused as a retryable RESOURCE_EXHAUSTED
    # by InferenceService._model_slot (health checks are never counted); the transport bound only stops
    # a flood of connections from piling up here.
    credentials = server_credentials(settings.ai)
    token = settings.ai.inference_token.get_secret_value()
    interceptors = [BearerTokenInterceptor(token)] if token else []
    server = grpc.aio.server(
        options=[("grpc.max_send_message_length", 64 * 1024 * 1024)],
        maximum_concurrent_rpcs=max(1, settings.ai.inference_max_workers) + _HEALTH_RPC_HEADROOM,
        interceptors=interceptors,
    )
    inference_pb2_grpc.add_InferenceServicer_to_server(InferenceService(settings, local, storage), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = listen or settings.ai.inference_listen
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise ConfigurationError(f"cannot listen on {address!r}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("inference service on %s (port %d, %s, %s)", address, port,
             "TLS" + (" with client certificates" if settings.ai.inference_tls_client_ca_path else "")
             if credentials else "plaintext", "bearer token required" if interceptors else "no token")
    return server, port, health


async def serve(settings: Settings, *, listen: str | None = None, grace_seconds: float = 30.0) -> None:
    """Serve until SIGTERM/SIGINT; then report NOT_SERVING and finish in-flight calls."""
    import signal

    server, _port, health = await start_server(settings, listen=listen)
    if settings.ai.inference_metrics_port:
        from prometheus_client import start_http_server

        # Model load times (damfleet_ai_model_load_seconds) and load counts, as on an AI worker.
        start_http_server(settings.ai.inference_metrics_port, addr=settings.worker.metrics_host)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    waiter = asyncio.ensure_future(server.wait_for_termination())
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    await health.enter_graceful_shutdown()
    await server.stop(grace_seconds)
    stopper.cancel()
    log.info("inference service stopped")
