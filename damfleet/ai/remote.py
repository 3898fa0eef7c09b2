"""The AI worker's client for ``damfleet inference serve`` (remote inference mode).

With ``DAMFLEET_AI_INFERENCE_URL=host:port`` the AI worker loads no models: it sends the
asset's storage URI to the service and stores what comes back. The service reads the
media itself (same storage settings), so no media bytes cross gRPC.

Failure semantics are the point of this module. When the service cannot be reached
(connection refused, DNS failure, not ready within ``inference_connect_seconds``) or
answers UNAVAILABLE/DEADLINE_EXCEEDED, the call raises :class:`TransientError`: the
activity fails *retryably*, Temporal backs off and tries again, the task stays on the
queue and nothing is marked done (Immich, by contrast, drains its queue when its ML
container is down). Errors the service raised on purpose travel back with their damfleet
error type in the trailing metadata and are re-raised as the same class, so bad media is
still non-retryable.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from damfleet import errors
from damfleet.ai.backend import InferenceBackend, MediaSource, ProgressFn
from damfleet.ai.security import ERROR_TYPE_METADATA, call_metadata, channel_credentials, channel_options
from damfleet.settings import AISettings
from damfleet.v1 import inference_pb2, inference_pb2_grpc

__all__ = ["ERROR_TYPE_METADATA", "RemoteInference", "error_from_rpc"]

#: Trailing metadata key carrying a damfleet error type from the service to the client.

_TRANSIENT_CODES = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
}


def _error_classes() -> dict[str, type[errors.DamfleetError]]:
    """Error type name -> class; parents first, so a name subclasses share maps to the parent."""
    classes: dict[str, type[errors.DamfleetError]] = {}
    for cls in errors.all_error_classes():
        classes.setdefault(cls.error_type, cls)
    return classes


def error_from_rpc(exc: grpc.aio.AioRpcError, url: str) -> errors.DamfleetError:
    """The damfleet error an RPC failure stands for (retryable unless the service said otherwise)."""
    error_type = ""
    for key, value in exc.trailing_metadata() or ():
        if key == ERROR_TYPE_METADATA:
            error_type = value if isinstance(value, str) else value.decode()
    code = exc.code()
    detail = exc.details() or code.name
    cls = _error_classes().get(error_type)
    if cls is not None and not issubclass(cls, errors.TransientError):
        return cls(detail)
    if code == grpc.StatusCode.UNAVAILABLE:
        return errors.InferenceUnavailableError(f"inference service {url} unavailable: {detail}")
    if code in _TRANSIENT_CODES or cls is not None:
        return errors.TransientError(f"inference service {url} failed ({code.name}): {detail}")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return errors.BadInputError(detail)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return errors.ConfigurationError(f"inference service {url}: {detail}")
    return errors.TransientError(f"inference service {url} failed ({code.name}): {detail}")


class RemoteInference(InferenceBackend):
    """:class:`InferenceBackend` over gRPC; one channel per worker process."""

    needs_local_file = False

    def __init__(self, url: str, ai: AISettings) -> None:
        self.url = url
        self.ai = ai
        self._channel: grpc.aio.Channel | None = None
        self._stub: inference_pb2_grpc.InferenceStub | None = None
        self._yolo_configured: bool | None = None

    async def _connected(self) -> inference_pb2_grpc.InferenceStub:
        """The stub once the channel is READY; TransientError when the service cannot be reached."""
        if self._channel is None:
            credentials = channel_credentials(self.ai)
            options = channel_options(self.ai)
            self._channel = (
                grpc.aio.secure_channel(self.url, credentials, options=options) if credentials is not None
                else grpc.aio.insecure_channel(self.url, options=options)
            )
            self._stub = inference_pb2_grpc.InferenceStub(self._channel)
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout=self.ai.inference_connect_seconds)
        except (TimeoutError, grpc.aio.AioRpcError) as exc:
            await self.aclose()
            tls = (" over TLS (is DAMFLEET_AI_INFERENCE_TLS_CA_PATH the CA that signed the service's certificate?)"
                   if channel_credentials(self.ai) is not None else "")
            raise errors.InferenceUnavailableError(
                f"inference service {self.url} unreachable{tls} after {self.ai.inference_connect_seconds:g}s; "
                "will retry (nothing marked done)"
            ) from exc
        assert self._stub is not None
        return self._stub

    def _ref(self, media: MediaSource) -> inference_pb2.MediaRef:
        return inference_pb2.MediaRef(uri=media.uri, media_kind=media.kind)

    async def transcribe(self, media: MediaSource, *, progress: ProgressFn | None = None) -> inference_pb2.Transcript:
        stub = await self._connected()
        request = inference_pb2.TranscribeRequest(media=self._ref(media), request_id=Path(media.uri).name)
        transcript: inference_pb2.Transcript | None = None
        try:
            async for event in stub.Transcribe(request, timeout=self.ai.inference_timeout_seconds,
                                                 metadata=call_metadata(self.ai)):
                if event.HasField("progress") and progress is not None:
                    progress(event.progress.transcribed_seconds)
                elif event.HasField("transcript"):
                    transcript = event.transcript
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.url) from exc
        if transcript is None:
            raise errors.TransientError(f"inference service {self.url} ended the transcription without a result")
        return transcript

    async def detect(self, media: MediaSource, *, scratch: Path) -> inference_pb2.Detections:
        stub = await self._connected()
        request = inference_pb2.DetectRequest(media=self._ref(media), request_id=Path(media.uri).name)
        try:
            return await stub.Detect(request, timeout=self.ai.inference_timeout_seconds,
                                     metadata=call_metadata(self.ai))
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.url) from exc

    async def health(self) -> inference_pb2.HealthResponse:
        stub = await self._connected()
        try:
            return await stub.Health(inference_pb2.HealthRequest(), timeout=30, metadata=call_metadata(self.ai))
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc, self.url) from exc

    async def detection_available(self) -> bool:
        health = await self.health()
        return any(m.name == "yolo" and m.configured for m in health.models)

    async def aclose(self) -> None:
        if self._channel is not None:
            channel, self._channel, self._stub = self._channel, None, None
            await channel.close()

