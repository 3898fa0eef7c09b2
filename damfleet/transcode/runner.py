"""Running one ffmpeg job with machine-readable progress, a stall watchdog and clean kills.

Commands are built with ffmpeg-python and compiled to an argument list (never a shell).
:func:`run_ffmpeg` adds ``-progress pipe:1`` and reads the ``key=value`` blocks ffmpeg
writes every half second: the percentage is ``out_time / duration``. A job is *stalled*
when none of ``out_time``, ``frame`` or ``total_size`` has advanced for
``stall_seconds`` (ffmpeg blocked on a dead input, a hung hardware encoder): it is
killed TERM-then-KILL and :class:`~damfleet.errors.ToolStalledError` (retryable) is
raised. Cancellation (``asyncio.CancelledError``) kills the process group as well and
removes the job's partial outputs before re-raising, so nothing half-written remains.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from damfleet.errors import ConfigurationError, CorruptMediaError, ToolStalledError, UnsafeMediaError
from damfleet.media.supervisor import Supervised
from damfleet.media.tools import find_tool
from damfleet.transcode.errors import (
    ScratchSpaceError,
    ToolCrashedError,
    ToolResourceLimitError,
    looks_like_memory_exhaustion,
    memory_limit_hint,
)

__all__ = [
    "FfmpegJob",
    "FfmpegProgress",
    "FfmpegResult",
    "compile_job",
    "run_ffmpeg",
]

log = logging.getLogger(__name__)

#: Options every job gets. ``-v error`` keeps stderr to real problems (its tail goes into
#: error messages); ``-nostdin`` stops ffmpeg from reading the worker's terminal.
_GLOBAL_ARGS: tuple[str, ...] = ("-hide_banner", "-nostdin", "-nostats", "-v", "error", "-y")
_PROGRESS_ARGS: tuple[str, ...] = ("-progress", "pipe:1", "-stats_period", "0.5")
#: How much of ffmpeg's stderr tail goes into a failure's message (about 30 lines).
_STDERR_CHARS = 3000


@dataclass(frozen=True)
class FfmpegJob:
    """One compiled ffmpeg command and what it writes."""

    label: str
    args: tuple[str, ...]  # full argv with the binary; no progress options yet
    duration_seconds: float  # media time the output will span (for percentages)
    outputs: tuple[Path, ...] = ()  # files or folders removed if the job does not finish

    def argv(self, *, progress: bool = True) -> list[str]:
        """The argument list to execute (progress options inserted after the binary)."""
        head, rest = self.args[0], list(self.args[1:])
        return [head, *_GLOBAL_ARGS, *(_PROGRESS_ARGS if progress else ()), *rest]


@dataclass
class FfmpegProgress:
    """The latest progress block."""

    out_time_seconds: float = 0.0
    frame: int = 0
    total_size: int = 0
    speed: str = ""
    ended: bool = False
    percent: float = 0.0
    last_advance: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class FfmpegResult:
    label: str
    out_time_seconds: float
    frames: int
    total_size: int
    wall_seconds: float


def compile_job(label: str, node: Any, *, duration_seconds: float, outputs: Sequence[Path]) -> FfmpegJob:
    """Compile an ffmpeg-python output node into a job run by the system ffmpeg."""
    args = node.compile(cmd=find_tool("ffmpeg"))
    return FfmpegJob(label, tuple(str(a) for a in args), max(0.0, duration_seconds), tuple(outputs))


def remove_outputs(paths: Sequence[Path]) -> None:
    """Delete a job's partial outputs (files or folders); missing ones are fine."""
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _parse_time(value: str) -> float | None:
    try:
        if ":" in value:
            hours, minutes, seconds = value.split(":")
            return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        return float(value)
    except ValueError:
        return None


def _apply(progress: FfmpegProgress, block: dict[str, str], duration: float) -> bool:
    """Fold one progress block into ``progress``; True when anything advanced."""
    advanced = False
    out_time: float | None = None
    raw_us = block.get("out_time_us") or block.get("out_time_ms")  # both are microseconds
    if raw_us and raw_us.lstrip("-").isdigit():
        out_time = int(raw_us) / 1_000_000
    elif "out_time" in block:
        out_time = _parse_time(block["out_time"])
    if out_time is not None and out_time > progress.out_time_seconds:
        progress.out_time_seconds = out_time
        advanced = True
    for key, attr in (("frame", "frame"), ("total_size", "total_size")):
        value = block.get(key, "")
        if value.isdigit() and int(value) > getattr(progress, attr):
            setattr(progress, attr, int(value))
            advanced = True
    progress.speed = block.get("speed", progress.speed).strip()
    if block.get("progress") == "end":
        progress.ended = True
        advanced = True
    if duration > 0:
        progress.percent = max(0.0, min(100.0, 100.0 * progress.out_time_seconds / duration))
    if progress.ended:
        progress.percent = 100.0
    return advanced


