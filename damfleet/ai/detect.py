"""Object detection with ultralytics YOLO on images and sampled video frames.

Frames come from trusted decoders with limits: images through libvips (untrusted loaders
blocked, a pixel limit against decompression bombs, shrink-on-load to at most
``yolo_max_frame_side``), video through ffmpeg with :func:`safe_input_args`, sampling a
bounded number of frames at a fixed interval or at scene changes. ffmpeg names each
frame file after its presentation time in milliseconds (``-frame_pts`` with a 1/1000
encoder time base), so every box carries the time it was seen. Frames are analysed one
at a time, so memory does not grow with the number of frames.

Weights are a setting (a ``.pt`` or exported ``.onnx`` path): no package ships COCO
weights and nothing is downloaded. ultralytics is told to stay offline
(``YOLO_OFFLINE=1``), to keep its settings in a private folder (``YOLO_CONFIG_DIR``) and
not to sync settings; a missing weights file is a :class:`ConfigurationError`.

ultralytics is AGPL-3.0 licensed; deployments that ship the AI worker inherit that.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from damfleet.ai.models import InferenceModel, ModelRegistry, get_registry
from damfleet.errors import (
    Cancelled,
    ConfigurationError,
    CorruptMediaError,
    UnsafeMediaError,
    UnsupportedMediaError,
)
from damfleet.media.supervisor import DEVNULL, BlockingSupervised
from damfleet.media.tools import ToolTimeoutError, find_tool, safe_input_args
from damfleet.settings import AISettings
from damfleet.v1 import inference_pb2, stages_pb2

__all__ = [
    "DetectOptions",
    "DetectionCancelled",
    "YoloModel",
    "configure_ultralytics",
    "detect_file",
    "summarize_labels",
    "yolo_model",
]

log = logging.getLogger(__name__)

_FRAME_NAME = re.compile(r"^frame-(-?\d+)\.png$")


#: Detection stops with the one ``Cancelled`` of the error tree.
DetectionCancelled = Cancelled


def configure_ultralytics(config_dir: Path | None = None) -> None:
    """Keep ultralytics offline and out of the user's home; call before importing it.

    ``YOLO_OFFLINE`` stops its network probes and asset downloads, a private
    ``YOLO_CONFIG_DIR`` keeps its settings file out of ``~/.config``, and ``sync`` off
    stops analytics. Values already in the environment win (the operator's choice).
    """
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir or Path(tempfile.gettempdir()) / "damfleet-ultralytics"))
    os.environ.setdefault("YOLO_VERBOSE", "False")
    from ultralytics.utils import SETTINGS

    if SETTINGS.get("sync"):
        SETTINGS.update({"sync": False})


class YoloModel(InferenceModel[Any]):
    """An ultralytics detector from a local ``.pt`` or ``.onnx`` weights file."""

    name = "yolo"

    def __init__(self, weights: str, *, device: str = "", config_dir: Path | None = None) -> None:
        super().__init__()
        self.weights = weights
        self.device = device or None
        self.config_dir = config_dir

    @property
    def source(self) -> str:
        return self.weights

    def _load(self) -> Any:
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise ConfigurationError(
                f"YOLO weights {self.weights!r} not found (DAMFLEET_AI_YOLO_WEIGHTS must name a .pt or .onnx file; "
                "nothing is downloaded)"
            )
        if path.suffix.lower() not in (".pt", ".onnx"):
            raise ConfigurationError(f"YOLO weights {self.weights!r} must be a .pt or .onnx file")
        configure_ultralytics(self.config_dir)
        from ultralytics import YOLO

        try:
            return YOLO(str(path), task="detect")
        except Exception as exc:
            raise ConfigurationError(f"cannot load YOLO weights {self.weights!r}: {exc}") from exc


def yolo_model(ai: AISettings, registry: ModelRegistry | None = None, config_dir: Path | None = None) -> YoloModel:
    """The process's detector for these settings; ConfigurationError when none is configured."""
    if not ai.yolo_weights:
        raise ConfigurationError("no YOLO weights configured (DAMFLEET_AI_YOLO_WEIGHTS)")
    key = ("yolo", ai.yolo_weights, ai.yolo_device)
    return (registry or get_registry()).get(
        key, lambda: YoloModel(ai.yolo_weights, device=ai.yolo_device, config_dir=config_dir)
    )


@dataclass(frozen=True)
class DetectOptions:
    """The detector's view of the AI settings (``DAMFLEET_AI_YOLO_*``): each option reads its
    setting, clamped to what the sampler can use, so every default is written once, in
    :class:`~damfleet.settings.AISettings`. Tests and benchmarks vary ``AISettings(...)``."""

    ai: AISettings = field(default_factory=AISettings)

    @classmethod
    def from_settings(cls, ai: AISettings) -> DetectOptions:
        return cls(ai)

    @property
    def confidence(self) -> float:
        return self.ai.yolo_confidence

    @property
    def iou(self) -> float:
        return self.ai.yolo_iou

    @property
    def image_size(self) -> int:
        return self.ai.yolo_image_size

    @property
    def max_frames(self) -> int:
        return max(1, self.ai.yolo_max_frames)

    @property
    def sampling(self) -> str:  # interval | scene
        return self.ai.yolo_sampling

    @property
    def interval_seconds(self) -> float:
        return max(0.04, self.ai.yolo_frame_interval_seconds)

    @property
    def scene_threshold(self) -> float:
        return self.ai.yolo_scene_threshold

    @property
    def agnostic_nms(self) -> bool:  # one box per object across classes
        return self.ai.yolo_agnostic_nms

    @property
    def max_frame_side(self) -> int:
        return max(64, self.ai.yolo_max_frame_side)

    @property
    def max_image_pixels(self) -> int:
        return self.ai.max_image_pixels

    @property
    def timeout_seconds(self) -> float:
        return self.ai.tool_timeout_seconds

    @property
    def sampling_label(self) -> str:
        if self.sampling == "scene":
            return f"scene:{self.scene_threshold:g}"
        return f"interval:{self.interval_seconds:g}s"


# ---- frames -------------------------------------------------------------------------------


def _image_frame(path: Path, options: DetectOptions) -> np.ndarray:
    """One still image as a BGR array, shrunk on load to ``max_frame_side``, EXIF orientation applied."""
    from damfleet.media.probe import configure_vips

    pyvips = configure_vips()
    try:
        header = pyvips.Image.new_from_file(str(path), access="sequential", fail=True)
    except pyvips.Error as exc:
        raise UnsupportedMediaError(f"{path.name} is not an image libvips can read: {str(exc).strip()[:300]}") from exc
    if header.width * header.height > options.max_image_pixels:
        raise UnsafeMediaError(
            f"{path.name} is {header.width}x{header.height} pixels, over the limit of {options.max_image_pixels}"
        )
    try:
        image = pyvips.Image.thumbnail(str(path), options.max_frame_side, height=options.max_frame_side,
                                       size="down", fail_on="error")
        if image.hasalpha():
            image = image.flatten(background=[255, 255, 255])
        if image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
            image = image.colourspace("srgb").cast("uchar")
        if image.bands == 1:
            image = image.bandjoin([image, image])
        pixels = np.ndarray(
            buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, image.bands)
        )
    except pyvips.Error as exc:
        raise CorruptMediaError(f"cannot decode image {path.name}: {str(exc).strip()[:300]}") from exc
    return np.ascontiguousarray(pixels[:, :, 2::-1])  # RGB -> BGR, what ultralytics expects of arrays


