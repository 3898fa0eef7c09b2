"""Train the small YOLO shapes detector committed as tests/fixtures/yolo/shapes.pt.

    python scripts/train_yolo_fixture.py --export-onnx   # generate, train, evaluate, write shapes.pt + .onnx
    python scripts/train_yolo_fixture.py --export-only   # re-export the committed shapes.pt to ONNX

The committed weights were made with the defaults (40 epochs, 400 training images, seed 0)
and scored precision 0.995 / recall 1.000 on 100 new scenes (seed 12345, IoU >= 0.5).

No package ships COCO weights and nothing may be downloaded, so the detection tests use a
detector trained here from a model YAML (tests/fixtures/yolo/shapes-model.yaml, a scaled-
down yolov8n graph) on generated images: circles, squares and triangles of random colours
and sizes on noisy backgrounds. 40 epochs on 400 images at 320 px take about 12 minutes on 2
idle CPU cores (26 minutes when the committed weights were made, on a shared 2-core machine);
validation precision/recall passed 0.95 after about 20 epochs. The tests
generate *new* scenes with a different seed and check that the AI stage finds the right
classes at the right places; an untrained model would score zero there.

The scene generator and the precision/recall scorer live here (not in the tests) so the
fixture and the checks that judge it are made by the same code; tests import this file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
FIXTURE_DIR = REPO / "tests" / "fixtures" / "yolo"
MODEL_YAML = FIXTURE_DIR / "shapes-model.yaml"
WEIGHTS = FIXTURE_DIR / "shapes.pt"
ONNX_WEIGHTS = FIXTURE_DIR / "shapes.onnx"
CLASSES_YAML = FIXTURE_DIR / "shapes.yaml"

#: Class ids are positions in this tuple (and in shapes.yaml's ``names``).
CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle")


@dataclass(frozen=True)
class Box:
    """A ground-truth or detected box in pixels (x0, y0, x1, y1)."""

    label: str
    x0: float
    y0: float
    x1: float
    y1: float
    confidence: float = 1.0

    def iou(self, other: Box) -> float:
        ix = max(0.0, min(self.x1, other.x1) - max(self.x0, other.x0))
        iy = max(0.0, min(self.y1, other.y1) - max(self.y0, other.y0))
        inter = ix * iy
        union = (self.x1 - self.x0) * (self.y1 - self.y0) + (other.x1 - other.x0) * (other.y1 - other.y0) - inter
        return inter / union if union > 0 else 0.0


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A noisy background: a random gradient, per-pixel Gaussian noise and a few stray lines."""
    base = rng.uniform(40, 215, size=3)
    tilt = rng.uniform(-50, 50, size=3)
    ramp = np.linspace(0.0, 1.0, width)[None, :, None] * tilt[None, None, :]
    img = np.broadcast_to(base[None, None, :], (height, width, 3)) + ramp
    img = img + rng.normal(0, rng.uniform(8, 28), size=(height, width, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _shape_colour(rng: np.random.Generator, background_mean: np.ndarray) -> tuple[int, int, int]:
    """A colour that differs clearly from the background (otherwise the label would be a guess)."""
    for _ in range(50):
        colour = rng.integers(0, 256, size=3)
        if np.abs(colour - background_mean).sum() > 180:
            return int(colour[0]), int(colour[1]), int(colour[2])
    inverse = 255 - background_mean
    return int(inverse[0]), int(inverse[1]), int(inverse[2])


def draw_scene(
    rng: np.random.Generator, width: int = 320, height: int = 320, max_shapes: int = 3
) -> tuple[Image.Image, list[Box]]:
    """One generated image with 1..max_shapes non-overlapping shapes, and their true boxes."""
    pixels = _background(rng, width, height)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, 6))):  # distractor lines: not objects
        points = [tuple(int(v) for v in rng.integers(0, [width, height])) for _ in range(2)]
        draw.line(points, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=1)
    mean = pixels.reshape(-1, 3).mean(axis=0)
    boxes: list[Box] = []
    for _ in range(int(rng.integers(1, max_shapes + 1))):
        for _attempt in range(30):
            size = float(rng.uniform(0.12, 0.3) * min(width, height))
            x0 = float(rng.uniform(2, width - size - 2))
            y0 = float(rng.uniform(2, height - size - 2))
            label = CLASS_NAMES[int(rng.integers(0, len(CLASS_NAMES)))]
            box = Box(label, x0, y0, x0 + size, y0 + size)
            if all(box.iou(other) == 0.0 and not _near(box, other) for other in boxes):
                break
        else:
            continue
        colour = _shape_colour(rng, mean)
        if label == "circle":
            draw.ellipse([box.x0, box.y0, box.x1, box.y1], fill=colour)
        elif label == "square":
            draw.rectangle([box.x0, box.y0, box.x1, box.y1], fill=colour)
        else:
            draw.polygon([((box.x0 + box.x1) / 2, box.y0), (box.x0, box.y1), (box.x1, box.y1)], fill=colour)
        boxes.append(box)
    return image, boxes


def _near(a: Box, b: Box, gap: float = 6.0) -> bool:
    return not (a.x1 + gap < b.x0 or b.x1 + gap < a.x0 or a.y1 + gap < b.y0 or b.y1 + gap < a.y0)


def write_dataset(root: Path, split: str, count: int, seed: int, size: int = 320) -> None:
    """Images and YOLO-format labels (class cx cy w h, normalised) under root/images|labels/split."""
    rng = np.random.default_rng(seed)
    images = root / "images" / split
    labels = root / "labels" / split
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image, boxes = draw_scene(rng, size, size)
        image.save(images / f"{index:05d}.png")
        lines = [
            f"{CLASS_NAMES.index(b.label)} {(b.x0 + b.x1) / 2 / size:.6f} {(b.y0 + b.y1) / 2 / size:.6f} "
            f"{(b.x1 - b.x0) / size:.6f} {(b.y1 - b.y0) / size:.6f}"
            for b in boxes
        ]
        (labels / f"{index:05d}.txt").write_text("\n".join(lines) + "\n")


