"""Audio/video renditions end to end through the plain stage: proxy geometry (odd size, phone
rotation, anamorphic, 10-bit HDR), poster, storyboard + WebVTT, HLS ladder, audio proxy, waveform."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import pyvips

sys.path.insert(0, str(Path(__file__).parent))  # tests run with --import-mode=importlib
import transcode_media as tm

from damfleet.settings import Settings
from damfleet.transcode.source import scaled_size
from damfleet.v1 import stages_pb2


def _video_stream(report: dict) -> dict:
    return next(s for s in report["streams"] if s["codec_type"] == "video")


def _rotation(stream: dict) -> int:
    return int(next((side.get("rotation", 0) for side in stream.get("side_data_list", []) or []), 0))


def test_scaled_size_is_even_capped_and_never_upscaled() -> None:
    assert scaled_size(1920, 1080, 720) == (1280, 720)
    assert scaled_size(1080, 1920, 720) == (720, 1280)
    assert scaled_size(853, 481, 720) == (852, 480)
    assert scaled_size(3840, 1607, 720) == (1720, 720)
    w, h = scaled_size(1001, 3001, 720)
    assert w % 2 == 0 and h % 2 == 0 and w == 720


async def test_odd_size_video_proxy_poster_storyboard(settings: Settings, tmp_path: Path) -> None:
    source = tm.video(tmp_path / "odd.mp4", 6.0, size="853x481")
    result = await tm.run_stage(settings, source, "video", ["proxy", "poster", "storyboard"])
    assert list(result.renditions) == ["proxy", "poster", "storyboard"]
    assert result.hw_accel == "software" and not result.hw_accel_fallback_reason
    by_role = {o.role: o for o in result.outputs}
    assert set(by_role) == {"proxy", "poster", "storyboard", "storyboard_vtt"}
    assert all(o.stage == "transcode" and len(o.sha256) == 64 and o.size_bytes > 0 for o in result.outputs)

    proxy = tm.local(by_role["proxy"].uri)
    report = tm.ffprobe(proxy)
    video = _video_stream(report)
    audio = next(s for s in report["streams"] if s["codec_type"] == "audio")
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (video["width"], video["height"]) == (852, 480)
    assert video.get("sample_aspect_ratio", "1:1") == "1:1"
    assert audio["codec_name"] == "aac"
    assert abs(float(report["format"]["duration"]) - 6.0) < 0.3
    head = proxy.read_bytes()[:200_000]
    assert 0 <= head.find(b"moov") < head.find(b"mdat"), "faststart: moov must precede mdat"
    assert by_role["proxy"].mime_type == "video/mp4"

    poster = pyvips.Image.new_from_file(str(tm.local(by_role["poster"].uri)))
    assert (poster.width, poster.height) == (852, 480)

    sprite = pyvips.Image.new_from_file(str(tm.local(by_role["storyboard"].uri)))
    vtt = tm.local(by_role["storyboard_vtt"].uri).read_text()
    assert vtt.startswith("WEBVTT")
    cues = re.findall(r"storyboard\.jpg#xywh=(\d+),(\d+),(\d+),(\d+)", vtt)
    assert len(cues) == 6  # one tile per second for a 6 s clip
    for x, y, w, h in ((int(v) for v in cue) for cue in cues):
        assert x + w <= sprite.width and y + h <= sprite.height and (w, h) == (160, 90)
    assert (sprite.width, sprite.height) == (5 * 160, 2 * 90)
    assert result.timings_seconds["proxy"] > 0


async def test_rotated_phone_video_comes_out_portrait(settings: Settings, tmp_path: Path) -> None:
    source = tm.rotated_phone_video(tmp_path / "phone.mp4")
    assert _rotation(_video_stream(tm.ffprobe(source))) in (90, -90)
    result = await tm.run_stage(settings, source, "video", ["proxy", "poster"])
    by_role = {o.role: o for o in result.outputs}
    video = _video_stream(tm.ffprobe(tm.local(by_role["proxy"].uri)))
    assert (video["width"], video["height"]) == (360, 640)
    assert _rotation(video) == 0, "the rotation is applied to the pixels, not left to the player"
    poster = pyvips.Image.new_from_file(str(tm.local(by_role["poster"].uri)))
    assert (poster.width, poster.height) == (360, 640)


async def test_anamorphic_video_gets_square_pixels(settings: Settings, tmp_path: Path) -> None:
    # 720x576 with 64:45 pixels displays as 1024x576 (16:9 PAL).
    source = tm.video(tmp_path / "pal.mp4", 2.0, size="720x576", vf="setsar=64/45")
    result = await tm.run_stage(settings, source, "video", ["proxy"])
    video = _video_stream(tm.ffprobe(tm.local(result.outputs[0].uri)))
    assert (video["width"], video["height"]) == (1024, 576)
    assert video.get("sample_aspect_ratio", "1:1") == "1:1"


async def test_ten_bit_hdr_source_becomes_8bit_sdr(settings: Settings, tmp_path: Path) -> None:
    source = tm.video(
        tmp_path / "hdr10.mp4",
        2.0,
        size="1280x720",
        pix_fmt="yuv420p10le",
        extra=("-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc"),
    )
    original = _video_stream(tm.ffprobe(source))
    assert (original["pix_fmt"], original["profile"]) == ("yuv420p10le", "High 10")
    result = await tm.run_stage(settings, source, "video", ["proxy"])
    video = _video_stream(tm.ffprobe(tm.local(result.outputs[0].uri)))
    assert (video["pix_fmt"], video["profile"]) == ("yuv420p", "High")
    assert video.get("color_transfer") in (None, "bt709")


async def test_hls_ladder_capped_at_source_height(settings: Settings, tmp_path: Path) -> None:
    source = tm.video(tmp_path / "hd.mp4", 8.0, size="1280x720")
    result = await tm.run_stage(settings, source, "video", ["hls"])
    roles = [o.role for o in result.outputs]
    # One playlist and one byte-ranged fMP4 per rung, plus the master: 7 files however long the video.
    assert roles == ["hls_master"] + ["hls_playlist", "hls_media"] * 3
    master_path = tm.local(result.outputs[0].uri)
    master = master_path.read_text()
    assert re.findall(r"RESOLUTION=(\d+x\d+)", master) == ["640x360", "960x540", "1280x720"]
    assert "1080" not in master
    bandwidths = [int(b) for b in re.findall(r"[^-]BANDWIDTH=(\d+)", master)]
    assert bandwidths == sorted(bandwidths) and bandwidths[0] > 0
    assert 'CODECS="avc1.64' in master and "mp4a.40.2" in master
    for playlist in re.findall(r"^(\d+p\.m3u8)$", master, flags=re.MULTILINE):
        text = (master_path.parent / playlist).read_text()
        assert "#EXT-X-ENDLIST" in text and "#EXT-X-PLAYLIST-TYPE:VOD" in text
        assert text.count("#EXTINF:6.0") == 1 and text.count("#EXT-X-BYTERANGE:") == 2  # 8 s = 6 s + 2 s
        media = master_path.parent / playlist.replace(".m3u8", ".mp4")
        ranges = [tuple(map(int, r)) for r in re.findall(r"BYTERANGE:(\d+)@(\d+)", text)]
        assert ranges[-1][0] + ranges[-1][1] == media.stat().st_size
    # The whole ladder plays back (trusted output: the hls demuxer is fine here).
    played = tm.ffprobe(master_path)
    assert abs(float(played["format"]["duration"]) - 8.0) < 0.5


async def test_small_source_gets_a_single_rung(settings: Settings, tmp_path: Path) -> None:
    source = tm.video(tmp_path / "tiny.mp4", 2.0, size="320x240", audio=False)
    result = await tm.run_stage(settings, source, "video", ["hls"])
    master = tm.local(result.outputs[0].uri).read_text()
    assert re.findall(r"RESOLUTION=(\d+x\d+)", master) == ["320x240"]
    assert "mp4a" not in master


async def test_audio_proxy_and_waveform(settings: Settings, tmp_path: Path) -> None:
    source = tm.audio(tmp_path / "tone.flac", 4.0, channels=6)
    result = await tm.run_stage(settings, source, "audio", ["audio_proxy", "waveform"])
    by_role = {o.role: o for o in result.outputs}
    assert set(by_role) == {"audio_proxy", "waveform", "waveform_png"}
    report = tm.ffprobe(tm.local(by_role["audio_proxy"].uri))
    stream = report["streams"][0]
    assert (stream["codec_name"], stream["channels"]) == ("aac", 2)
    assert abs(float(report["format"]["duration"]) - 4.0) < 0.2
    assert by_role["audio_proxy"].mime_type == "audio/mp4"

    peaks = json.loads(tm.local(by_role["waveform"].uri).read_text())
    assert (peaks["version"], peaks["channels"], peaks["bits"]) == (2, 1, 8)
    assert len(peaks["data"]) == 2 * peaks["length"]
    assert peaks["length"] * peaks["samples_per_pixel"] >= 4.0 * peaks["sample_rate"] * 0.99
    # A steady sine (quiet after the 5.1 -> mono downmix): every peak pair spans zero, alike.
    pairs = list(zip(peaks["data"][2:-2:2], peaks["data"][3:-2:2]))
    assert len({pair for pair in pairs}) <= 3
    assert all(low <= -3 and high >= 3 for low, high in zip(peaks["data"][2:-2:2], peaks["data"][3:-2:2]))
    png = pyvips.Image.new_from_file(str(tm.local(by_role["waveform_png"].uri)))
    assert (png.width, png.height, png.bands) == (1800, 280, 3)


async def test_progress_reaches_100_and_lists_finished_renditions(settings: Settings, tmp_path: Path) -> None:
    source = tm.video(tmp_path / "p.mp4", 4.0)
    seen: list[stages_pb2.TranscodeHeartbeat] = []
    await tm.run_stage(settings, source, "video", ["poster", "proxy"], progress=seen.append)
    percents = [d.percent for d in seen]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert any(0 < p < 100 for p in percents)
    assert [d.name for d in seen[-1].done] == ["poster", "proxy"]
    assert seen[-1].hw_accel == "software"


async def test_resume_reuses_finished_renditions(settings: Settings, tmp_path: Path) -> None:
    source = tm.video(tmp_path / "r.mp4", 2.0)
    seen: list[stages_pb2.TranscodeHeartbeat] = []
    first = await tm.run_stage(settings, source, "video", ["poster"], progress=seen.append)
    resumed = await tm.run_stage(settings, source, "video", ["poster", "proxy"], resume=seen[-1])
    assert list(resumed.resumed_renditions) == ["poster"]
    assert "poster" not in resumed.timings_seconds and "proxy" in resumed.timings_seconds
    assert resumed.outputs[0] == first.outputs[0]
    # A record for other bytes (sha256 differs) is ignored.
    stale = stages_pb2.TranscodeHeartbeat()
    stale.CopyFrom(seen[-1])
    stale.sha256 = "0" * 64
    again = await tm.run_stage(settings, source, "video", ["poster"], resume=stale)
    assert list(again.resumed_renditions) == []


async def test_hwaccel_setting_falls_back_and_reports_why(tmp_path: Path) -> None:
    from damfleet.transcode.hwaccel import reset_encoder_cache
    from tests.conftest import make_settings

    reset_encoder_cache()
    settings = make_settings(tmp_path, DAMFLEET_TRANSCODE_HWACCEL="nvenc")
    source = tm.video(tmp_path / "gpu.mp4", 1.0, size="320x240")
    result = await tm.run_stage(settings, source, "video", ["proxy"])
    try:
        import shutil

        has_gpu = shutil.which("nvidia-smi") is not None
    finally:
        reset_encoder_cache()
    if has_gpu and result.hw_accel == "nvenc":
        assert not result.hw_accel_fallback_reason
    else:
        assert result.hw_accel == "software"
        assert "h264_nvenc" in result.hw_accel_fallback_reason
    assert _video_stream(tm.ffprobe(tm.local(result.outputs[0].uri)))["codec_name"] == "h264"


async def test_memory_limit_applies_to_every_tool_run(tmp_path: Path) -> None:
    """An address-space limit too small for the tools fails clearly, permanently, naming the setting."""
    from damfleet.transcode.errors import ToolResourceLimitError
    from tests.conftest import make_settings

    clip = tm.video(tmp_path / "clip.mp4", 1.0, size="320x240")
    photo = tm.still(tmp_path / "photo.jpg", 800, 600)
    tight = make_settings(tmp_path / "tight", DAMFLEET_TRANSCODE_TOOL_MEMORY_BYTES=str(64 * 2**20))
    for path, kind, renditions in ((clip, "video", ["proxy"]), (photo, "image", ["thumbnail"])):
        with pytest.raises(ToolResourceLimitError, match="DAMFLEET_TRANSCODE_TOOL_MEMORY_BYTES=67108864") as caught:
            await tm.run_stage(tight, path, kind, renditions)
        assert not caught.value.retryable
        assert tm.stored_files(tight) == []
    roomy = make_settings(tmp_path / "roomy", DAMFLEET_TRANSCODE_TOOL_MEMORY_BYTES=str(2 * 2**30))
    assert [o.role for o in (await tm.run_stage(roomy, clip, "video", ["proxy"])).outputs] == ["proxy"]
    assert [o.role for o in (await tm.run_stage(roomy, photo, "image", ["thumbnail"])).outputs] == ["thumbnail"]


@pytest.mark.slow
async def test_full_hd_ladder_includes_1080p(settings: Settings, tmp_path: Path) -> None:
    source = tm.video(tmp_path / "fhd.mp4", 4.0, size="1920x1080")
    result = await tm.run_stage(settings, source, "video", ["hls"])
    master = tm.local(result.outputs[0].uri).read_text()
    assert re.findall(r"RESOLUTION=(\d+x\d+)", master) == ["640x360", "960x540", "1280x720", "1920x1080"]
