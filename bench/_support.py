"""What every benchmark needs and none should write again: a free loopback port, ffmpeg
for generated inputs, progress lines on stderr (stdout carries only the final JSON line).

Benchmarks run as scripts (``python bench/<topic>.py``) after putting the repository on
``sys.path``, then import this module as ``bench._support``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

__all__ = ["ffmpeg", "fleet_env", "free_port", "log"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the servers a benchmark starts bind it next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fleet_env(state: Path) -> dict[str, str]:
    """The variables that give a benchmark's fleet its own state folder, a Temporal dev server
    (and UI) on free loopback ports, and workers whose metrics ports pick themselves."""
    return {
        "DAMFLEET_STATE_DIR": str(state),
        "DAMFLEET_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DAMFLEET_TEMPORAL_DEV_UI_PORT": str(free_port()),
        "DAMFLEET_WORKER_METRICS_PORT": "0",
    }


def ffmpeg(*args: str) -> None:
    """Run the fleet's own ffmpeg (the one the workers find) to make an input; fails loudly."""
    from damfleet.media.tools import find_tool

    subprocess.run([find_tool("ffmpeg"), "-hide_banner", "-nostdin", "-v", "error", "-y", *args],
                   check=True, timeout=600)


def log(message: str) -> None:
    """A progress line on stderr."""
    print(message, file=sys.stderr, flush=True)