def score(truths: Sequence[Sequence[Box]], detections: Sequence[Sequence[Box]], iou: float = 0.5) -> dict[str, float]:
    """Precision and recall over images: a detection counts when its class matches an unused truth at IoU >= iou."""
    true_pos = false_pos = false_neg = 0
    for truth, found in zip(truths, detections, strict=True):
        unused = list(truth)
        for det in sorted(found, key=lambda d: -d.confidence):
            match = max(
                (t for t in unused if t.label == det.label), key=lambda t: t.iou(det), default=None
            )
            if match is not None and match.iou(det) >= iou:
                unused.remove(match)
                true_pos += 1
            else:
                false_pos += 1
        false_neg += len(unused)
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / (true_pos + false_neg) if true_pos + false_neg else 0.0
    return {"precision": precision, "recall": recall, "tp": true_pos, "fp": false_pos, "fn": false_neg}


def _offline_ultralytics(config_dir: Path) -> None:
    """Keep ultralytics off the network and out of the user's home (must run before import)."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("MPLBACKEND", "Agg")


def train(epochs: int, train_images: int, val_images: int, imgsz: int, workdir: Path, threads: int) -> Path:
    """Generate the dataset, train from the model YAML on CPU, return the best weights."""
    _offline_ultralytics(workdir / "yolo-config")
    import torch
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS

    SETTINGS.update({"sync": False})
    torch.set_num_threads(threads)
    data_root = workdir / "data"
    write_dataset(data_root, "train", train_images, seed=1)
    write_dataset(data_root, "val", val_images, seed=2)
    data_yaml = workdir / "shapes-data.yaml"
    data_yaml.write_text(
        json.dumps({"path": str(data_root), "train": "images/train", "val": "images/val",
                    "names": dict(enumerate(CLASS_NAMES))})
    )
    model = YOLO(str(MODEL_YAML), task="detect")
    model.train(
        data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=16, device="cpu", workers=0,
        project=str(workdir / "runs"), name="shapes", exist_ok=True, plots=False, amp=False,
        pretrained=False, seed=0, deterministic=True, verbose=False, patience=0, close_mosaic=max(1, epochs // 4),
        fliplr=0.0, degrees=0.0, cache=True,
    )
    best = workdir / "runs" / "shapes" / "weights" / "best.pt"
    if not best.exists():
        raise SystemExit(f"training produced no {best}")
    return best


def evaluate(weights: Path, images: int, seed: int, imgsz: int) -> dict[str, float]:
    """Precision/recall of plain ultralytics predictions on freshly generated scenes."""
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    rng = np.random.default_rng(seed)
    truths, found = [], []
    for _ in range(images):
        image, boxes = draw_scene(rng)
        result = model.predict(np.asarray(image)[:, :, ::-1], imgsz=imgsz, conf=0.25, device="cpu", verbose=False)[0]
        dets = [
            Box(result.names[int(c)], *map(float, xyxy), confidence=float(p))
            for xyxy, c, p in zip(result.boxes.xyxy.tolist(), result.boxes.cls.tolist(), result.boxes.conf.tolist())
        ]
        truths.append(boxes)
        found.append(dets)
    return score(truths, found)


def export_onnx(weights: Path, imgsz: int, workdir: Path) -> Path:
    """An ONNX export next to the .pt (static input size ``imgsz``), run by onnxruntime at inference."""
    _offline_ultralytics(workdir / "yolo-config")
    from ultralytics import YOLO

    staged = workdir / "export" / weights.name
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(weights, staged)
    exported = Path(YOLO(str(staged), task="detect").export(format="onnx", imgsz=imgsz, simplify=False, dynamic=False))
    target = weights.with_suffix(".onnx")
    shutil.copyfile(exported, target)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--train-images", type=int, default=400)
    parser.add_argument("--val-images", type=int, default=80)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=WEIGHTS)
    parser.add_argument("--keep-workdir", action="store_true")
    parser.add_argument("--export-onnx", action="store_true", help="also write shapes.onnx (needs the onnx package)")
    parser.add_argument("--export-only", action="store_true", help="export the existing --output to ONNX and stop")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="damfleet-yolo-train-"))
    if args.export_only:
        print(json.dumps({"onnx": str(export_onnx(args.output, args.imgsz, workdir))}))
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    started = time.monotonic()
    try:
        best = train(args.epochs, args.train_images, args.val_images, args.imgsz, workdir, args.threads)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(best, args.output)
        CLASSES_YAML.write_text(
            "# Class names of tests/fixtures/yolo/shapes.pt (made by scripts/train_yolo_fixture.py).\n"
            f"nc: {len(CLASS_NAMES)}\nnames:\n" + "".join(f"  {i}: {n}\n" for i, n in enumerate(CLASS_NAMES))
        )
        metrics = evaluate(args.output, images=100, seed=12345, imgsz=args.imgsz)
        if args.export_onnx:
            export_onnx(args.output, args.imgsz, workdir)
        print(json.dumps({
            "weights": str(args.output), "size_bytes": args.output.stat().st_size,
            "train_seconds": round(time.monotonic() - started, 1), "epochs": args.epochs,
            **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in metrics.items()},
        }))
        if metrics["precision"] < 0.8 or metrics["recall"] < 0.8 or math.isnan(metrics["precision"]):
            print("warning: the detector is weak; train longer (--epochs) before committing it", file=sys.stderr)
    finally:
        if not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
