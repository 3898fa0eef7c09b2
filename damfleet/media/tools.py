"""Running external media tools (ffmpeg, ffprobe, exiftool) safely.

Every tool run goes through :mod:`damfleet.media.supervisor`: an argument list (never a
shell: media names are untrusted), its own process group (so a kill reaches its
children), a wall-clock limit, an optional address-space limit, a parent-death signal (so
it dies with a SIGKILLed worker instead of encoding on as an orphan), and a TERM-then-KILL
of the group on timeout or cancellation. ffmpeg and
ffprobe read user input only through the local ``file`` protocol and a whitelist of
demuxers that cannot reference other files or URLs (no hls, concat, image2 patterns,
playlists), which closes the "HLS playlist inside an .avi" class of exploits.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from damfleet.errors import ConfigurationError, ToolTimeoutError
from damfleet.media.supervisor import Supervised, confined, kill_process_group

__all__ = [
    "SAFE_DEMUXERS",
    "ToolResult",
    "ToolTimeoutError",
    "confined",
    "find_tool",
    "kill_process_group",
    "run_tool",
    "safe_input_args",
]

#: Demuxers allowed to open user-supplied media. Container formats only: none of these
#: can pull in other files or network resources.
SAFE_DEMUXERS: tuple[str, ...] = (
    "mov,mp4,m4a,3gp,3g2,mj2",
    "matroska,webm",
    "avi",
    "mpegts",
    "mpeg",
    "mxf",
    "flv",
    "asf",
    "ogg",
    "wav",
    "w64",
    "aiff",
    "caf",
    "mp3",
    "flac",
    "aac",
    "ac3",
    "eac3",
    "dts",
    "wv",
    "ape",
    "tta",
    "amr",
    "dv",
    "gxf",
    "h264",
    "hevc",
    "m4v",
    "mpegvideo",
    "ivf",
    "nut",
    "rm",
    "truehd",
    "mjpeg",
)


def safe_input_args() -> list[str]:
    """Options placed before ``-i`` for untrusted input: local files, safe demuxers only."""
    return ["-protocol_whitelist", "file", "-format_whitelist", ",".join(SAFE_DEMUXERS)]


@dataclass(frozen=True)
class ToolResult:
    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def stderr_tail(self) -> str:
        return self.stderr.decode("utf-8", "replace").strip()[-600:]


def find_tool(name: str) -> str:
    """Absolute path of a tool on PATH, or a ConfigurationError naming the package to install."""
    path = shutil.which(name)
    if path is None:
        packages = {"ffmpeg": "ffmpeg", "ffprobe": "ffmpeg", "exiftool": "libimage-exiftool-perl"}
        raise ConfigurationError(f"{name} not found on PATH (Debian package: {packages.get(name, name)})")
    return path


async def run_tool(
    args: Sequence[str],
    *,
    timeout_seconds: float,
    memory_bytes: int = 0,
    max_output_bytes: int = 32 * 1024 * 1024,
    env: dict[str, str] | None = None,
) -> ToolResult:
    """Run a tool to completion and capture its output.

    Raises ToolTimeoutError (retryable) when it runs past ``timeout_seconds``; the
    process group is killed on timeout and on cancellation, never left behind. ``stderr``
    holds the last 64 KiB the tool wrote there.
    """
    tool = await Supervised.start(args, memory_bytes=memory_bytes, env=env)
    async with tool:
        stdout = await tool.communicate(timeout_seconds)
    return ToolResult(tuple(args), tool.returncode or 0, stdout[:max_output_bytes], tool.stderr.data)
