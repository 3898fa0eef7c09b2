"""No tool outlives its worker: SIGKILL a process mid-encode and its ffmpeg dies with it.

A worker killed outright (kill -9, the OOM killer, a node drain) runs no cleanup. Tools
run in their own session, so nothing but the parent-death signal set by
``damfleet.media.tools.confined`` stops them encoding on as orphans.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed")

# Starts the four kinds of tool run a worker makes, each the way the worker starts it:
# run_tool (ffprobe/exiftool/libvips helper) and run_ffmpeg on the event loop's thread,
# the transcription PCM stream and YOLO's frame sampler (blocked opening a FIFO nobody
# writes) from thread pool threads. Prints the PCM stream's pid, then waits.
_WORKER = textwrap.dedent(
    """
    import asyncio, concurrent.futures, sys
    from pathlib import Path
    from damfleet.ai.detect import DetectOptions, _sample_video_frames
    from damfleet.ai.transcribe import _PcmStream
    from damfleet.media.tools import find_tool, run_tool
    from damfleet.transcode.runner import FfmpegJob, run_ffmpeg

    ffmpeg = find_tool("ffmpeg")
    endless = [ffmpeg, "-nostdin", "-v", "error", "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
               "-t", "600"]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        pool = concurrent.futures.ThreadPoolExecutor(1)
        pcm = await loop.run_in_executor(pool, _PcmStream, Path(sys.argv[1]), 600.0)
        frames = Path(sys.argv[2])
        loop.run_in_executor(concurrent.futures.ThreadPoolExecutor(1), _sample_video_frames,
                             frames / "never.mp4", frames / "out", DetectOptions())
        asyncio.create_task(run_tool([*endless, "-f", "null", "-"], timeout_seconds=600))
        job = FfmpegJob("proxy", (*endless, "-f", "null", "-"), 600.0, ())
        asyncio.create_task(run_ffmpeg(job, stall_seconds=600, timeout_seconds=600))
        await asyncio.sleep(1.0)
        print("pcm", pcm.proc.pid, flush=True)
        await asyncio.sleep(600)

    asyncio.run(main())
    """
)


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_tools_die_with_a_sigkilled_worker(tmp_path: Path) -> None:
    audio = tmp_path / "tone.wav"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=20", str(audio)],
        check=True, timeout=120,
    )
    os.mkfifo(tmp_path / "never.mp4")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(audio), str(tmp_path)], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        assert worker.stdout is not None
        line = worker.stdout.readline()
        assert line.startswith("pcm"), f"worker did not start its tools: {line!r}"
        deadline = time.monotonic() + 60
        tools = _children(worker.pid)
        while len(tools) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
            tools = _children(worker.pid)
        assert len(tools) >= 4, f"expected four running tools, found {tools}"
        assert int(line.split()[1]) in tools

        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in tools) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [pid for pid in tools if _alive(pid)]
        assert not survivors, f"tools outlived their SIGKILLed worker: {survivors}"
    finally:
        if worker.poll() is None:
            worker.kill()
        for pid in _children(worker.pid):  # never leave a stray encode behind a failed test
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
