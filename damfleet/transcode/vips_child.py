"""The child side of :mod:`damfleet.transcode.helper`.

``python -m damfleet.transcode.vips_child --serve`` answers JSON requests, one per line
on stdin, each with one JSON line on stdout, until stdin closes (the parent went away):
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error_class": ..., "message": ...}``.
After running out of memory it says so (``"restart": true``) and exits, so the parent
starts a clean process. ``python -m damfleet.transcode.vips_child '<json>'`` answers one
request and exits (0, or 3 on failure). Kept apart from the package's imports so ``-m``
runs it cleanly.
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
    if op == "images":
        return _images(request)
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


def _images(request: dict[str, Any]) -> dict[str, Any]:
    """Several renditions of one image from one decode (:func:`~damfleet.transcode.images.render_images`)."""
    from damfleet.transcode.images import render_images

    targets = [(Path(item["dest"]), _spec(ImageSpec, item["spec"])) for item in request["targets"]]
    results = render_images(Path(request["source"]), targets, max_pixels=int(request["max_pixels"]))
    return {"results": [r.to_dict() for r in results]}


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"ok": True, "result": _handle(request)}
    except DamfleetError as exc:
        return {"ok": False, "error_class": type(exc).__name__, "message": str(exc)}
    except MemoryError:
        return {"ok": False, "error_class": "ToolCrashedError", "message": "out of memory (memory limit reached)",
                "restart": True}


def _serve() -> int:
    from damfleet.media.probe import configure_vips

    pyvips = configure_vips()
    # Nothing may carry over between requests: no cached operations or open files.
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_files(0)
    for line in sys.stdin:
        if not line.strip():
            continue
        reply = _answer(json.loads(line))
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if reply.get("restart"):
            return _EXIT_FAILED
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--serve"]:
        return _serve()
    reply = _answer(json.loads(args[0]))
    reply.pop("restart", None)
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
    return 0 if reply["ok"] else _EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
