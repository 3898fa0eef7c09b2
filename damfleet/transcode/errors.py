"""Transcode-specific refinements of :mod:`damfleet.errors` (defined there, re-exported here).

Each class keeps its parent's ``error_type`` so the retry policies' non-retryable type
lists (built from :mod:`damfleet.errors`) keep matching; the class name and message say
precisely what went wrong::

    UnsupportedMediaError
    └── MissingStreamError      a rendition needs a video/audio stream the file lacks
    CorruptMediaError
    └── TruncatedMediaError     decoding stopped well short of the declared duration
    UnsafeMediaError
    └── ImageTooLargeError      pixel count over the decompression-bomb limit
    ConfigurationError
    ├── ScratchTooSmallError    the scratch disk is smaller than this source needs, even when empty
    └── ToolResourceLimitError  a tool cannot run within DAMFLEET_TRANSCODE_TOOL_MEMORY_BYTES
    TransientError
    ├── ScratchSpaceError       not enough free scratch disk for this source (another worker may have it)
    └── ToolCrashedError        a tool died from a signal (OOM kill, memory limit)
"""

from __future__ import annotations

from damfleet.errors import (
    ImageTooLargeError,
    MissingStreamError,
    ScratchSpaceError,
    ScratchTooSmallError,
    ToolCrashedError,
    ToolResourceLimitError,
    TruncatedMediaError,
)

__all__ = [
    "ImageTooLargeError",
    "MissingStreamError",
    "ScratchSpaceError",
    "ScratchTooSmallError",
    "ToolCrashedError",
    "ToolResourceLimitError",
    "TruncatedMediaError",
]


def memory_limit_hint(memory_bytes: int) -> str:
    return f"DAMFLEET_TRANSCODE_TOOL_MEMORY_BYTES={memory_bytes} ({memory_bytes / 2**20:.0f} MiB) is too low for it"


#: stderr fragments that mean "out of memory / address space", not "bad media".
MEMORY_MARKERS: tuple[str, ...] = (
    "cannot allocate memory",
    "out of memory",
    "failed to map segment",
    "error while loading shared libraries",
    "error creating thread",
    "resource temporarily unavailable",
    "memoryerror",
)


def looks_like_memory_exhaustion(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in MEMORY_MARKERS)