def classify_failure(label: str, returncode: int, stderr_tail: str, *, memory_bytes: int = 0) -> Exception:
    """The damfleet error for a failed ffmpeg run, decided by how it failed."""
    text = stderr_tail.strip() or "no error output"
    lowered = text.lower()
    if memory_bytes and looks_like_memory_exhaustion(text):
        return ToolResourceLimitError(
            f"ffmpeg ({label}) ran out of memory: {memory_limit_hint(memory_bytes)}: {text[-300:]}"
        )
    if returncode == 127 or "error while loading shared libraries" in lowered:
        return ConfigurationError(f"ffmpeg cannot start on this worker: {text[-300:]}")
    if returncode < 0:
        return ToolCrashedError(f"ffmpeg ({label}) was killed by signal {-returncode}: {text[-300:]}")
    if "not on whitelist" in lowered or "protocol not found" in lowered or "unsafe file name" in lowered:
        return UnsafeMediaError(f"ffmpeg ({label}) refused to follow a reference to another file or URL: {text}")
    if "no space left on device" in lowered:
        return ScratchSpaceError(f"ffmpeg ({label}) ran out of scratch space: {text[-300:]}")
    if "cannot allocate memory" in lowered:
        return ToolCrashedError(f"ffmpeg ({label}) ran out of memory: {text[-300:]}")
    return CorruptMediaError(f"ffmpeg could not make the {label} rendition (exit {returncode}): {text}")


async def run_ffmpeg(
    job: FfmpegJob,
    *,
    stall_seconds: float,
    timeout_seconds: float,
    memory_bytes: int = 0,
    on_progress: Callable[[FfmpegProgress], None] | None = None,
    kill_grace_seconds: float = 3.0,
) -> FfmpegResult:
    """Run ``job`` to completion, reporting progress; kill it if it stalls, times out or is cancelled.

    Raises:
        ToolStalledError: no progress for ``stall_seconds`` (retryable).
        ToolTimeoutError: ran past ``timeout_seconds`` (retryable).
        ToolCrashedError / CorruptMediaError / UnsafeMediaError: see :func:`classify_failure`.
    """
    started = time.monotonic()
    tool = await Supervised.start(
        job.argv(), name=f"ffmpeg ({job.label})", memory_bytes=memory_bytes, kill_grace_seconds=kill_grace_seconds
    )
    progress = FfmpegProgress()

    async def read_progress() -> None:
        assert tool.proc.stdout is not None
        block: dict[str, str] = {}
        async for raw in tool.proc.stdout:
            key, _, value = raw.decode("utf-8", "replace").strip().partition("=")
            if not key:
                continue
            block[key] = value
            if key == "progress":
                if _apply(progress, block, job.duration_seconds):
                    progress.last_advance = time.monotonic()
                if on_progress is not None:
                    on_progress(progress)
                block = {}

    async def watchdog() -> None:
        tick = max(0.1, min(1.0, stall_seconds / 4))
        while True:
            await asyncio.sleep(tick)
            if time.monotonic() - progress.last_advance > stall_seconds:
                return

    reader = asyncio.create_task(read_progress())
    exited = asyncio.create_task(tool.proc.wait())
    stalled = asyncio.create_task(watchdog())
    failure: Exception | None = None
    try:
        async with tool:  # cancellation included: no ffmpeg survives its activity
            done, _ = await asyncio.wait(
                {exited, stalled}, timeout=timeout_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if exited not in done:
                await tool.kill()
                if stalled in done:
                    failure = ToolStalledError(
                        f"ffmpeg ({job.label}) made no progress for {stall_seconds:.0f}s "
                        f"(at {progress.out_time_seconds:.1f}s of {job.duration_seconds:.1f}s) and was killed"
                    )
                else:
                    failure = tool.timeout_error(timeout_seconds)
            else:
                await asyncio.wait([reader], timeout=5.0)
                await tool.settle()
    except BaseException:
        remove_outputs(job.outputs)  # no partial file remains
        raise
    finally:
        stalled.cancel()
        reader.cancel()
        exited.cancel()
    if failure is not None:
        remove_outputs(job.outputs)
        log.warning("%s", failure)
        raise failure
    returncode = tool.returncode if tool.returncode is not None else -1
    if returncode != 0:
        remove_outputs(job.outputs)
        raise classify_failure(job.label, returncode, tool.stderr.text(_STDERR_CHARS), memory_bytes=memory_bytes)
    return FfmpegResult(
        job.label, progress.out_time_seconds, progress.frame, progress.total_size, time.monotonic() - started
    )
