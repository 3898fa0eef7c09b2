"""One supervisor for every child process a worker starts.

ffmpeg (renditions and the transcription PCM stream), ffprobe, exiftool and the warm
libvips helper all run the same way, decided here once:

- an argument list, never a shell (media names are untrusted);
- wrapped by :func:`confined`: a parent-death signal, so a worker killed with SIGKILL
  takes its tools with it, and an optional address-space limit, with no core dumps;
- its own session and process group, so a kill reaches whatever the tool started;
- stderr drained all the time into a bounded tail (an undrained pipe blocks the tool;
  the tail goes into error messages);
- a deadline, and on timeout, cancellation or a failure of the caller the whole group is
  killed, TERM then KILL, and waited for: nothing is left running.

:class:`Supervised` serves callers on the event loop; :class:`BlockingSupervised` serves
one that runs in a worker thread (whisper decoding from the PCM stream, YOLO's frame
sampling).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Sequence
from types import TracebackType
from typing import IO, Self

from damfleet.errors import ToolTimeoutError

log = logging.getLogger(__name__)

__all__ = [
    "DEVNULL",
    "BlockingSupervised",
    "StderrTail",
    "Supervised",
    "confined",
    "kill_process_group",
]

#: For ``stdout=``: a child whose output goes to files, not to its parent.
DEVNULL = subprocess.DEVNULL

#: The most of a child's stderr kept in memory.
STDERR_TAIL_BYTES = 64 * 1024


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


def _signal_group(pid: int, sig: int) -> None:
    """Signal the child's whole process group (it leads its own session); gone already is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


class StderrTail:
    """The last ``max_bytes`` a child wrote to stderr (fed by one reader, read by anyone)."""

    def __init__(self, max_bytes: int = STDERR_TAIL_BYTES) -> None:
        self.max_bytes = max_bytes
        self._data = bytearray()

    def feed(self, data: bytes) -> None:
        self._data.extend(data)
        del self._data[: -self.max_bytes]

    def clear(self) -> None:
        self._data.clear()

    @property
    def data(self) -> bytes:
        return bytes(self._data)

    def text(self, max_chars: int = 600) -> str:
        """The tail as text for an error message: decoded, stripped, at most ``max_chars``."""
        return self.data.decode("utf-8", "replace").strip()[-max_chars:]


async def kill_process_group(proc: asyncio.subprocess.Process, grace_seconds: float = 3.0) -> None:
    """TERM the tool's process group, then KILL it if it has not exited after ``grace_seconds``."""
    if proc.returncode is not None:
        return
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace_seconds)
    except TimeoutError:
        log.warning("pid %s ignored SIGTERM for %.0fs; sending SIGKILL", proc.pid, grace_seconds)
        _signal_group(proc.pid, signal.SIGKILL)
        await proc.wait()


