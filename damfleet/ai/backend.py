"""Where models run: in this process (:class:`LocalInference`) or on the inference service.

The enrichment function talks to an :class:`InferenceBackend` and does not care which:
the AI worker uses the local one unless ``DAMFLEET_AI_INFERENCE_URL`` names a
``damfleet inference serve`` instance (see :mod:`damfleet.ai.remote`), and that service
itself serves requests with a :class:`LocalInference`. Both return the same
``inference_pb2`` messages.

Blocking model code runs in a worker thread (never on the event loop). Cancelling the
awaiting task sets a flag the transcription loop checks between segments, so a cancelled
activity frees the model within a segment instead of finishing a long recording.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from damfleet.ai.detect import DetectOptions, detect_file, yolo_model
from damfleet.ai.models import ModelRegistry, get_registry
from damfleet.ai.transcribe import TranscribeOptions, transcribe_file, whisper_model
from damfleet.egress import disable_onnxruntime_telemetry
from damfleet.settings import AISettings
from damfleet.v1 import inference_pb2

__all__ = ["InferenceBackend", "LocalInference", "MediaSource", "ProgressFn"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Called with seconds of audio transcribed so far.
ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class MediaSource:
    """The media to analyse: its storage URI, its kind, and a local copy when there is one."""

    uri: str
    kind: str                      # "audio" | "video" | "image"
    path: Path | None = None
    duration_seconds: float = 0.0  # from the asset record, for progress reports


async def _cancellable(work: Awaitable[T], cancel: threading.Event) -> T:
    """Await blocking work running in a thread; on cancellation, stop it and wait until it has.

    A thread cannot be killed, so cancelling only sets ``cancel``, which the model loop checks
    between segments, chunks or frames. Waiting for the thread to notice keeps the caller's
    scratch folder (the media file) in place until the thread no longer reads it, and means a
    cancelled activity has released the model when it ends.
    """
    job = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(job)
    except asyncio.CancelledError:
        cancel.set()
        await asyncio.wait({job})
        if not job.cancelled() and job.exception() is not None:
            log.debug("cancelled model run ended with %r", job.exception())
        raise


class InferenceBackend(abc.ABC):
    """Transcription and detection, wherever they run."""

    #: True when the backend reads a local file (the caller downloads the original first).
    needs_local_file: bool = True

    @abc.abstractmethod
    async def transcribe(self, media: MediaSource, *, progress: ProgressFn | None = None) -> inference_pb2.Transcript:
        """A transcript of the media's first audio stream (no segments when nothing was said)."""

    @abc.abstractmethod
    async def detect(self, media: MediaSource, *, scratch: Path) -> inference_pb2.Detections:
        """Objects in the image or the video's sampled frames."""

    @abc.abstractmethod
    async def detection_available(self) -> bool:
        """False when no detector is configured (detection is then skipped with a reason)."""

    async def aclose(self) -> None:
        """Release connections (models stay loaded for the process)."""


class LocalInference(InferenceBackend):
    """Runs the models in this process, loaded once through the process's :class:`ModelRegistry`."""

    needs_local_file = True

    def __init__(self, ai: AISettings, *, registry: ModelRegistry | None = None, config_dir: Path | None = None):
        self.ai = ai
        self.registry = registry or get_registry()
        self.config_dir = config_dir
        disable_onnxruntime_telemetry()  # Silero VAD runs on onnxruntime: no telemetry from this process

    def whisper(self):
        return whisper_model(self.ai, self.registry)

    def yolo(self):
        return yolo_model(self.ai, self.registry, self.config_dir)

    def transcribe_blocking(
        self, path: Path, *, progress: ProgressFn | None = None, cancel: threading.Event | None = None
    ) -> inference_pb2.Transcript:
        return transcribe_file(
            path, self.whisper(), TranscribeOptions.from_settings(self.ai), progress=progress, cancel=cancel
        )

    def detect_blocking(
        self, path: Path, kind: str, scratch: Path, *, cancel: threading.Event | None = None
    ) -> inference_pb2.Detections:
        return detect_file(
            path, kind, self.yolo(), DetectOptions.from_settings(self.ai), scratch=scratch, cancel=cancel
        )

    async def transcribe(self, media: MediaSource, *, progress: ProgressFn | None = None) -> inference_pb2.Transcript:
        if media.path is None:
            raise ValueError("local inference needs a local copy of the media")
        cancel = threading.Event()
        return await _cancellable(
            asyncio.to_thread(self.transcribe_blocking, media.path, progress=progress, cancel=cancel), cancel
        )

    async def detect(self, media: MediaSource, *, scratch: Path) -> inference_pb2.Detections:
        if media.path is None:
            raise ValueError("local inference needs a local copy of the media")
        cancel = threading.Event()
        return await _cancellable(
            asyncio.to_thread(self.detect_blocking, media.path, media.kind, scratch, cancel=cancel), cancel
        )

    async def detection_available(self) -> bool:
        return bool(self.ai.yolo_weights)

    def preload(self) -> None:
        """Load every configured model now (the inference service does this at start)."""
        self.whisper().load()
        if self.ai.yolo_weights:
            self.yolo().load()
