"""The child side of :mod:`damfleet.transcode.helper`: ``python -m damfleet.transcode.vips_child '<json>'``.

Kept apart from the package's imports so ``-m`` runs it cleanly. It answers one request
with one JSON line on stdout: ``{"ok": true, "result": {...}}`` (exit 0) or
``{"ok": false, "error_class": ..., "message": ...}`` (exit 3).
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from damfleet.errors import ConfigurationError, DamfleetError
from damfleet.transcode.renditions import ImageSpec, WaveformSpec

__all__ = ["main"]

_EXIT_FAILED = 3


def _spec(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return cls(**clean)


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "image":
        from damfleet.transcode.images import render_image

        spec = _spec(ImageSpec, request["spec"])
        return render_image(
            Path(request["source"]), Path(request["dest"]), spec, max_pixels=int(request["max_pixels"])
        ).to_dict()
    if op == "probe_image":
        from damfleet.media.probe import read_image_header

        return read_image_header(Path(request["source"]), str(request["description"]), int(request["max_pixels"]))
    if op == "waveform":
        from damfleet.transcode.waveform import render_waveform

        spec = _spec(WaveformSpec, request["spec"])
        return render_waveform(
            Path(request["pcm"]), Path(request["json_dest"]), Path(request["png_dest"]), spec
        ).to_dict()
    raise ConfigurationError(f"unknown helper op {op!r}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        reply = {"ok": True, "result": _handle(json.loads(args[0]))}
        code = 0
    except DamfleetError as exc:
        reply = {"ok": False, "error_class": type(exc).__name__, "message": str(exc)}
        code = _EXIT_FAILED
    except MemoryError:
        reply = {"ok": False, "error_class": "ToolCrashedError", "message": "out of memory (memory limit reached)"}
        code = _EXIT_FAILED
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
