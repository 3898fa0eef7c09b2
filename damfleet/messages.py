"""Error messages fit for people: no memory addresses, no private scratch paths.

ffmpeg prefixes its errors with the decoder's address (``[h264 @ 0x55d0c3a1e2c0]``) and the
stages work on copies in private scratch folders (``/var/scratch/transcode-3fa2b91c04de/clip.mov``).
Both end up in a run's error, the Temporal UI and alerts, where they mean nothing to the
reader and make identical failures look different (no grouping, no dedup in a log pipeline).
:func:`clean_message` removes them; the activity wrapper applies it to every error it raises.
"""

from __future__ import annotations

import re

__all__ = ["clean_message"]

_POINTER = re.compile(r"\s*@\s*0x[0-9a-fA-F]{6,}")
_BARE_POINTER = re.compile(r"\b0x[0-9a-fA-F]{8,}\b")
#: A scratch folder made by activities.common.scratch_dir: <root>/<purpose>-<12 hex>/
_SCRATCH = re.compile(r"(?:[^\s'\"]*/)?[a-z_]+-[0-9a-f]{12}/")


def clean_message(text: str) -> str:
    """``[h264 @ 0x55d0c3a1e2c0] error`` -> ``[h264] error``; a scratch path -> the file's name."""
    text = _POINTER.sub("", text)
    text = _BARE_POINTER.sub("0x…", text)
    return _SCRATCH.sub("", text)
