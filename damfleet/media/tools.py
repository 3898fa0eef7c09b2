"""Running external media tools (ffmpeg, ffprobe, exiftool) safely.

Every tool run gets an argument list (never a shell: media names are untrusted), its own
process group (so a kill reaches its children), a wall-clock limit, an optional
address-space limit, a parent-death signal (so it dies with a SIGKILLed worker instead
of encoding on as an orphan), and is killed TERM-then-KILL on timeout or cancellation. ffmpeg and
ffprobe read user input only through the local ``file`` protocol and a whitelist of
demuxers that cannot reference other files or URLs (no hls, concat, image2 patterns,
playlists), which closes the "HLS playlist inside an .avi" class of exploits.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass

from damfleet.errors import ConfigurationError, ToolTimeoutError

log = logging.getLogger(__name__)

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


@functools.cache
def _confinement_prefix() -> tuple[str, str] | None:
    """Absolute paths of util-linux's ``setpriv`` and ``prlimit``, or None (warned once) when absent."""
    setpriv, prlimit = shutil.which("setpriv"), shutil.which("prlimit")
    if setpriv and prlimit:
        return setpriv, prlimit
    log.warning(
        "setpriv/prlimit not found (Debian package util-linux): tools run without a parent-death "
        "signal or memory limit, and may outlive a worker killed with SIGKILL"
    )
    return None


def confined(args: Sequence[str], memory_bytes: int = 0) -> list[str]:
    """``args`` wrapped so the tool dies with its worker and has bounded memory and no core dumps.

    ``setpriv --pdeathsig KILL`` sets ``PR_SET_PDEATHSIG``, so a worker killed with SIGKILL
    (OOM killer, ``kill -9``, node drain) takes its ffmpeg with it instead of leaving an
    orphan that finishes an encode nobody will use while the retry encodes again;
    ``prlimit`` sets the address-space and core limits. Each execs the next, so the tool
    keeps the pid, the process group and the exit status, and the signal and limits survive
    the exec. Linux delivers the signal when the *thread* that started the child exits, so
    tools are started from long-lived threads only: the event loop's thread, or the worker's
    activity thread pool (whose threads live as long as the worker).

    Why not a ``preexec_fn`` doing the same: it forces a plain ``fork()`` of the whole
    worker, and gRPC's fork handlers then crash the child. Measured in the inference
    service: 6 of 25 transcriptions failed with ffmpeg "exit -11"; 0 of 25 without it.
    Without a ``preexec_fn``, ``subprocess`` starts children with ``vfork``/``posix_spawn``,
    which also spares a multi-GB AI worker copying its page tables for every tool run.
    """
    prefix = _confinement_prefix()
    if prefix is None:
        return list(args)
    setpriv, prlimit = prefix
    limits = [f"--as={memory_bytes}"] if memory_bytes > 0 else []
    return [setpriv, "--pdeathsig", "KILL", "--", prlimit, *limits, "--core=0", "--", *args]


async def kill_process_group(proc: asyncio.subprocess.Process, grace_seconds: float = 3.0) -> None:
    """TERM the tool's process group, then KILL it if it has not exited after ``grace_seconds``."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace_seconds)
    except TimeoutError:
        log.warning("pid %s ignored SIGTERM for %.0fs; sending SIGKILL", proc.pid, grace_seconds)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


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
    process group is killed on timeout and on cancellation, never left behind.
    """
    proc = await asyncio.create_subprocess_exec(
        *confined(args, memory_bytes),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env=env,
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout_seconds)
    except TimeoutError:
        await kill_process_group(proc)
        raise ToolTimeoutError(
            f"{os.path.basename(args[0])} ran longer than {timeout_seconds:.0f}s and was killed"
        ) from None
    except BaseException:
        await asyncio.shield(kill_process_group(proc))
        raise
    return ToolResult(tuple(args), proc.returncode or 0, stdout[:max_output_bytes], stderr[-65536:])
