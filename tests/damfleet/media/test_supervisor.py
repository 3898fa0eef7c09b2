"""The one subprocess supervisor: deadline, cancellation and stderr tail, for the whole process group."""

from __future__ import annotations

import asyncio
import sys
import time

import psutil
import pytest

from damfleet.errors import ToolTimeoutError
from damfleet.media.supervisor import BlockingSupervised, StderrTail, Supervised

# A tool that starts a grandchild in its own process group, says both pids, then hangs.
_FAMILY = [sys.executable, "-c", (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen(['sleep', '600'])\n"
    "print(child.pid, flush=True)\n"
    "sys.stderr.write('x' * 200000 + 'last words\\n'); sys.stderr.flush()\n"
    "time.sleep(600)\n"
)]


def _gone(pid: int, within: float = 30.0) -> bool:
    """True once ``pid`` has exited (a zombie counts), waiting up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


async def _grandchild(tool: Supervised) -> int:
    assert tool.proc.stdout is not None
    return int(await asyncio.wait_for(tool.proc.stdout.readline(), 60))


async def test_a_deadline_kills_the_whole_group_and_keeps_a_bounded_stderr_tail() -> None:
    tool = await Supervised.start(_FAMILY, name="family", kill_grace_seconds=1.0, stderr_bytes=4096)
    async with tool:
        grandchild = await _grandchild(tool)
        with pytest.raises(ToolTimeoutError, match="family ran longer than 1s and was killed"):
            await tool.wait(1.0)
    assert tool.returncode is not None and _gone(grandchild)
    assert len(tool.stderr.data) <= 4096 and tool.stderr_tail.endswith("last words")


async def test_cancellation_kills_the_whole_group() -> None:
    started: asyncio.Queue[tuple[Supervised, int]] = asyncio.Queue()

    async def caller() -> None:
        async with await Supervised.start(_FAMILY, kill_grace_seconds=1.0) as tool:
            await started.put((tool, await _grandchild(tool)))
            await tool.wait()

    task = asyncio.create_task(caller())
    tool, grandchild = await asyncio.wait_for(started.get(), 60)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert tool.returncode is not None and _gone(tool.pid) and _gone(grandchild)


def test_blocking_flavour_has_the_same_deadline_for_the_group() -> None:
    tool = BlockingSupervised(_FAMILY, timeout_seconds=1.0)
    with tool:
        grandchild = int(tool.stdout.readline())
        code = tool.wait()
    assert tool.timed_out and code < 0 and _gone(grandchild)
    assert tool.stderr_tail.endswith("last words")


def test_stderr_tail_keeps_the_end() -> None:
    tail = StderrTail(8)
    for piece in (b"abc", b"defgh", b"ijkl"):
        tail.feed(piece)
    assert tail.data == b"efghijkl" and tail.text(3) == "jkl"
