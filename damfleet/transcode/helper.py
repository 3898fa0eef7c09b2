"""libvips work in a child process (:mod:`damfleet.transcode.vips_child`), kept warm per worker.

libvips runs in-process as a C library, so a thread running it can be neither killed on
cancellation nor bounded in memory without taking the whole worker down with it. Image
(and waveform) renditions therefore run in a child process, in its own process group,
under the same address-space limit as an ffmpeg run. Starting a Python interpreter and
libvips costs 0.2-0.4 s, so the child is kept alive between requests (one per worker
process, memory limit and request in flight, :class:`WarmHelper`) and answers them one at a time. It is
killed and replaced, never reused, when a request runs past its time limit, when the
activity is cancelled, or when it dies (a crash, the memory limit); the next request
starts a fresh one. Its libvips operation cache is off, so nothing carries over from
one asset's files to the next.

Protocol: one JSON request per line on the child's stdin; one JSON line back on stdout,
``{"ok": true, "result": {...}}`` or ``{"ok": false, "error_class": ..., "message": ...}``
naming a :mod:`damfleet.errors` / :mod:`damfleet.transcode.errors` class, which
:func:`run_helper` raises again in the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict
from typing import Any

from damfleet import errors as core_errors
from damfleet.errors import DamfleetError
from damfleet.media.supervisor import StderrTail, Supervised
from damfleet.media.tools import ToolTimeoutError
from damfleet.transcode import errors as transcode_errors
from damfleet.transcode.errors import (
    ToolCrashedError,
    ToolResourceLimitError,
    looks_like_memory_exhaustion,
    memory_limit_hint,
)
from damfleet.transcode.renditions import ImageSpec, WaveformSpec

__all__ = ["WarmHelper", "helper_command", "run_helper", "spec_to_dict"]

log = logging.getLogger(__name__)

#: The most of the child's stderr kept for error messages.
_STDERR_TAIL = 4096


def helper_command() -> list[str]:
    """The argument list that starts a helper child serving requests on stdin."""
    return [sys.executable, "-m", "damfleet.transcode.vips_child", "--serve"]


class WarmHelper:
    """One long-lived helper child; requests run one at a time (a lock), each with a time limit.

    A request that times out, is cancelled or loses the child kills the child's process
    group; the next request starts a new child. Nothing else is ever reused after a failure.
    """

    def __init__(self, memory_bytes: int = 0) -> None:
        self.memory_bytes = memory_bytes
        self.tool: Supervised | None = None
        self.starts = 0
        self._lock = asyncio.Lock()
        #: The last child's stderr tail; kept after it died, for the error message.
        self._stderr = StderrTail(_STDERR_TAIL)

    @property
    def pid(self) -> int | None:
        return self.tool.pid if self.tool is not None and self.tool.returncode is None else None

    async def _start(self) -> Supervised:
        env = dict(os.environ)
        env["VIPS_BLOCK_UNTRUSTED"] = "1"
        self.tool = await Supervised.start(
            helper_command(), name="libvips helper", memory_bytes=self.memory_bytes,
            stdin=asyncio.subprocess.PIPE, env=env, limit=1 << 20, kill_grace_seconds=1.0,
            stderr_bytes=_STDERR_TAIL,
        )
        self.starts += 1
        self._stderr = self.tool.stderr
        return self.tool

    @property
    def stderr_tail(self) -> str:
        return self._stderr.text()

    def abandon(self) -> None:
        """Kill the child without waiting (its event loop is gone)."""
        tool, self.tool = self.tool, None
        if tool is not None:
            tool.abandon()

    async def close(self) -> None:
        """Stop the child (its process group), if one is running."""
        tool, self.tool = self.tool, None
        if tool is not None:
            await tool.kill()

    async def request(self, request: dict[str, Any], *, timeout_seconds: float) -> tuple[dict[str, Any] | None, int]:
        """Send one request; its reply (None when the child died without one) and the child's exit code."""
        async with self._lock:
            reused = self.tool is not None and self.tool.returncode is None
            reply, code = await self._exchange(request, timeout_seconds)
            if reply is None and reused:
                # The idle child had died since its last request (killed from outside, say):
                # that says nothing about this request, so it gets a fresh child.
                log.warning("libvips helper exited while idle (code %s); starting a new one", code)
                reply, code = await self._exchange(request, timeout_seconds)
            return reply, code

    async def _exchange(self, request: dict[str, Any], timeout_seconds: float) -> tuple[dict[str, Any] | None, int]:
        tool = self.tool if self.tool is not None and self.tool.returncode is None else await self._start()
        proc = tool.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), timeout_seconds)
        except TimeoutError:
            await self.close()
            raise ToolTimeoutError(
                f"libvips helper ({request.get('op')}) ran longer than {timeout_seconds:.0f}s and was killed"
            ) from None
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        except BaseException:
            await asyncio.shield(self.close())
            raise
        reply: Any = None
        with contextlib.suppress(json.JSONDecodeError):
            reply = json.loads(line) if line else None
        if isinstance(reply, dict):
            if reply.get("restart"):
                await self.close()  # the child asked to be replaced (it ran out of memory)
            return reply, 0
        # No usable reply: the child died (or broke its protocol). Collect how; start afresh next time.
        if line:
            await self.close()
            return None, proc.returncode or 0
        code = await tool.wait()
        self.tool = None
        return None, code


