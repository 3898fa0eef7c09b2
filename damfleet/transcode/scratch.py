"""Checking scratch space before a transcode starts, so a full disk fails fast and clearly.

A proxy, an HLS ladder and the downloaded original together need a few times the
source's size; discovering that an hour into an encode wastes the hour. The need is
``max(min_free_scratch_bytes, scratch_size_factor x source size)``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from damfleet.settings import TranscodeSettings
from damfleet.transcode.errors import ScratchSpaceError, ScratchTooSmallError

__all__ = ["check_scratch_space", "scratch_needed"]


def scratch_needed(source_bytes: int, settings: TranscodeSettings) -> int:
    return max(settings.min_free_scratch_bytes, int(source_bytes * settings.scratch_size_factor))


def _gb(value: int) -> str:
    return f"{value / 1e9:.2f} GB"


def check_scratch_space(folder: Path, source_bytes: int, settings: TranscodeSettings) -> int:
    """Raise when ``folder``'s disk cannot hold this job; returns the bytes needed.

    Raises:
        ScratchTooSmallError: the disk is smaller than the need even when empty (permanent).
        ScratchSpaceError: not enough free space now (retryable: space frees up, or another
            worker takes the task).
    """
    folder.mkdir(parents=True, exist_ok=True)
    need = scratch_needed(source_bytes, settings)
    usage = shutil.disk_usage(folder)
    hint = (
        f"needs {_gb(need)} ({settings.scratch_size_factor:g} x the {_gb(source_bytes)} source, at least "
        f"DAMFLEET_TRANSCODE_MIN_FREE_SCRATCH_BYTES={settings.min_free_scratch_bytes})"
    )
    if usage.total < need:
        raise ScratchTooSmallError(f"scratch disk {folder} holds {_gb(usage.total)} in total; this transcode {hint}")
    if usage.free < need:
        raise ScratchSpaceError(f"scratch disk {folder} has {_gb(usage.free)} free; this transcode {hint}")
    return need
