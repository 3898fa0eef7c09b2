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
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from damfleet.ai.detect import DetectOptions, detect_file, yolo_model
from damfleet.ai.models import ModelRegistry, get_registry
from damfleet.ai.transcribe import TranscribeOptions, transcribe_file, whisper_model
from damfleet.settings import AISettings
from damfleet.v1 import inference_pb2

__all__ = ["InferenceBackend", "LocalInference", "MediaSource", "ProgressFn"]

#: Called with seconds of audio transcribed so far.
ProgressFn = Callable[[float], None]


@dataclass(frozen=True)
class MediaSource:
    """The media to analyse: its storage URI, its kind, and a local copy when there is one."""

    uri: str
    kind: str                      # "audio" | "video" | "image"
    path: Path | None = None
    duration_seconds: float = 0.0  # from the asset record, for progress reports


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

    def detect_blocking(self, path: Path, kind: str, scratch: Path) -> inference_pb2.Detections:
        return detect_file(path, kind, self.yolo(), DetectOptions.from_settings(self.ai), scratch=scratch)

    async def transcribe(self, media: MediaSource, *, progress: ProgressFn | None = None) -> inference_pb2.Transcript:
        if media.path is None:
            raise ValueError("local inference needs a local copy of the media")
        cancel = threading.Event()
        try:
            return await asyncio.to_thread(self.transcribe_blocking, media.path, progress=progress, cancel=cancel)
        except asyncio.CancelledError:
            cancel.set()
            raise

    async def detect(self, media: MediaSource, *, scratch: Path) -> inference_pb2.Detections:
        if media.path is None:
            raise ValueError("local inference needs a local copy of the media")
        return await asyncio.to_thread(self.detect_blocking, media.path, media.kind, scratch)

    async def detection_available(self) -> bool:
        return bool(self.ai.yolo_weights)

    def preload(self) -> None:
        """Load every configured model now (the inference service does this at start)."""
        self.whisper().load()
        if self.ai.yolo_weights:
            self.yolo().load()
