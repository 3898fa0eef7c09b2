"""The ffmpeg runner: progress, stuck-job kill (a FIFO that never delivers), timeout, cancellation;
hardware-encoder fallback; scratch-space check."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import ffmpeg
import psutil
import pytest

from damfleet.errors import CorruptMediaError, ToolStalledError, UnsafeMediaError
from damfleet.media.tools import SAFE_DEMUXERS, ToolTimeoutError
from damfleet.settings import Settings
from damfleet.transcode.errors import ScratchSpaceError, ScratchTooSmallError
from damfleet.transcode.hwaccel import reset_encoder_cache, select_encoder
from damfleet.transcode.runner import FfmpegJob, FfmpegProgress, _apply, compile_job, run_ffmpeg
from damfleet.transcode.scratch import check_scratch_space


def _pattern_job(out: Path, seconds: float, *, size: str = "320x240", label: str = "pattern") -> FfmpegJob:
    node = ffmpeg.input(f"testsrc2=size={size}:rate=25:duration={seconds}", f="lavfi").output(
        str(out), **{"c:v": "libx264", "preset": "ultrafast", "threads": 1}
    )
    return compile_job(label, node, duration_seconds=seconds, outputs=[out])


def _ffmpeg_children(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            if proc.info["name"] == "ffmpeg" and any(marker in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_progress_blocks_parse_microseconds_and_clock_time() -> None:
    progress = FfmpegProgress()
    assert _apply(progress, {"out_time_us": "5000000", "frame": "125", "progress": "continue"}, 10.0)
    assert progress.percent == 50.0 and progress.frame == 125
    assert not _apply(progress, {"out_time_us": "5000000", "frame": "125", "progress": "continue"}, 10.0)
    assert _apply(progress, {"out_time": "00:00:07.500000", "progress": "continue"}, 10.0)
    assert progress.percent == 75.0
    _apply(progress, {"progress": "end"}, 10.0)
    assert progress.ended and progress.percent == 100.0


async def test_progress_is_reported_and_output_written(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    seen: list[float] = []
    result = await run_ffmpeg(
        _pattern_job(out, 4.0), stall_seconds=30, timeout_seconds=120, on_progress=lambda p: seen.append(p.percent)
    )
    assert out.stat().st_size > 0
    assert seen[-1] == 100.0 and seen == sorted(seen)
    assert result.frames == 100 and abs(result.out_time_seconds - 4.0) < 0.1


async def test_stalled_ffmpeg_is_killed_and_retryable(tmp_path: Path) -> None:
    """ffmpeg reading a FIFO nobody writes makes no progress: the watchdog kills it TERM-then-KILL."""
    fifo = tmp_path / "never.ts"
    os.mkfifo(fifo)
    out = tmp_path / "stalled.mp4"
    node = ffmpeg.input(str(fifo), protocol_whitelist="file", format_whitelist=",".join(SAFE_DEMUXERS)).output(
        str(out), **{"c:v": "libx264"}
    )
    job = compile_job("stall", node, duration_seconds=10, outputs=[out])
    started = time.monotonic()
    with pytest.raises(ToolStalledError, match="made no progress for 2s") as caught:
        await run_ffmpeg(job, stall_seconds=2, timeout_seconds=120, kill_grace_seconds=1)
    assert caught.value.retryable
    assert time.monotonic() - started < 20
    assert _ffmpeg_children(str(fifo)) == []
    assert not out.exists()


async def test_cancellation_kills_ffmpeg_and_removes_partial_output(tmp_path: Path) -> None:
    out = tmp_path / "long.mp4"
    job = _pattern_job(out, 600.0, size="640x360", label="long")
    task = asyncio.create_task(run_ffmpeg(job, stall_seconds=60, timeout_seconds=600))
    for _ in range(200):
        await asyncio.sleep(0.05)
        if out.exists() and _ffmpeg_children(str(out)):
            break
    assert _ffmpeg_children(str(out)), "ffmpeg should be running"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _ffmpeg_children(str(out)) == []
    assert not out.exists()


async def test_timeout_kills_and_raises(tmp_path: Path) -> None:
    out = tmp_path / "slow.mp4"
    with pytest.raises(ToolTimeoutError, match="longer than 1s"):
        await run_ffmpeg(_pattern_job(out, 600.0), stall_seconds=60, timeout_seconds=1)
    assert not out.exists() and _ffmpeg_children(str(out)) == []


async def test_ffmpeg_failures_are_classified(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    out = tmp_path / "o.mp4"
    node = ffmpeg.input(str(junk), protocol_whitelist="file", format_whitelist=",".join(SAFE_DEMUXERS)).output(str(out))
    with pytest.raises(CorruptMediaError, match="exit 1"):
        await run_ffmpeg(
            compile_job("junk", node, duration_seconds=1, outputs=[out]), stall_seconds=30, timeout_seconds=60
        )
    playlist = tmp_path / "list.m3u8"
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nhttp://example.invalid/a.ts\n")
    node = ffmpeg.input(str(playlist), protocol_whitelist="file", format_whitelist=",".join(SAFE_DEMUXERS)).output(
        str(out)
    )
    with pytest.raises((UnsafeMediaError, CorruptMediaError)):
        await run_ffmpeg(
            compile_job("playlist", node, duration_seconds=1, outputs=[out]), stall_seconds=30, timeout_seconds=60
        )
    assert not out.exists()


async def test_missing_hardware_encoder_falls_back_to_software_with_a_reason() -> None:
    reset_encoder_cache()
    software = await select_encoder("none")
    assert (software.family, software.codec, software.fallback_reason) == ("software", "libx264", "")
    for wanted, codec in (("nvenc", "h264_nvenc"), ("vaapi", "h264_vaapi")):
        choice = await select_encoder(wanted, vaapi_device="/dev/dri/renderD128")
        if choice.family == wanted:  # a machine with the device: the hardware encoder works
            assert choice.codec == codec and not choice.fallback_reason
        else:
            assert choice.family == "software" and choice.codec == "libx264"
            assert codec in choice.fallback_reason or "VAAPI device" in choice.fallback_reason
    reset_encoder_cache()


def test_quality_args_per_encoder_family() -> None:
    from damfleet.transcode.hwaccel import EncoderChoice, software_encoder

    sw = software_encoder("veryfast").quality_args(23, "3500k")
    assert sw["c:v"] == "libx264" and sw["crf"] == 23 and sw["maxrate"] == "3500k" and sw["bufsize"] == "7000k"
    nv = EncoderChoice("nvenc", "h264_nvenc").quality_args(23)
    assert nv["cq"] == 23 and nv["c:v"] == "h264_nvenc"


def test_scratch_check_names_the_shortfall(settings: Settings, tmp_path: Path) -> None:
    ok = check_scratch_space(tmp_path, 1000, settings.transcode)
    assert ok == settings.transcode.min_free_scratch_bytes
    huge = settings.transcode.model_copy(update={"scratch_size_factor": 1e9})
    with pytest.raises(ScratchTooSmallError, match="holds .* in total; this transcode needs"):
        check_scratch_space(tmp_path, 10**9, huge)
    free = psutil.disk_usage(str(tmp_path)).free
    tight = settings.transcode.model_copy(
        update={"min_free_scratch_bytes": free + (psutil.disk_usage(str(tmp_path)).total - free) // 2}
    )
    if tight.min_free_scratch_bytes > free:
        with pytest.raises(ScratchSpaceError, match="free; this transcode needs"):
            check_scratch_space(tmp_path, 1, tight)