class Supervised:
    """One child on the event loop, from start to a guaranteed end.

    Use as ``async with await Supervised.start(...) as tool:``; leaving the block by any
    exception, cancellation included, kills the child's process group (shielded, so a
    cancelled activity still waits for the kill) before the exception goes on.
    """

    def __init__(
        self, proc: asyncio.subprocess.Process, name: str, *, kill_grace_seconds: float, stderr_bytes: int
    ) -> None:
        self.proc = proc
        self.name = name
        self.kill_grace_seconds = kill_grace_seconds
        self.stderr = StderrTail(stderr_bytes)
        self._drain = asyncio.create_task(self._drain_stderr())

    @classmethod
    async def start(
        cls,
        args: Sequence[str],
        *,
        name: str = "",
        memory_bytes: int = 0,
        stdin: int = asyncio.subprocess.DEVNULL,
        stdout: int = asyncio.subprocess.PIPE,
        env: dict[str, str] | None = None,
        limit: int = 1 << 16,
        kill_grace_seconds: float = 3.0,
        stderr_bytes: int = STDERR_TAIL_BYTES,
    ) -> Supervised:
        """Start ``args`` confined, in its own session, stderr drained into a tail.

        ``name`` is how messages call it (``os.path.basename(args[0])`` by default);
        ``limit`` is the line length stdout's reader accepts.
        """
        proc = await asyncio.create_subprocess_exec(
            *confined(args, memory_bytes),
            stdin=stdin,
            stdout=stdout,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            env=env,
            limit=limit,
        )
        return cls(proc, name or os.path.basename(args[0]), kill_grace_seconds=kill_grace_seconds,
                   stderr_bytes=stderr_bytes)

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := await self.proc.stderr.read(65536):
            self.stderr.feed(chunk)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    @property
    def stderr_tail(self) -> str:
        return self.stderr.text()

    def timeout_error(self, timeout_seconds: float) -> ToolTimeoutError:
        return ToolTimeoutError(f"{self.name} ran longer than {timeout_seconds:.0f}s and was killed")

    async def settle(self, timeout_seconds: float = 5.0) -> None:
        """Let the stderr reader catch the child's last words after it exited."""
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._drain), timeout_seconds)

    async def wait(self, timeout_seconds: float | None = None) -> int:
        """The exit status; past ``timeout_seconds`` the group is killed and ToolTimeoutError raised."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout_seconds)
        except TimeoutError:
            await self.kill()
            raise self.timeout_error(timeout_seconds or 0.0) from None
        await self.settle()
        return code

    async def communicate(self, timeout_seconds: float) -> bytes:
        """All of stdout, once the child has exited within ``timeout_seconds`` (else killed, ToolTimeoutError)."""
        assert self.proc.stdout is not None

        async def run() -> bytes:
            out, _ = await asyncio.gather(self.proc.stdout.read(), self.proc.wait())  # type: ignore[union-attr]
            return out

        try:
            out = await asyncio.wait_for(run(), timeout_seconds)
        except TimeoutError:
            await self.kill()
            raise self.timeout_error(timeout_seconds) from None
        await self.settle()
        return out

    async def kill(self) -> None:
        """Kill the group (TERM, then KILL after the grace period) and wait for it; idempotent."""
        await kill_process_group(self.proc, self.kill_grace_seconds)
        await self.settle(1.0)
        self._drain.cancel()

    def abandon(self) -> None:
        """SIGKILL the group without waiting (its event loop is gone)."""
        if self.proc.returncode is None:
            _signal_group(self.proc.pid, signal.SIGKILL)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None:
            await asyncio.shield(self.kill())


class BlockingSupervised:
    """The same supervision for a child read from a worker thread, with no event loop.

    A timer thread enforces the deadline (``timed_out`` then says so), a daemon thread
    drains stderr into the tail; :meth:`close` kills the group and reaps the child.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        timeout_seconds: float,
        memory_bytes: int = 0,
        stdout: int = subprocess.PIPE,
        stderr_bytes: int = STDERR_TAIL_BYTES,
    ) -> None:
        self.proc = subprocess.Popen(
            confined(args, memory_bytes), stdin=subprocess.DEVNULL, stdout=stdout,
            stderr=subprocess.PIPE, start_new_session=True,
        )
        self.stderr = StderrTail(stderr_bytes)
        self.timed_out = False
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        self._timer = threading.Timer(timeout_seconds, self._on_timeout)
        self._timer.daemon = True
        self._timer.start()

    @property
    def stdout(self) -> IO[bytes]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    @property
    def stderr_tail(self) -> str:
        return self.stderr.text()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        while chunk := self.proc.stderr.read1(65536):  # type: ignore[attr-defined]
            self.stderr.feed(chunk)

    def _on_timeout(self) -> None:
        self.timed_out = True
        self.kill()

    def kill(self) -> None:
        """SIGKILL the group now: its reader has stopped, there is nothing to finish cleanly."""
        if self.proc.poll() is None:
            _signal_group(self.proc.pid, signal.SIGKILL)

    def wait(self) -> int:
        """Wait for the child to exit on its own (or by the deadline); its exit status."""
        returncode = self.proc.wait()
        self._timer.cancel()
        self._drain.join(timeout=5)
        return returncode

    def close(self) -> None:
        """Kill the group and reap the child; safe after :meth:`wait` too."""
        self._timer.cancel()
        self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.proc.wait()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