def _sample_video_frames(path: Path, frames_dir: Path, options: DetectOptions) -> list[tuple[float, Path]]:
    """Extract at most ``max_frames`` frames with ffmpeg; (seconds, PNG path) in time order."""
    if options.sampling == "scene":
        select = f"eq(n\\,0)+gt(scene\\,{options.scene_threshold:g})"
    else:
        select = f"isnan(prev_selected_t)+gte(t-prev_selected_t\\,{options.interval_seconds:g})"
    side = options.max_frame_side
    scale = f"scale=w='min(iw\\,{side})':h='min(ih\\,{side})':force_original_aspect_ratio=decrease"
    frames_dir.mkdir(parents=True, exist_ok=True)
    args = [
        find_tool("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error", *safe_input_args(), "-i", str(path),
        "-map", "0:v:0", "-an", "-sn", "-dn", "-vf", f"select='{select}',{scale}",
        "-fps_mode", "passthrough", "-enc_time_base:v", "1:1000", "-frame_pts", "1",
        "-frames:v", str(options.max_frames), "-y", str(frames_dir / "frame-%d.png"),
    ]
    # Supervised like every tool: a parent-death signal, and the whole group killed at the deadline.
    with BlockingSupervised(args, timeout_seconds=options.timeout_seconds, stdout=DEVNULL) as tool:
        returncode = tool.wait()
    if tool.timed_out:
        raise ToolTimeoutError(f"sampling frames of {path.name} ran longer than {options.timeout_seconds:.0f}s")
    messages = tool.stderr_tail.replace(str(path), path.name)
    found = sorted(
        (int(m.group(1)) / 1000.0, p) for p in frames_dir.iterdir() if (m := _FRAME_NAME.match(p.name))
    )
    if returncode != 0:
        if "matches no streams" in messages:
            raise UnsupportedMediaError(f"{path.name} has no video stream to sample")
        raise CorruptMediaError(f"cannot decode video frames of {path.name}: {messages or returncode}")
    if not found:
        raise CorruptMediaError(f"no decodable video frames in {path.name}" + (f": {messages}" if messages else ""))
    return found


def _read_png(path: Path) -> np.ndarray:
    import cv2

    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise CorruptMediaError(f"unreadable frame {path.name}")
    return frame


def iter_frames(
    path: Path, media_kind: str, scratch: Path, options: DetectOptions
) -> Iterator[tuple[float, np.ndarray]]:
    """(seconds, BGR frame) for an image (one frame at 0 s) or a video's sampled frames."""
    if media_kind == "image":
        yield 0.0, _image_frame(path, options)
        return
    for seconds, frame_path in _sample_video_frames(path, scratch / "frames", options):
        frame = _read_png(frame_path)
        frame_path.unlink(missing_ok=True)
        yield seconds, frame


# ---- detection ----------------------------------------------------------------------------


def predict_frame(model: YoloModel, frame: np.ndarray, options: DetectOptions) -> list[inference_pb2.Box]:
    """Boxes found in one BGR frame."""
    yolo = model.load()
    with model.lock:
        result = yolo.predict(
            frame, imgsz=options.image_size, conf=options.confidence, iou=options.iou,
            agnostic_nms=options.agnostic_nms, device=model.device, verbose=False,
        )[0]
    names = result.names
    boxes = []
    for xyxy, cls, conf in zip(result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), result.boxes.conf.tolist()):
        class_id = int(cls)
        boxes.append(
            inference_pb2.Box(
                label=str(names.get(class_id, class_id)), class_id=class_id, confidence=round(float(conf), 4),
                x0=round(xyxy[0], 1), y0=round(xyxy[1], 1), x1=round(xyxy[2], 1), y1=round(xyxy[3], 1),
            )
        )
    return boxes