#: Idle helpers per memory limit, most recently used last. A process serving several
#: transcodes at once (the light pool's slots) gets one helper per request in flight, so
#: they never queue on one child's lock; at most its slots' worth are ever started.
_idle: dict[int, list[WarmHelper]] = {}
_helpers_loop: asyncio.AbstractEventLoop | None = None


def _idle_for(memory_bytes: int) -> list[WarmHelper]:
    """This process's idle helpers for a memory limit (a new event loop gets new helpers)."""
    global _helpers_loop
    loop = asyncio.get_running_loop()
    if loop is not _helpers_loop:
        for helpers in _idle.values():
            for old in helpers:
                old.abandon()
        _idle.clear()
        _helpers_loop = loop
    return _idle.setdefault(memory_bytes, [])


def _helper_for(memory_bytes: int) -> WarmHelper:
    """The helper the next request for this memory limit will use (the warmest idle one)."""
    idle = _idle_for(memory_bytes)
    if not idle:
        idle.append(WarmHelper(memory_bytes))
    return idle[-1]


@contextlib.contextmanager
def _leased(memory_bytes: int) -> Iterator[WarmHelper]:
    """Take the warmest idle helper (or a new one) for one request; give it back after."""
    helper = _helper_for(memory_bytes)
    idle = _idle_for(memory_bytes)
    idle.remove(helper)
    try:
        yield helper
    finally:
        idle.append(helper)


async def run_helper(request: dict[str, Any], *, timeout_seconds: float, memory_bytes: int = 0) -> dict[str, Any]:
    """Run one request in this worker's warm helper child; re-raise its damfleet error here.

    Timeouts raise ToolTimeoutError (retryable) and cancellation kills the child's process
    group; either way the next request gets a new child.
    """
    with _leased(memory_bytes) as helper:
        reply, returncode = await helper.request(request, timeout_seconds=timeout_seconds)
        stderr_tail = helper.stderr_tail
    if reply is None and returncode < 0:
        raise ToolCrashedError(
            f"libvips helper ({request.get('op')}) was killed by signal {-returncode}"
            f"{' (memory limit?)' if memory_bytes else ''}: {stderr_tail}"
        )
    if reply is None and memory_bytes and looks_like_memory_exhaustion(stderr_tail):
        raise ToolResourceLimitError(
            f"libvips helper ({request.get('op')}) could not run: {memory_limit_hint(memory_bytes)}: "
            f"{stderr_tail[-300:]}"
        )
    if reply is None:
        # No verdict at all: the helper itself broke (import error, crash), not the media.
        raise ToolCrashedError(
            f"libvips helper ({request.get('op')}) failed with exit {returncode} and no reply: "
            f"{stderr_tail or 'no output'}"
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
