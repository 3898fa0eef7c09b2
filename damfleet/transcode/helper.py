"""libvips work in a child process (:mod:`damfleet.transcode.vips_child`), run and read back here.

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
from dataclasses import asdict
from typing import Any

from damfleet import errors as core_errors
from damfleet.errors import DamfleetError
from damfleet.media.tools import run_tool
from damfleet.transcode import errors as transcode_errors
from damfleet.transcode.errors import (
    ToolCrashedError,
    ToolResourceLimitError,
    looks_like_memory_exhaustion,
    memory_limit_hint,
)
from damfleet.transcode.renditions import ImageSpec, WaveformSpec

__all__ = ["helper_command", "run_helper", "spec_to_dict"]


def helper_command(request: dict[str, Any]) -> list[str]:
    """The argument list that runs one helper request."""
    return [sys.executable, "-m", "damfleet.transcode.vips_child", json.dumps(request)]


async def run_helper(request: dict[str, Any], *, timeout_seconds: float, memory_bytes: int = 0) -> dict[str, Any]:
    """Run one request in a child process; re-raise its damfleet error here.

    Timeouts raise ToolTimeoutError and cancellation kills the child's process group
    (both via :func:`damfleet.media.tools.run_tool`).
    """
    env = dict(os.environ)
    env["VIPS_BLOCK_UNTRUSTED"] = "1"
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
    if not isinstance(reply, dict) and memory_bytes and looks_like_memory_exhaustion(result.stderr_tail):
        raise ToolResourceLimitError(
            f"libvips helper ({request.get('op')}) could not run: {memory_limit_hint(memory_bytes)}: "
            f"{result.stderr_tail[-300:]}"
        )
    if not isinstance(reply, dict):
        # No verdict at all: the helper itself broke (import error, crash), not the media.
        raise ToolCrashedError(
            f"libvips helper ({request.get('op')}) failed with exit {result.returncode} and no reply: "
            f"{result.stderr_tail or 'no output'}"
        )
    if reply.get("ok"):
        return dict(reply["result"])
    message = str(reply.get("message", "helper failed"))
    if memory_bytes and looks_like_memory_exhaustion(message):
        raise ToolResourceLimitError(f"libvips ({request.get('op')}): {memory_limit_hint(memory_bytes)}: {message}")
    raise _error_class(str(reply.get("error_class", "")))(message)


def _error_class(name: str) -> type[DamfleetError]:
    for module in (transcode_errors, core_errors):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, DamfleetError):
            return cls
    # A MemoryError or an unexpected bug in the child: retryable, with its name kept.
    return ToolCrashedError


def spec_to_dict(spec: ImageSpec | WaveformSpec) -> dict[str, Any]:
    """A spec as JSON-able data for a helper request."""
    return asdict(spec)