def summarize_labels(frames: list[inference_pb2.Frame]) -> list[stages_pb2.DetectedLabel]:
    """Per class: the highest confidence and the number of boxes, most confident first."""
    best: dict[str, stages_pb2.DetectedLabel] = {}
    for frame in frames:
        for box in frame.boxes:
            label = best.setdefault(box.label, stages_pb2.DetectedLabel(label=box.label))
            label.count += 1
            label.max_confidence = max(label.max_confidence, box.confidence)
    return sorted(best.values(), key=lambda item: (-item.max_confidence, item.label))


def detect_file(
    path: Path,
    media_kind: str,
    model: YoloModel,
    options: DetectOptions,
    *,
    scratch: Path,
    progress: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> inference_pb2.Detections:
    """Detect objects in an image or in a video's sampled frames; blocking (run it in a thread).

    Raises:
        ConfigurationError: the weights are missing or unusable.
        CorruptMediaError / UnsupportedMediaError / UnsafeMediaError: the media cannot be decoded safely.
    """
    model.load()
    detections = inference_pb2.Detections(
        model=model.source, sampling="image" if media_kind == "image" else options.sampling_label
    )
    for index, (seconds, frame) in enumerate(iter_frames(path, media_kind, scratch, options)):
        if cancel is not None and cancel.is_set():
            raise DetectionCancelled("detection cancelled")
        height, width = frame.shape[:2]
        boxes = predict_frame(model, frame, options)
        detections.frames.append(
            inference_pb2.Frame(index=index, timestamp_seconds=seconds, width=width, height=height, boxes=boxes)
        )
        if progress is not None:
            progress(index + 1)
    detections.labels.extend(summarize_labels(list(detections.frames)))
    log.info("detected %d labels in %d frame(s) of %s", len(detections.labels), len(detections.frames), path.name)
    return detections
