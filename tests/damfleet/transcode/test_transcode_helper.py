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


def _request(source: Path, dest: Path) -> dict[str, object]:
    return {"op": "image", "source": str(source), "dest": str(dest),
            "spec": helper.spec_to_dict(rendition_spec("image", "thumbnail")), "max_pixels": 10**9}


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_one_child_serves_every_request(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "a.png", 640, 480)
    first = await helper.run_helper(_request(source, tmp_path / "1.webp"), timeout_seconds=120)
    warm = helper._helper_for(0)
    pid, starts = warm.pid, warm.starts
    second = await helper.run_helper(_request(source, tmp_path / "2.webp"), timeout_seconds=120)
    assert pid is not None and warm.pid == pid and warm.starts == starts
    assert first["width"] == second["width"] and (tmp_path / "2.webp").stat().st_size > 0
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
        helper.run_helper(_request(source, tmp_path / f"{i}.webp"), timeout_seconds=120) for i in range(2)))
    assert replies[0]["width"] == replies[1]["width"]
    assert (tmp_path / "0.webp").read_bytes() == (tmp_path / "1.webp").read_bytes()
    idle = helper._idle_for(0)
    assert len(idle) == 2 and len({h.pid for h in idle}) == 2 and None not in {h.pid for h in idle}
    assert all(h.starts == 1 for h in idle)
    for warm in list(idle):
        await warm.close()


async def test_timeout_kills_the_child_and_the_next_request_gets_a_new_one(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "a.png", 2400, 1600)
    await helper.run_helper(_request(source, tmp_path / "warm.webp"), timeout_seconds=120)
    warm = helper._helper_for(0)
    pid, starts = warm.pid, warm.starts
    assert pid is not None
    with pytest.raises(ToolTimeoutError, match="ran longer than"):
        await helper.run_helper(_request(source, tmp_path / "slow.webp"), timeout_seconds=0.0001)
    assert _gone(pid)
    await helper.run_helper(_request(source, tmp_path / "after.webp"), timeout_seconds=120)
    assert warm.pid not in (None, pid) and warm.starts == starts + 1
    await warm.close()


async def test_cancellation_kills_the_child(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "a.png", 2400, 1600)
    await helper.run_helper(_request(source, tmp_path / "warm.webp"), timeout_seconds=120)
    warm = helper._helper_for(0)
    pid = warm.pid
    task = asyncio.create_task(helper.run_helper(_request(source, tmp_path / "c.webp"), timeout_seconds=120))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pid is not None and _gone(pid) and warm.pid is None


async def test_a_child_killed_while_idle_is_replaced(tmp_path: Path) -> None:
    source = tm.still(tmp_path / "a.png", 640, 480)
    await helper.run_helper(_request(source, tmp_path / "1.webp"), timeout_seconds=120)
    warm = helper._helper_for(0)
    pid = warm.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    result = await helper.run_helper(_request(source, tmp_path / "2.webp"), timeout_seconds=120)
    assert result["width"] > 0 and warm.pid not in (None, pid)
    await warm.close()
