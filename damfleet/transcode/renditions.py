"""The rendition table: media kind x purpose -> rendition spec, in one declarative place.

In the spirit of Archivematica's format-policy registry, every encoding decision lives
here as data, not in the code that runs the tools. A profile (:mod:`damfleet.profiles`)
names renditions; the table says what each one is for each media kind. Changing the
preview quality or the HLS ladder is a one-line change here.

Published anchors: Immich (thumbnail WebP 250 px q80, preview JPEG 1440 px q80, video
proxy H.264/AAC 720p CRF 23), AWS VOD's HLS ladder (270p..1080p), BBC audiowaveform's
peaks JSON (the format peaks.js reads).

Pure data: importable anywhere (no pyvips, no ffmpeg).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "RENDITIONS",
    "AudioProxySpec",
    "HlsRung",
    "HlsSpec",
    "ImageSpec",
    "PosterSpec",
    "ProxySpec",
    "RenditionSpec",
    "StoryboardSpec",
    "WaveformSpec",
    "rendition_spec",
    "renditions_for",
]


@dataclass(frozen=True)
class RenditionSpec:
    """What every rendition has: a name (also its output role) and a share of the work."""

    name: str
    #: Relative cost, used to turn per-rendition progress into one overall percentage.
    weight: float = 1.0


@dataclass(frozen=True)
class ImageSpec(RenditionSpec):
    """A still image made with libvips ``thumbnail`` (shrink-on-load, streaming)."""

    format: str = "webp"  # webp | jpeg | avif
    size: int = 250  # pixels on the edge named by ``edge``
    edge: str = "short"  # short (Immich's fit=outside) | long (fit inside a box)
    quality: int = 80
    strip_metadata: bool = True  # web renditions carry no EXIF/GPS/XMP
    effort: int = 4  # webp/avif encoder effort (CPU vs size)


@dataclass(frozen=True)
class ProxySpec(RenditionSpec):
    """A progressive-download H.264/AAC MP4 for browsers and review tools."""

    height: int = 720  # short side, never upscaled
    crf: int = 23
    audio_bitrate: str = "128k"
    max_audio_channels: int = 2
    faststart: bool = True


@dataclass(frozen=True)
class PosterSpec(RenditionSpec):
    """One representative frame as JPEG."""

    height: int = 720  # short side, never upscaled
    at_fraction: float = 0.1  # of the duration ...
    max_offset_seconds: float = 5.0  # ... but no later than this
    jpeg_qscale: int = 3  # ffmpeg -q:v (2 best .. 31 worst)


@dataclass(frozen=True)
class StoryboardSpec(RenditionSpec):
    """A sprite sheet of evenly spaced thumbnails plus a WebVTT index (``#xywh=`` cues)."""

    tile_width: int = 160
    columns: int = 5
    max_tiles: int = 50
    min_interval_seconds: float = 1.0
    jpeg_qscale: int = 5


@dataclass(frozen=True)
class HlsRung:
    height: int
    crf: int
    max_bitrate: str  # VBV cap so the ladder's rungs stay apart
    audio_bitrate: str = "128k"


@dataclass(frozen=True)
class HlsSpec(RenditionSpec):
    """An adaptive ladder (fMP4 segments, VOD playlists, a master playlist), capped at the source."""

    rungs: tuple[HlsRung, ...] = (
        HlsRung(360, 25, "1000k", "96k"),
        HlsRung(540, 24, "2200k"),
        HlsRung(720, 23, "3500k"),
        HlsRung(1080, 22, "6000k", "160k"),
    )
    segment_seconds: int = 6


@dataclass(frozen=True)
class AudioProxySpec(RenditionSpec):
    """An AAC-in-MP4 (.m4a) listening copy."""

    bitrate: str = "128k"
    max_channels: int = 2
    sample_rate: int = 48000


@dataclass(frozen=True)
class WaveformSpec(RenditionSpec):
    """Peaks JSON in BBC audiowaveform's v2 format (peaks.js reads it) and a PNG picture."""

    sample_rate: int = 8000  # decode rate for peak finding
    target_points: int = 2000  # peaks per file (samples_per_pixel is derived)
    min_samples_per_pixel: int = 32
    png_width: int = 1800
    png_height: int = 280
    png_colour: tuple[int, int, int] = (37, 99, 235)
    png_background: tuple[int, int, int] = (255, 255, 255)


#: media kind -> rendition name -> spec. Kinds are "image", "video", "audio".
RENDITIONS: dict[str, dict[str, RenditionSpec]] = {
    "image": {
        "thumbnail": ImageSpec("thumbnail", weight=1.0, format="webp", size=250, quality=80),
        "preview": ImageSpec("preview", weight=1.0, format="jpeg", size=1440, quality=80),
        "avif": ImageSpec("avif", weight=2.0, format="avif", size=1440, quality=50, effort=2),
    },
    "video": {
        "proxy": ProxySpec("proxy", weight=10.0),
        "poster": PosterSpec("poster", weight=0.3),
        "storyboard": StoryboardSpec("storyboard", weight=2.0),
        "hls": HlsSpec("hls", weight=20.0),
    },
    "audio": {
        "audio_proxy": AudioProxySpec("audio_proxy", weight=2.0),
        "waveform": WaveformSpec("waveform", weight=1.0),
    },
}


def rendition_spec(kind: str, name: str) -> RenditionSpec:
    """The spec of one rendition; KeyError names the renditions known for the kind."""
    table = RENDITIONS.get(kind)
    if table is None:
        raise KeyError(f"no renditions for media kind {kind!r}; kinds: {', '.join(sorted(RENDITIONS))}")
    try:
        return table[name]
    except KeyError:
        raise KeyError(f"unknown {kind} rendition {name!r}; known: {', '.join(sorted(table))}") from None


def renditions_for(kind: str, names: tuple[str, ...] | list[str]) -> list[RenditionSpec]:
    """Specs for the requested names, in request order, duplicates dropped."""
    seen: dict[str, RenditionSpec] = {}
    for name in names:
        if name not in seen:
            seen[name] = rendition_spec(kind, name)
    return list(seen.values())
