"""YOLO detection with the trained shapes fixture on NEW generated images and videos.

tests/fixtures/yolo/shapes.pt was trained by scripts/train_yolo_fixture.py on scenes from
seeds 1 and 2; these tests draw scenes from other seeds, so passing means the stage finds
the right classes at the right places, not that it remembers its training set.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from damfleet.ai.detect import DetectOptions, YoloModel, detect_file, yolo_model
from damfleet.ai.models import ModelRegistry
from damfleet.errors import BadInputError, ConfigurationError, UnsafeMediaError
from damfleet.settings import AISettings
from tests.ai_support import SHAPES_WEIGHTS, shapes_script

OPTIONS = DetectOptions(AISettings(yolo_image_size=320, yolo_confidence=0.25))


@pytest.fixture(scope="module")
def detector() -> YoloModel:
    model = YoloModel(str(SHAPES_WEIGHTS), device="cpu")
    model.load()
    return model


def _boxes(shapes: ModuleType, frame) -> list:
    return [shapes.Box(b.label, b.x0, b.y0, b.x1, b.y1, b.confidence) for b in frame.boxes]


def test_finds_the_right_shapes_at_the_right_places_in_new_images(detector: YoloModel, tmp_path: Path) -> None:
    shapes = shapes_script()
    rng = np.random.default_rng(4242)  # not a training seed
    truths, found = [], []
    for index in range(40):
        image, truth = shapes.draw_scene(rng)
        path = tmp_path / f"scene-{index}.png"
        image.save(path)
        detections = detect_file(path, "image", detector, OPTIONS, scratch=tmp_path)
        assert len(detections.frames) == 1 and detections.frames[0].timestamp_seconds == 0.0
        truths.append(truth)
        found.append(_boxes(shapes, detections.frames[0]))
    metrics = shapes.score(truths, found, iou=0.5)
    print(f"\nshapes detector on 40 new images: precision {metrics['precision']:.3f} "
          f"recall {metrics['recall']:.3f} (tp {metrics['tp']}, fp {metrics['fp']}, fn {metrics['fn']}, IoU>=0.5)")
    assert metrics["precision"] >= 0.8 and metrics["recall"] >= 0.8


def _scene_video(shapes: ModuleType, folder: Path, seed: int) -> tuple[Path, list[list]]:
    """Three different scenes, 2 s each, as an H.264 MP4 (what a camera upload looks like)."""
    rng = np.random.default_rng(seed)
    truths = []
    for index in range(3):
        image, truth = shapes.draw_scene(rng)
        image.save(folder / f"scene{index}.png")
        truths.append(truth)
    video = folder / "scenes.mp4"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-y", "-framerate", "0.5", "-i", str(folder / "scene%d.png"),
         "-vf", "fps=10", "-c:v", "libx264", "-crf", "18", "-pix_fmt", "yuv420p", str(video)],
        check=True, timeout=120,
    )
    return video, truths


@pytest.mark.parametrize("sampling", ["interval", "scene"])
def test_video_frames_carry_timestamps_and_boxes(detector: YoloModel, tmp_path: Path, sampling: str) -> None:
    shapes = shapes_script()
    video, truths = _scene_video(shapes, tmp_path, seed=9001)
    options = DetectOptions(AISettings(
        yolo_image_size=320, yolo_sampling=sampling, yolo_frame_interval_seconds=2.0, yolo_scene_threshold=0.2))
    detections = detect_file(video, "video", detector, options, scratch=tmp_path)
    times = [round(frame.timestamp_seconds, 1) for frame in detections.frames]
    print(f"\n{detections.sampling}: frames at {times}")
    assert times == [0.0, 2.0, 4.0]
    metrics = shapes.score(truths, [_boxes(shapes, f) for f in detections.frames])
    assert metrics["precision"] >= 0.75 and metrics["recall"] >= 0.75, metrics
    labels = {label.label: label for label in detections.labels}
    assert set(labels) == {b.label for truth in truths for b in truth}
    assert sum(label.count for label in labels.values()) == sum(len(f.boxes) for f in detections.frames)


def test_frame_count_is_bounded(detector: YoloModel, tmp_path: Path) -> None:
    video, _ = _scene_video(shapes_script(), tmp_path, seed=5)
    options = DetectOptions(AISettings(yolo_image_size=320, yolo_frame_interval_seconds=0.5, yolo_max_frames=3))
    detections = detect_file(video, "video", detector, options, scratch=tmp_path)
    assert [round(f.timestamp_seconds, 1) for f in detections.frames] == [0.0, 0.5, 1.0]
    assert not list((tmp_path / "frames").iterdir()), "frame files are removed once analysed"


def test_missing_weights_are_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="not found"):
        YoloModel(str(tmp_path / "missing.pt")).load()
    with pytest.raises(ConfigurationError, match="no YOLO weights"):
        yolo_model(AISettings(yolo_weights=""), ModelRegistry())


def test_unreadable_and_oversized_images_are_bad_input(detector: YoloModel, tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    with pytest.raises(BadInputError):
        detect_file(broken, "image", detector, OPTIONS, scratch=tmp_path)
    big = tmp_path / "big.png"
    shapes_script().draw_scene(np.random.default_rng(1))[0].save(big)
    with pytest.raises(UnsafeMediaError, match="over the limit"):
        detect_file(big, "image", detector, DetectOptions(AISettings(max_image_pixels=10_000)), scratch=tmp_path)
    corrupt_video = tmp_path / "corrupt.mp4"
    corrupt_video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4000))
    with pytest.raises(BadInputError):
        detect_file(corrupt_video, "video", detector, OPTIONS, scratch=tmp_path)


def test_registry_loads_the_detector_once() -> None:
    registry = ModelRegistry()
    ai = AISettings(yolo_weights=str(SHAPES_WEIGHTS), yolo_device="cpu")
    first, second = yolo_model(ai, registry), yolo_model(ai, registry)
    first.load()
    second.load()
    assert first is second and first.load_count == 1 and registry.created == {"yolo": 1}


def test_onnx_weights_detect_like_the_pt(tmp_path: Path) -> None:
    """The same detector exported to ONNX (run by onnxruntime) through the same code path."""
    shapes = shapes_script()
    model = YoloModel(str(SHAPES_WEIGHTS.with_suffix(".onnx")), device="cpu")
    rng = np.random.default_rng(2024)
    truths, found = [], []
    for index in range(15):
        image, truth = shapes.draw_scene(rng)
        path = tmp_path / f"onnx-{index}.png"
        image.save(path)
        frame = detect_file(path, "image", model, OPTIONS, scratch=tmp_path).frames[0]
        truths.append(truth)
        found.append(_boxes(shapes, frame))
    metrics = shapes.score(truths, found)
    print(f"\nONNX shapes detector: precision {metrics['precision']:.3f} recall {metrics['recall']:.3f}")
    assert metrics["precision"] >= 0.8 and metrics["recall"] >= 0.8


def test_ultralytics_is_kept_offline(detector: YoloModel) -> None:
    from ultralytics.utils import SETTINGS

    assert os.environ["YOLO_OFFLINE"] == "1"
    assert os.environ["YOLO_CONFIG_DIR"] and not os.environ["YOLO_CONFIG_DIR"].startswith(str(Path.home() / ".config"))
    assert SETTINGS["sync"] is False
