"""libvips work in a child process: ``python -m damfleet.transcode.helper '<json request>'``.

libvips runs in-process as a C library, so a thread running it can be neither killed on
cancellation nor bounded in memory without taking the whole worker down with it. Each
image (or waveform) rendition therefore runs here, in its own process group, under the
same wall-clock and address-space limits as an ffmpeg run, and a cancelled activity
kills it like any other tool. The cost is one interpreter start (~0.2 s) per rendition.

Protocol: one JSON request in ``argv[1]``; one JSON line on stdout. Exit 0 with
``{"ok": true, "result": {...}}``, or exit 3 with ``{"ok": false, "error_class": ...,
"message": ...}`` naming a :mod:`damfleet.errors` / :mod:`damfleet.transcode.errors`
class, which :func:`run_helper` raises again in the parent.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from damfleet import errors as core_errors
from damfleet.errors import ConfigurationError, DamfleetError
from damfleet.media.tools import run_tool
from damfleet.transcode import errors as transcode_errors
from damfleet.transcode.errors import ToolCrashedError
from damfleet.transcode.renditions import ImageSpec, WaveformSpec

__all__ = ["helper_command", "main", "run_helper"]

_EXIT_FAILED = 3


def helper_command(request: dict[str, Any]) -> list[str]:
    """The argument list that runs one helper request."""
    return [sys.executable, "-m", "damfleet.transcode.helper", json.dumps(request)]


async def run_helper(request: dict[str, Any], *, timeout_seconds: float, memory_bytes: int = 0) -> dict[str, Any]:
    """Run one request in a child process; re-raise its damfleet error here.

    Timeouts raise ToolTimeoutError and cancellation kills the child's process group
    (both via :func:`damfleet.media.tools.run_tool`).
    """
    env = dict(os.environ)
    env["VIPS_BLOCK_UNTRUSTED"] = "1"
    env.setdefault("VIPS_CONCURRENCY", "0")
    result = await run_tool(
        helper_command(request), timeout_seconds=timeout_seconds, memory_bytes=memory_bytes, env=env
    )
    line = result.stdout.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
    try:
        reply = json.loads(line[0])
    except json.JSONDecodeError:
        reply = None
    if result.returncode < 0:
        raise ToolCrashedError(
            f"libvips helper ({request.get('op')}) was killed by signal {-result.returncode}"
            f"{' (memory limit?)' if memory_bytes else ''}: {result.stderr_tail}"
        )
    if not isinstance(reply, dict):
        # No verdict at all: the helper itself broke (import error, crash), not the media.
        raise ToolCrashedError(
            f"libvips helper ({request.get('op')}) failed with exit {result.returncode} and no reply: "
            f"{result.stderr_tail or 'no output'}"
        )
    if reply.get("ok"):
        return dict(reply["result"])
    raise _error_class(str(reply.get("error_class", "")))(str(reply.get("message", "helper failed")))


def _error_class(name: str) -> type[DamfleetError]:
    for module in (transcode_errors, core_errors):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, DamfleetError):
            return cls
    # A MemoryError or an unexpected bug in the child: retryable, with its name kept.
    return ToolCrashedError


def _spec(cls: type, data: dict[str, Any]) -> Any:
    names = {f.name for f in fields(cls)}
    clean = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
    return cls(**clean)


def spec_to_dict(spec: ImageSpec | WaveformSpec) -> dict[str, Any]:
    """A spec as JSON-able data for a helper request."""
    return asdict(spec)


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    op = request.get("op")
    if op == "image":
        from damfleet.transcode.images import render_image

        spec = _spec(ImageSpec, request["spec"])
        return render_image(
            Path(request["source"]), Path(request["dest"]), spec, max_pixels=int(request["max_pixels"])
        ).to_dict()
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
