"""AI enrichment: whisper transcripts and YOLO detections, in-process or on a gRPC service.

Modules (heavy libraries are imported on first model load, not at import time)::

    models     InferenceModel (load once / predict) and the per-process ModelRegistry
    transcribe faster-whisper over ffmpeg-streamed PCM; JSON, WebVTT and SRT renderings
    detect     ultralytics YOLO on images and sampled video frames
    backend    LocalInference: the models of this process behind an async interface
    remote     RemoteInference: the same interface over gRPC (``damfleet inference serve``)
    server     the gRPC service and its health checking
    enrich     the stage function the ``enrich_asset`` activity wraps
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from damfleet.ai.backend import InferenceBackend, LocalInference, MediaSource
    from damfleet.ai.detect import DetectOptions, YoloModel, detect_file
    from damfleet.ai.enrich import backend_from_settings, enrich_asset
    from damfleet.ai.models import InferenceModel, ModelRegistry, get_registry
    from damfleet.ai.transcribe import TranscribeOptions, WhisperModel, to_srt, to_vtt, transcribe_file

# The names below are imported on first use (PEP 562), not with the package: a submodule such as
# damfleet.ai.probe (an exec probe run every few seconds) or damfleet.ai.security must not pay
# for numpy and the model code (0.4 s and 45 MB here) just because it lives in this package.
_HOMES = {
    "InferenceBackend": "backend", "LocalInference": "backend", "MediaSource": "backend",
    "DetectOptions": "detect", "YoloModel": "detect", "detect_file": "detect",
    "backend_from_settings": "enrich", "enrich_asset": "enrich",
    "InferenceModel": "models", "ModelRegistry": "models", "get_registry": "models",
    "TranscribeOptions": "transcribe", "WhisperModel": "transcribe", "to_srt": "transcribe",
    "to_vtt": "transcribe", "transcribe_file": "transcribe",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DetectOptions",
    "InferenceBackend",
    "InferenceModel",
    "LocalInference",
    "MediaSource",
    "ModelRegistry",
    "TranscribeOptions",
    "WhisperModel",
    "YoloModel",
    "backend_from_settings",
    "detect_file",
    "enrich_asset",
    "get_registry",
    "to_srt",
    "to_vtt",
    "transcribe_file",
]
