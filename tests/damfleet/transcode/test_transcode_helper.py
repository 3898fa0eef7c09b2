"""The warm libvips helper: one child per worker, reused between requests, and killed and
replaced (never reused) after a timeout, a cancellation or its death."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import psutil
import pytest

from damfleet.media.tools import ToolTimeoutError
from damfleet.transcode import helper
from damfleet.transcode.renditions import rendition_spec
from tests.damfleet.transcode import transcode_media as tm


def _request(source: Path, *dests: tuple[Path, str]) -> dict[str, object]:
    """One ``images`` request: each (dest, rendition name), from one decode of ``source``."""
    return {"op": "images", "source": str(source), "max_pixels": 10**9, "targets": [
        {"dest": str(dest), "spec": helper.spec_to_dict(rendition_spec("image", name))} for dest, name in dests]}


def _thumbnail(source: Path, dest: Path) -> dict[str, object]:
    return _request(source, (dest, "thumbnail"))


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_one_child_serves_every_request(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "a.png", 640, 480)
    first = await helper.run_helper(_thumbnail(source, tmp_path / "1.webp"), timeout_seconds=120)
    warm = helper._helper_for(0)
    pid, starts = warm.pid, warm.starts
    second = await helper.run_helper(_thumbnail(source, tmp_path / "2.webp"), timeout_seconds=120)
    assert pid is not None and warm.pid == pid and warm.starts == starts
    assert first["results"][0]["width"] == second["results"][0]["width"] and (tmp_path / "2.webp").stat().st_size > 0
    assert (tmp_path / "1.webp").read_bytes() == (tmp_path / "2.webp").read_bytes()
    await warm.close()


async def test_requests_in_flight_together_each_get_a_child(tmp_path: Path) -> None:
    """The light pool runs several image transcodes per process: two requests at once use two
    warm children (not one child's lock, one after the other), and both stay warm for reuse."""
    source = tm.still(tmp_path / "a.png", 640, 480)
    for old in helper._idle_for(0):  # what earlier tests left on this event loop
        await old.close()
    helper._idle_for(0).clear()
    replies = await asyncio.gather(*(
        helper.run_helper(_thumbnail(source, tmp_path / f"{i}.webp"), timeout_seconds=120) for i in range(2)))
    assert replies[0]["results"][0]["width"] == replies[1]["results"][0]["width"]
    assert (tmp_path / "0.webp").read_bytes() == (tmp_path / "1.webp").read_bytes()
    idle = helper._idle_for(0)
    assert len(idle) == 2 and len({h.pid for h in idle}) == 2 and None not in {h.pid for h in idle}
    assert all(h.starts == 1 for h in idle)
    for warm in list(idle):
        await warm.close()


async def test_timeout_kills_the_child_and_the_next_request_gets_a_new_one(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "a.png", 2400, 1600)
    await helper.run_helper(_thumbnail(source, tmp_path / "warm.webp"), timeout_seconds=120)
    warm = helper._helper_for(0)
    pid, starts = warm.pid, warm.starts
    assert pid is not None
    with pytest.raises(ToolTimeoutError, match="ran longer than"):
        await helper.run_helper(_thumbnail(source, tmp_path / "slow.webp"), timeout_seconds=0.0001)
    assert _gone(pid)
    await helper.run_helper(_thumbnail(source, tmp_path / "after.webp"), timeout_seconds=120)
    assert warm.pid not in (None, pid) and warm.starts == starts + 1
    await warm.close()


async def test_cancellation_kills_the_child(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "a.png", 2400, 1600)
    await helper.run_helper(_thumbnail(source, tmp_path / "warm.webp"), timeout_seconds=120)
    warm = helper._helper_for(0)
    pid = warm.pid
    task = asyncio.create_task(helper.run_helper(_thumbnail(source, tmp_path / "c.webp"), timeout_seconds=120))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pid is not None and _gone(pid) and warm.pid is None


async def test_a_child_killed_while_idle_is_replaced(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "a.png", 640, 480)
    await helper.run_helper(_thumbnail(source, tmp_path / "1.webp"), timeout_seconds=120)
    warm = helper._helper_for(0)
    pid = warm.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    result = await helper.run_helper(_thumbnail(source, tmp_path / "2.webp"), timeout_seconds=120)
    assert result["results"][0]["width"] > 0 and warm.pid not in (None, pid)
    await warm.close()


async def test_a_child_killed_mid_request_fails_it_retryably_and_the_retry_gets_a_new_child(tmp_path: Path) -> None:
    """SIGKILL while the child works on a shared-decode request: the request fails retryably
    (the activity retries it) with no output left, and the retry runs in a fresh child."""
    from damfleet.transcode.errors import ToolCrashedError

    source = tm.still(tmp_path / "a.jpg", 2400, 1600, Q=90)

    def images_request(path: Path) -> dict[str, object]:
        return _request(path, (tmp_path / "out" / "t.webp", "thumbnail"), (tmp_path / "out" / "p.jpg", "preview"))

    warm = helper._helper_for(0)
    # A child that was already warm and dies is taken for one that died idle, and the request is
    # run again in a fresh child (test_a_child_killed_while_idle_is_replaced); a child that dies
    # within its first request is this request's failure.
    await warm.close()
    # A FIFO as the source holds the child inside the request, deterministically: once our
    # non-blocking writer can open it, the child has it open for reading and waits on it.
    fifo = tmp_path / "held.jpg"
    os.mkfifo(fifo)
    task = asyncio.create_task(helper.run_helper(images_request(fifo), timeout_seconds=120))
    writer = None
    for _ in range(6000):
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            await asyncio.sleep(0.01)
    assert writer is not None, "the helper never opened the source"
    pid, starts = warm.pid, warm.starts
    assert pid is not None
    try:
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ToolCrashedError, match="killed by signal 9") as caught:
            await task
    finally:
        os.close(writer)
    assert caught.value.retryable
    assert _gone(pid) and warm.pid is None
    assert not (tmp_path / "out").exists()  # nothing was written
    retried = await helper.run_helper(images_request(source), timeout_seconds=120)
    assert [r["width"] for r in retried["results"]] == [375, 2160]
    assert warm.pid not in (None, pid) and warm.starts == starts + 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p.jpg", "t.webp"]
    await warm.close()
