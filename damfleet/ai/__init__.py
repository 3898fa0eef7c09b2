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

from damfleet.ai.backend import InferenceBackend, LocalInference, MediaSource
from damfleet.ai.detect import DetectOptions, YoloModel, detect_file
from damfleet.ai.enrich import backend_from_settings, enrich_asset
from damfleet.ai.models import InferenceModel, ModelRegistry, get_registry
from damfleet.ai.transcribe import (
    TranscribeOptions,
    WhisperModel,
    to_srt,
    to_vtt,
    transcribe_file,
)

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
