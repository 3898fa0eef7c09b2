"""What transcode needs to know about its input, re-checked from the bytes it will read.

Ingest already validated the asset, but transcode reads the stored original, possibly
months later, possibly a file replaced in storage, so it probes again (with the same
safe demuxer/protocol restrictions) and derives everything encoding decisions depend
on: display size after sample aspect ratio and rotation, duration, HDR transfer, which
stream to map.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from damfleet.errors import CorruptMediaError, UnsupportedMediaError
from damfleet.media.detect import SNIFF_BYTES, sniff
from damfleet.media.probe import probe_file
from damfleet.transcode.errors import MissingStreamError

__all__ = ["AudioStream", "SourceInfo", "VideoStream", "even", "inspect_source", "scaled_size"]

_HDR_TRANSFERS = {"smpte2084", "arib-std-b67"}


@dataclass(frozen=True)
class VideoStream:
    index: int
    width: int  # coded frame size
    height: int
    sar: Fraction  # sample (pixel) aspect ratio
    rotation: int  # degrees clockwise the display applies
    pix_fmt: str
    color_transfer: str
    frame_rate: float

    @property
    def display_size(self) -> tuple[int, int]:
        """Width and height as shown: pixels stretched by the SAR, then rotated."""
        width = max(1, round(self.width * float(self.sar))) if self.sar > 0 else self.width
        if self.rotation in (90, 270):
            return self.height, width
        return width, self.height

    @property
    def is_hdr(self) -> bool:
        return self.color_transfer in _HDR_TRANSFERS


@dataclass(frozen=True)
class AudioStream:
    index: int
    channels: int
    sample_rate: int


@dataclass(frozen=True)
class SourceInfo:
    path: Path
    kind: str  # "image", "video", "audio"
    mime_type: str
    duration_seconds: float
    video: VideoStream | None = None
    audio: AudioStream | None = None

    def require_video(self, rendition: str) -> VideoStream:
        if self.video is None:
            raise MissingStreamError(f"the {rendition} rendition needs a video stream, and the file has none")
        return self.video

    def require_audio(self, rendition: str) -> AudioStream:
        if self.audio is None:
            raise MissingStreamError(f"the {rendition} rendition needs an audio stream, and the file has none")
        return self.audio

    def require_duration(self, rendition: str) -> float:
        if self.duration_seconds <= 0:
            raise MissingStreamError(
                f"the {rendition} rendition needs media frames, and the file declares no duration (no frames)"
            )
        return self.duration_seconds


def even(value: float) -> int:
    """The nearest even integer >= 2 (H.264 4:2:0 needs even frame sizes)."""
    return max(2, round(value / 2) * 2)


def scaled_size(display_width: int, display_height: int, short_side: int) -> tuple[int, int]:
    """Even width and height with the short side at most ``short_side`` (never upscaled)."""
    short = min(display_width, display_height)
    scale = min(1.0, short_side / short) if short > 0 else 1.0
    return even(display_width * scale), even(display_height * scale)


async def inspect_source(
    path: Path, *, timeout_seconds: float, max_image_pixels: int, memory_bytes: int = 0
) -> SourceInfo:
    """Sniff and probe a local file; raises a BadInputError subclass when it is not usable media.

    The probes run in children under ``memory_bytes`` (the transcode tools' limit), as at ingest.
    """
    head = await asyncio.to_thread(_read_head, path)
    if not head:
        raise CorruptMediaError("the stored original is empty (0 bytes)")
    sniffed = sniff(head)
    if not sniffed.kind:
        raise UnsupportedMediaError(f"not a supported media file: {sniffed.description}")
    if sniffed.kind == "image":
        # Nothing more is needed here: every image rendition runs in the libvips helper
        # child, which reads the header, enforces the pixel limit before decoding and
        # fails on a body that does not decode. Probing here too (a boxed header read and
        # decode plus exiftool) cost seconds per camera JPEG and found nothing new.
        return SourceInfo(path, "image", sniffed.mime_type, 0.0)
    info, report = await probe_file(path, sniffed, timeout_seconds=timeout_seconds, max_image_pixels=max_image_pixels,
                                    memory_bytes=memory_bytes, memory_setting="DAMFLEET_TRANSCODE_TOOL_MEMORY_BYTES")
    streams: list[dict[str, Any]] = report.get("ffprobe", {}).get("streams", [])
    video = _video_stream(streams)
    audio = _audio_stream(streams)
    kind = "video" if video is not None else "audio"
    return SourceInfo(path, kind, info.mime_type, float(info.duration_seconds), video, audio)


def _read_head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(SNIFF_BYTES)


def _video_stream(streams: list[dict[str, Any]]) -> VideoStream | None:
    for stream in streams:
        if stream.get("codec_type") != "video" or stream.get("disposition", {}).get("attached_pic"):
            continue
        return VideoStream(
            index=int(stream.get("index", 0)),
            width=int(stream.get("width") or 0),
            height=int(stream.get("height") or 0),
            sar=_ratio(stream.get("sample_aspect_ratio")),
            rotation=_rotation(stream),
            pix_fmt=str(stream.get("pix_fmt", "")),
            color_transfer=str(stream.get("color_transfer", "")),
            frame_rate=float(_ratio(stream.get("avg_frame_rate")) or _ratio(stream.get("r_frame_rate"))),
        )
    return None


def _audio_stream(streams: list[dict[str, Any]]) -> AudioStream | None:
    for stream in streams:
        if stream.get("codec_type") == "audio":
            return AudioStream(
                index=int(stream.get("index", 0)),
                channels=int(stream.get("channels") or 0),
                sample_rate=int(stream.get("sample_rate") or 0),
            )
    return None


def _ratio(value: Any) -> Fraction:
    text = str(value or "")
    try:
        if ":" in text:
            num, den = text.split(":")
            return Fraction(int(num), int(den)) if int(den) else Fraction(0)
        if "/" in text:
            num, den = text.split("/")
            return Fraction(int(num), int(den)) if int(den) else Fraction(0)
    except ValueError:
        return Fraction(0)
    return Fraction(0)


def _rotation(stream: dict[str, Any]) -> int:
    """Clockwise display rotation: ffprobe reports the display matrix angle counter-clockwise."""
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(-float(side["rotation"])) % 360
    try:
        return int(float(stream.get("tags", {}).get("rotate", 0))) % 360
    except ValueError:
        return 0
