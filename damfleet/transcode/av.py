"""ffmpeg commands for the audio/video renditions, built with ffmpeg-python.

Each builder returns an :class:`~damfleet.transcode.runner.FfmpegJob` (a compiled
argument list plus the duration used for progress and the outputs to remove on
failure); :mod:`damfleet.transcode.runner` runs it. Every input is opened with
:func:`damfleet.media.tools.safe_input_args` (local files, container demuxers only).

Geometry is decided here in Python, not left to filter expressions, so it is testable:
ffmpeg applies the display-matrix rotation itself (autorotate), then frames are scaled
to the *display* size (sample aspect ratio folded in, short side capped, both sides
even) and tagged square-pixel. HDR (PQ/HLG) sources are tone-mapped to SDR BT.709 when
ffmpeg has zscale; 10-bit sources become 8-bit 4:2:0, which every browser plays.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import ffmpeg

from damfleet.media.tools import SAFE_DEMUXERS
from damfleet.transcode.hwaccel import EncoderChoice
from damfleet.transcode.renditions import (
    AudioProxySpec,
    HlsRung,
    HlsSpec,
    PosterSpec,
    ProxySpec,
    StoryboardSpec,
    WaveformSpec,
)
from damfleet.transcode.runner import FfmpegJob, compile_job
from damfleet.transcode.source import SourceInfo, even, scaled_size

__all__ = [
    "StoryboardLayout",
    "audio_proxy_job",
    "hls_ladder",
    "hls_rung_job",
    "master_playlist",
    "pcm_job",
    "poster_job",
    "proxy_job",
    "storyboard_job",
    "storyboard_layout",
    "storyboard_vtt",
]


def _input(source: SourceInfo, **options: Any) -> Any:
    """An ffmpeg-python input restricted to local files and container demuxers."""
    return ffmpeg.input(
        str(source.path), protocol_whitelist="file", format_whitelist=",".join(SAFE_DEMUXERS), **options
    )


@lru_cache(maxsize=1)
def _has_zscale() -> bool:
    from damfleet.media.supervisor import BlockingSupervised
    from damfleet.media.tools import find_tool

    with BlockingSupervised([find_tool("ffmpeg"), "-hide_banner", "-filters"], timeout_seconds=30) as tool:
        listing = tool.stdout.read()
    return b" zscale " in listing


def _picture(stream: Any, source: SourceInfo, width: int, height: int, encoder: EncoderChoice | None = None) -> Any:
    """Tone-map HDR, scale to ``width`` x ``height`` display pixels, square pixels, encoder upload."""
    video = source.video
    assert video is not None
    if video.is_hdr and _has_zscale():
        stream = (
            stream.filter("zscale", tin=video.color_transfer, pin="bt2020", min="bt2020nc", t="linear", npl=100)
            .filter("format", "gbrpf32le")
            .filter("zscale", p="bt709")
            .filter("tonemap", "hable", desat=0)
            .filter("zscale", t="bt709", m="bt709", r="tv")
        )
    stream = stream.filter("scale", width, height, flags="bicubic").filter("setsar", "1")
    if encoder is None or encoder.family == "software":
        stream = stream.filter("format", "yuv420p")
    else:
        for name, options in encoder.filter_suffix:
            stream = stream.filter(name, **options)
    return stream


def _threads(threads: int) -> dict[str, int]:
    return {"threads": threads} if threads > 0 else {}


def proxy_job(source: SourceInfo, spec: ProxySpec, encoder: EncoderChoice, out: Path, *, threads: int = 0) -> FfmpegJob:
    """H.264/AAC MP4, short side <= spec.height, even dims, square pixels, faststart, no metadata."""
    video = source.require_video(spec.name)
    duration = source.require_duration(spec.name)
    width, height = scaled_size(*video.display_size, spec.height)
    inp = _input(source)
    streams = [_picture(inp[str(video.index)], source, width, height, encoder)]
    options: dict[str, Any] = {
        **encoder.quality_args(spec.crf),
        "map_metadata": "-1",
        "map_chapters": "-1",
        "max_muxing_queue_size": 1024,
        **_threads(threads),
    }
    if source.audio is not None:
        streams.append(inp[str(source.audio.index)])
        options.update(
            {"c:a": "aac", "b:a": spec.audio_bitrate, "ac": min(spec.max_audio_channels, max(1, source.audio.channels))}
        )
    if spec.faststart:
        options["movflags"] = "+faststart"
    node = ffmpeg.output(*streams, str(out), f="mp4", **options)
    job = compile_job(spec.name, node, duration_seconds=duration, outputs=[out])
    return _with_input_args(job, encoder.input_args)


def _with_input_args(job: FfmpegJob, extra: tuple[str, ...]) -> FfmpegJob:
    """Insert hardware-device options (global options) right after the binary."""
    if not extra:
        return job
    return FfmpegJob(job.label, (job.args[0], *extra, *job.args[1:]), job.duration_seconds, job.outputs)


def poster_offset(duration: float, spec: PosterSpec) -> float:
    """Where to take the poster: a tenth in (past fades from black), capped for long media."""
    if duration <= 0:
        return 0.0
    return round(min(duration * spec.at_fraction, spec.max_offset_seconds), 3)


def poster_job(source: SourceInfo, spec: PosterSpec, out: Path, *, offset: float | None = None) -> FfmpegJob:
    """One JPEG frame at the poster offset, display-oriented, short side <= spec.height."""
    video = source.require_video(spec.name)
    width, height = scaled_size(*video.display_size, spec.height)
    at = poster_offset(source.duration_seconds, spec) if offset is None else offset
    inp = _input(source, ss=at) if at > 0 else _input(source)
    picture = _picture(inp[str(video.index)], source, width, height).filter("format", "yuvj420p")
    node = ffmpeg.output(picture, str(out), f="image2", update=1, **{"frames:v": 1, "q:v": spec.jpeg_qscale})
    return compile_job(spec.name, node, duration_seconds=0.0, outputs=[out])


@dataclass(frozen=True)
class StoryboardLayout:
    count: int
    columns: int
    rows: int
    tile_width: int
    tile_height: int
    interval_seconds: float


def storyboard_layout(source: SourceInfo, spec: StoryboardSpec) -> StoryboardLayout:
    """How many thumbnails, how far apart, and the grid they are tiled into."""
    video = source.require_video(spec.name)
    duration = source.require_duration(spec.name)
    interval = max(spec.min_interval_seconds, duration / spec.max_tiles)
    count = max(1, min(spec.max_tiles, math.ceil(duration / interval - 1e-9)))
    columns = min(spec.columns, count)
    rows = math.ceil(count / columns)
    display_w, display_h = video.display_size
    tile_w = even(spec.tile_width)
    tile_h = even(tile_w * display_h / display_w)
    return StoryboardLayout(count, columns, rows, tile_w, tile_h, interval)


def storyboard_job(source: SourceInfo, spec: StoryboardSpec, out: Path) -> tuple[FfmpegJob, StoryboardLayout]:
    """One sprite JPEG: a thumbnail every ``interval`` seconds, tiled row by row."""
    layout = storyboard_layout(source, spec)
    video = source.require_video(spec.name)
    inp = _input(source)
    picture = (
        inp[str(video.index)]
        .filter("fps", fps=f"1/{layout.interval_seconds:.6f}", round="down")
        .filter("scale", layout.tile_width, layout.tile_height, flags="bicubic")
        .filter("setsar", "1")
        .filter("tile", f"{layout.columns}x{layout.rows}")
        .filter("format", "yuvj420p")
    )
    node = ffmpeg.output(picture, str(out), f="image2", update=1, **{"frames:v": 1, "q:v": spec.jpeg_qscale})
    job = compile_job(spec.name, node, duration_seconds=source.duration_seconds, outputs=[out])
    return job, layout


def _vtt_time(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def storyboard_vtt(layout: StoryboardLayout, duration: float, image_name: str) -> str:
    """WebVTT thumbnail track: each cue points at its tile with a ``#xywh=`` media fragment."""
    lines = ["WEBVTT", ""]
    for i in range(layout.count):
        start = i * layout.interval_seconds
        end = duration if i == layout.count - 1 else min(duration, (i + 1) * layout.interval_seconds)
        x = (i % layout.columns) * layout.tile_width
        y = (i // layout.columns) * layout.tile_height
        lines += [
            f"{_vtt_time(start)} --> {_vtt_time(max(end, start + 0.001))}",
            f"{image_name}#xywh={x},{y},{layout.tile_width},{layout.tile_height}",
            "",
        ]
    return "\n".join(lines)


def hls_ladder(source: SourceInfo, spec: HlsSpec) -> list[tuple[HlsRung, int, int]]:
    """The rungs to encode with their even display sizes, capped at the source's short side.

    A source below the lowest rung gets one rung at its own size, so the ladder is never empty.
    """
    video = source.require_video(spec.name)
    display_w, display_h = video.display_size
    short = min(display_w, display_h)
    chosen = [r for r in spec.rungs if r.height <= short]
    if not chosen:
        lowest = spec.rungs[0]
        chosen = [HlsRung(even(short), lowest.crf, lowest.max_bitrate, lowest.audio_bitrate)]
    return [(rung, *scaled_size(display_w, display_h, rung.height)) for rung in chosen]


def hls_rung_job(
    source: SourceInfo,
    spec: HlsSpec,
    rung: HlsRung,
    width: int,
    height: int,
    encoder: EncoderChoice,
    out_dir: Path,
    name: str,
    *,
    threads: int = 0,
) -> FfmpegJob:
    """One rung ``name``: a VOD playlist ``<name>.m3u8`` over one fMP4 file ``<name>.mp4``.

    Segments of ``spec.segment_seconds`` (keyframes forced on the boundaries, so every
    rung switches at the same instants) are byte ranges of a single file (HLS v7
    ``EXT-X-BYTERANGE``, init section included). A rendition is therefore 2 files per rung
    plus the master, however long the video: the Output list, and so the activity result
    and its heartbeats, stay small for a two-hour film. Names are unique across rungs so
    the ladder lives (and can be delivered) in one flat folder.
    """
    video = source.require_video(spec.name)
    duration = source.require_duration(spec.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    inp = _input(source)
    streams = [_picture(inp[str(video.index)], source, width, height, encoder)]
    options: dict[str, Any] = {
        **encoder.quality_args(rung.crf, rung.max_bitrate),
        "force_key_frames": f"expr:gte(t,n_forced*{spec.segment_seconds})",
        "map_metadata": "-1",
        "map_chapters": "-1",
        "f": "hls",
        "hls_time": spec.segment_seconds,
        "hls_playlist_type": "vod",
        "hls_segment_type": "fmp4",
        "hls_segment_filename": str(out_dir / f"{name}.mp4"),
        "hls_flags": "single_file+independent_segments",
        "max_muxing_queue_size": 1024,
        **_threads(threads),
    }
    if encoder.family == "software":
        options["sc_threshold"] = 0
    if source.audio is not None:
        streams.append(inp[str(source.audio.index)])
        options.update({"c:a": "aac", "b:a": rung.audio_bitrate, "ac": min(2, max(1, source.audio.channels))})
    node = ffmpeg.output(*streams, str(out_dir / f"{name}.m3u8"), **options)
    job = compile_job(f"hls {height}p", node, duration_seconds=duration, outputs=[out_dir])
    return _with_input_args(job, encoder.input_args)


_EXTINF = re.compile(r"^#EXTINF:([0-9.]+)")


def _avc_codec_string(init_segment: Path) -> str:
    """RFC 6381 codec string (``avc1.PPCCLL``) read from the avcC box in the rung's init section."""
    data = init_segment.read_bytes()[:1_000_000]
    at = data.find(b"avcC")
    if at < 0 or at + 8 > len(data):
        return "avc1.640028"
    profile, compat, level = data[at + 5], data[at + 6], data[at + 7]
    return f"avc1.{profile:02x}{compat:02x}{level:02x}"


_BYTERANGE = re.compile(r"^#EXT-X-BYTERANGE:(\d+)(?:@\d+)?")
_MAP_RANGE = re.compile(r'^#EXT-X-MAP:.*BYTERANGE="(\d+)')


def _bandwidths(rung_dir: Path, name: str) -> tuple[int, int]:
    """Peak and average bits per second over the rung's segments (the HLS spec's definitions)."""
    segments: list[tuple[float, int]] = []
    init_bytes = 0
    seconds: float | None = None
    length: int | None = None
    for line in (rung_dir / f"{name}.m3u8").read_text().splitlines():
        if match := _EXTINF.match(line):
            seconds = float(match.group(1))
        elif match := _BYTERANGE.match(line):
            length = int(match.group(1))
        elif match := _MAP_RANGE.match(line):
            init_bytes = int(match.group(1))
        elif seconds is not None and line and not line.startswith("#"):
            size = length if length is not None else (rung_dir / line.strip()).stat().st_size
            segments.append((seconds, size))
            seconds, length = None, None
    peak, total_bits, total_seconds = 0, 0, 0.0
    for duration, size in segments:
        if duration > 0:
            peak = max(peak, int(size * 8 / duration))
        total_bits += size * 8
        total_seconds += duration
    average = int((total_bits + init_bytes * 8) / total_seconds) if total_seconds else peak
    return max(peak, average, 1), max(average, 1)


def master_playlist(rungs: list[tuple[str, int, int, float, bool]], root: Path) -> str:
    """The master playlist over rungs built in ``root/<name>/``: (name, width, height, fps, has_audio)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for folder, width, height, fps, has_audio in rungs:
        rung_dir = root / folder
        peak, average = _bandwidths(rung_dir, folder)
        codecs = _avc_codec_string(rung_dir / f"{folder}.mp4") + (",mp4a.40.2" if has_audio else "")
        attrs = f'BANDWIDTH={peak},AVERAGE-BANDWIDTH={average},RESOLUTION={width}x{height},CODECS="{codecs}"'
        if fps > 0:
            attrs += f",FRAME-RATE={fps:.3f}"
        lines += [f"#EXT-X-STREAM-INF:{attrs}", f"{folder}.m3u8"]
    return "\n".join(lines) + "\n"


def audio_proxy_job(source: SourceInfo, spec: AudioProxySpec, out: Path, *, threads: int = 0) -> FfmpegJob:
    """AAC in an MP4 (.m4a) container, faststart, at most ``max_channels`` channels, no metadata."""
    audio = source.require_audio(spec.name)
    duration = source.require_duration(spec.name)
    inp = _input(source)
    options: dict[str, Any] = {
        "c:a": "aac",
        "b:a": spec.bitrate,
        "ac": min(spec.max_channels, max(1, audio.channels)),
        "map_metadata": "-1",
        "movflags": "+faststart",
        **_threads(threads),
    }
    if audio.sample_rate > spec.sample_rate:
        options["ar"] = spec.sample_rate
    node = ffmpeg.output(inp[str(audio.index)], str(out), f="ipod", **options)
    return compile_job(spec.name, node, duration_seconds=duration, outputs=[out])


def pcm_job(source: SourceInfo, spec: WaveformSpec, out: Path) -> FfmpegJob:
    """Decode to mono signed 16-bit PCM at ``spec.sample_rate`` for peak finding."""
    audio = source.require_audio(spec.name)
    duration = source.require_duration(spec.name)
    inp = _input(source)
    node = ffmpeg.output(inp[str(audio.index)], str(out), f="s16le", ac=1, ar=spec.sample_rate, **{"c:a": "pcm_s16le"})
    return compile_job(f"{spec.name} decode", node, duration_seconds=duration, outputs=[out])
