"""Shared helpers for the AI tests: the trained YOLO fixture and the script that made it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent
SHAPES_WEIGHTS = REPO / "tests" / "fixtures" / "yolo" / "shapes.pt"


def shapes_script() -> ModuleType:
    """scripts/train_yolo_fixture.py: the scene generator and scorer that made and judge the weights."""
    name = "train_yolo_fixture"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "train_yolo_fixture.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
