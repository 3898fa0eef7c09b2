"""Technical metadata: ffprobe for audio/video, libvips header (plus exiftool where it has a gap) for images.

Tools are not trusted to judge validity by their exit code alone: ffprobe exits 0 for
some non-media files (reporting 0x0 streams) and for truncated files, so the report is
checked for usable streams, and a short decode confirms audio/video actually decodes.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from damfleet.errors import CorruptMediaError, UnsafeMediaError, UnsupportedMediaError
from damfleet.media.detect import Sniffed
from damfleet.media.tools import ToolResult, find_tool, run_tool, safe_input_args
from damfleet.v1 import common_pb2

__all__ = [
    "INGEST_MEMORY_SETTING",
    "MemoryLimit",
    "ProbeReport",
    "check_pixels",
    "clean_metadata",
    "configure_vips",
    "declared_canvas",
    "probe_av",
    "probe_file",
    "probe_image",
    "read_image_header",
    "scan_metadata",
]

ProbeReport = tuple[common_pb2.MediaInfo, dict[str, Any]]


def configure_vips() -> Any:
    """Import pyvips with untrusted loaders blocked (matlab, magick, openslide, ...)."""
    os.environ.setdefault("VIPS_BLOCK_UNTRUSTED", "1")
    import pyvips

    if hasattr(pyvips, "block_untrusted_set"):
        pyvips.block_untrusted_set(True)
    return pyvips


INGEST_MEMORY_SETTING = "DAMFLEET_INGEST_TOOL_MEMORY_BYTES"
#: stderr of a tool that could not even start under its address-space limit.
_STARTUP_FAILURES = ("failed to map segment", "error while loading shared libraries", "error creating thread")


@dataclass(frozen=True)
class MemoryLimit:
    """An address-space limit for the probe children and the setting that sets it."""

    memory_bytes: int = 0
    setting: str = INGEST_MEMORY_SETTING

    def startup_error(self, tool: str, detail: str) -> Exception:
        from damfleet.transcode.errors import ToolResourceLimitError

        return ToolResourceLimitError(
            f"{tool} could not start within its memory limit: {self.setting}={self.memory_bytes} "
            f"({self.memory_bytes / 2**20:.0f} MiB) is too low for it: {detail[-300:]}"
        )

    def bomb_error(self, tool: str, what: str) -> UnsafeMediaError:
        return UnsafeMediaError(
            f"{tool} exceeded the probe's memory limit of {self.memory_bytes} bytes ({self.setting}) reading "
            f"this {what}: refused as a likely decompression bomb"
        )

    def check(self, tool: str, result: ToolResult, what: str) -> None:
        """Raise the right error when a failed run was about memory rather than the file's content."""
        if not self.memory_bytes or result.returncode == 0:
            return
        tail = result.stderr_tail.lower()
        if any(marker in tail for marker in _STARTUP_FAILURES):
            raise self.startup_error(tool, result.stderr_tail)
        if result.returncode < 0 or "out of memory" in tail or "cannot allocate memory" in tail:
            raise self.bomb_error(tool, what)


async def probe_file(
    path: Path, sniffed: Sniffed, *, timeout_seconds: float, max_image_pixels: int, memory_bytes: int = 0,
    memory_setting: str = INGEST_MEMORY_SETTING,
) -> ProbeReport:
    """MediaInfo summary and the full tool report for a file whose family was sniffed.

    Every tool that parses the untrusted bytes (ffprobe, ffmpeg, exiftool, libvips) runs in a
    child process with ``timeout_seconds`` and an address-space limit of ``memory_bytes``
    (0: none), so a decompression bomb exhausts the child, never the worker. A tool that cannot
    even start under the limit is a configuration problem (``ToolResourceLimitError`` naming
    ``memory_setting``); one that runs out of memory while parsing the file has met a bomb
    (``UnsafeMediaError``).
    """
    limit = MemoryLimit(memory_bytes, memory_setting)
    if sniffed.kind == "image":
        return await probe_image(path, sniffed, timeout_seconds=timeout_seconds, max_pixels=max_image_pixels,
                                 limit=limit)
    if sniffed.kind == "av":
        return await probe_av(path, sniffed, timeout_seconds=timeout_seconds, limit=limit)
    raise UnsupportedMediaError(f"not a supported media file: {sniffed.description}")


async def probe_av(path: Path, sniffed: Sniffed, *, timeout_seconds: float, limit: MemoryLimit = MemoryLimit(0)
                   ) -> ProbeReport:
    ffprobe = find_tool("ffprobe")
    result = await run_tool(
        [
            ffprobe, "-hide_banner", "-v", "error", *safe_input_args(),
            "-print_format", "json", "-show_format", "-show_streams", "-i", str(path),
        ],
        timeout_seconds=timeout_seconds,
        memory_bytes=limit.memory_bytes,
    )
    limit.check("ffprobe", result, f"{sniffed.description} file")
    if result.returncode != 0:
        message = result.stderr_tail or "ffprobe could not read it"
        if "not on whitelist" in message or "Protocol" in message and "not" in message:
            raise UnsafeMediaError(f"refused: the file references other files or protocols ({message})")
        raise CorruptMediaError(f"unreadable {sniffed.description} file: {message}")
    report = json.loads(result.stdout or b"{}")
    streams = report.get("streams", [])
    fmt = report.get("format", {})
    video = [s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)]
    audio = [s for s in streams if s.get("codec_type") == "audio"]
    if not video and not audio:
        raise CorruptMediaError(f"{sniffed.description} file has no audio or video streams")
    if video and (int(video[0].get("width") or 0) <= 0 or int(video[0].get("height") or 0) <= 0):
        raise CorruptMediaError(f"{sniffed.description} file's video stream has no frame size (0x0)")
    if audio and not video and not sniffed.mime_type.startswith("audio/"):
        mime = "audio/mp4" if sniffed.mime_type == "video/mp4" else sniffed.mime_type
    else:
        mime = sniffed.mime_type
    duration = _float(fmt.get("duration")) or _float((video or audio)[0].get("duration"))
    await _confirm_decodes(
        path, has_video=bool(video), duration=duration, timeout_seconds=timeout_seconds, what=sniffed.description,
        limit=limit,
    )
    if audio:  # after the decode check: a damaged file is reported as damaged, whatever it claims
        _check_downmixable(audio[0], sniffed.description)
    info = common_pb2.MediaInfo(
        kind=common_pb2.MEDIA_KIND_VIDEO if video else common_pb2.MEDIA_KIND_AUDIO,
        mime_type=mime,
        format_name=str(fmt.get("format_name", "")),
        duration_seconds=duration,
        has_video=bool(video),
        has_audio=bool(audio),
    )
    if video:
        v = video[0]
        info.video_codec = str(v.get("codec_name", ""))
        info.width = int(v.get("width") or 0)
        info.height = int(v.get("height") or 0)
        info.rotation = _rotation(v)
        info.frame_rate = _rate(v.get("avg_frame_rate") or v.get("r_frame_rate"))
        info.bit_depth = int(v.get("bits_per_raw_sample") or (10 if "10" in str(v.get("pix_fmt", "")) else 8))
    if audio:
        a = audio[0]
        info.audio_codec = str(a.get("codec_name", ""))
        info.audio_channels = int(a.get("channels") or 0)
        info.audio_sample_rate = int(a.get("sample_rate") or 0)
    return info, {"tool": "ffprobe", "ffprobe": report}


#: Seconds decoded from the start of an audio/video file at ingest (a bounded sample).
DECODE_SAMPLE_SECONDS = 1.0


async def _confirm_decodes(
    path: Path, *, has_video: bool, duration: float, timeout_seconds: float, what: str,
    limit: MemoryLimit = MemoryLimit(0),
) -> None:
    """Read every packet of the file, then decode a bounded sample from its start.

    A container can describe streams that do not decode (the sample catches that), and a
    truncated upload whose index sits at the front ("faststart") decodes fine at the start
    and fails only where the data ends. Reading every packet without decoding (a stream
    copy to nowhere) finds a cut anywhere in the file, not only in a window at its end, and
    costs a fraction of decoding: ~0.1 s for a 15 s 1080p clip against ~0.9 s for decoding
    its last 2 s (the seek lands on a keyframe seconds earlier). ``duration`` is not used
    for the windows any more; it is kept for the error message.
    """
    ffmpeg = find_tool("ffmpeg")
    stream = "0:v:0?" if has_video else "0:a:0?"
    walk = [
        ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-xerror", *safe_input_args(),
        "-i", str(path), "-map", "0", "-c", "copy", "-f", "null", "-",
    ]
    sample = [
        ffmpeg, "-hide_banner", "-nostdin", "-v", "error", "-xerror", *safe_input_args(),
        "-i", str(path), "-t", f"{DECODE_SAMPLE_SECONDS:g}", "-map", stream, "-f", "null", "-",
    ]
    for args, where in ((walk, f"within its {duration:.0f}s (truncated or damaged)"), (sample, "at its start")):
        result = await run_tool(args, timeout_seconds=timeout_seconds, memory_bytes=limit.memory_bytes)
        limit.check("ffmpeg", result, f"{what} file")
        if result.returncode != 0:
            raise CorruptMediaError(f"{what} file does not decode {where}: {result.stderr_tail or 'decoder error'}")


#: ffmpeg guesses a channel layout for up to 8 channels; beyond that, without a declared layout,
#: it cannot downmix ("Rematrix is needed"), so every proxy, waveform and transcript would fail.
MAX_UNLAID_CHANNELS = 8


def _check_downmixable(stream: dict[str, Any], what: str) -> None:
    """Refuse audio that no stage could downmix, at ingest, with the reason (not ffmpeg's at transcode)."""
    channels = int(stream.get("channels") or 0)
    layout = str(stream.get("channel_layout") or "")
    if channels > MAX_UNLAID_CHANNELS and not layout:
        raise UnsupportedMediaError(
            f"{what} audio has {channels} channels and no channel layout: it cannot be downmixed to the "
            f"stereo/mono renditions (at most {MAX_UNLAID_CHANNELS} channels without a layout); "
            "split it into tracks or tag its layout first"
        )


def _is_cover_art(stream: dict[str, Any]) -> bool:
    return bool(stream.get("disposition", {}).get("attached_pic"))


def _float(value: Any) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return 0.0
    return result if math.isfinite(result) else 0.0


def _rate(value: Any) -> float:
    text = str(value or "0/1")
    if "/" in text:
        num, _, den = text.partition("/")
        return _float(num) / _float(den) if _float(den) else 0.0
    return _float(text)


def _rotation(stream: dict[str, Any]) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(-_float(side["rotation"])) % 360
    return int(_float(stream.get("tags", {}).get("rotate"))) % 360


def declared_canvas(head: bytes) -> tuple[str, int, int] | None:
    """The canvas a file's own header declares, read from its first bytes without any decoder.

    GIF logical screen, PNG/APNG ``IHDR`` and WebP ``VP8X`` canvas: a frame may be small while
    the canvas a decoder composes it onto is huge, so the canvas is held to the pixel limit too.
    Returns (what, width, height), or None for formats without one here (libvips' header is
    checked for those).
    """
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return "GIF logical screen", int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        what = "APNG canvas" if b"acTL" in head else "PNG canvas"
        return what, int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and head[12:16] == b"VP8X" and len(head) >= 30:
        return "WebP canvas", 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    return None


def _read_head(path: Path, size: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(size)


def check_pixels(what: str, width: int, height: int, max_pixels: int, *, pages: int = 1) -> None:
    """Refuse a declared size over the pixel limit (before anything is decoded)."""
    total = width * height * max(1, pages)
    if max_pixels and total > max_pixels:
        size = f"{width}x{height}" + (f" x {pages} pages" if pages > 1 else "")
        raise UnsafeMediaError(
            f"{what} of {size} = {total} pixels exceeds the limit of {max_pixels} pixels "
            "(DAMFLEET_INGEST_MAX_IMAGE_PIXELS): refused before decoding"
        )


async def probe_image(
    path: Path, sniffed: Sniffed, *, timeout_seconds: float, max_pixels: int, limit: MemoryLimit = MemoryLimit(0)
) -> ProbeReport:
    """The libvips header (read and checked in a child process), plus exiftool's metadata where needed.

    Order matters: the canvas the file declares is checked from its raw header first, then
    libvips' header (size, page count) in the child, and only then does the child run its
    bounded decode check; a bomb is refused before any pixel is decoded, and whatever the
    decoders do happens under the child's memory and time limits. exiftool (a Perl start per
    file) runs only when the child found metadata blocks libvips does not read
    (:func:`scan_metadata`); it still runs under the same limits (a PNG zTXt bomb is refused there).
    """
    from damfleet.transcode.errors import ToolResourceLimitError
    from damfleet.transcode.helper import run_helper

    canvas = declared_canvas(await asyncio.to_thread(_read_head, path, 64))
    if canvas is not None:
        check_pixels(canvas[0], canvas[1], canvas[2], max_pixels)
    request = {"op": "probe_image", "source": str(path), "description": sniffed.description, "max_pixels": max_pixels}
    try:
        header = await run_helper(request, timeout_seconds=timeout_seconds, memory_bytes=limit.memory_bytes)
    except ToolResourceLimitError as exc:
        if "could not run" in str(exc):  # the helper never started: the limit is too low for libvips itself
            raise limit.startup_error("libvips", str(exc)) from exc
        raise limit.bomb_error("libvips", f"{sniffed.description} image") from exc
    width, height = header["width"], header["height"]
    blocks = header.get("metadata_blocks") or []
    comments = header.pop("jpeg_comments", None) or []  # raw file text: only its cleaned form is kept
    # exiftool only where libvips leaves a gap: a file with no metadata blocks has nothing more to say.
    if blocks:
        exif = await _exiftool(path, timeout_seconds=timeout_seconds, limit=limit)
    else:  # what exiftool would have added: the JPEG comment, read in the child
        exif = clean_metadata({"File:Comment": "\n".join(comments)} if comments else {})
    orientation = int(header.get("orientation", 1) or 1)
    info = common_pb2.MediaInfo(
        kind=common_pb2.MEDIA_KIND_IMAGE,
        mime_type=sniffed.mime_type,
        format_name=str(header.get("loader", "")),
        width=width,
        height=height,
        rotation={3: 180, 6: 90, 8: 270}.get(orientation, 0),
        bit_depth=int(header.get("bit_depth", 8)),
    )
    return info, {"tool": "libvips+exiftool" if blocks else "libvips", "vips": header, "exif": exif}


def read_image_header(path: Path, description: str, max_pixels: int) -> dict[str, Any]:
    """libvips' header, held to the pixel limit, then a bounded decode check; runs in the probe child.

    ``python -m damfleet.transcode.vips_child`` calls this (op ``probe_image``); the parent
    never loads the image itself.
    """
    pyvips = configure_vips()
    try:
        image = pyvips.Image.new_from_file(str(path), access="sequential", fail=True)
    except pyvips.Error as exc:
        detail = str(exc).strip().splitlines()
        raise CorruptMediaError(f"unreadable {description} image: {' '.join(detail)[:400]}") from exc
    names = image.get_fields()
    pages = int(image.get("n-pages")) if "n-pages" in names else 1
    check_pixels(f"{description} image", image.width, image.height, max_pixels)
    if pages > 1:
        check_pixels(f"{description} image (all pages)", image.width, image.height, max_pixels, pages=pages)
    fields = {}
    for name in image.get_fields():
        if name.endswith("-data") or name in ("exif-data", "xmp-data", "icc-profile-data", "iptc-data"):
            continue
        try:
            value = image.get(name)
        except Exception:  # noqa: BLE001 - a field libvips cannot convert is skipped
            continue
        if isinstance(value, (int, float, str)):
            fields[name] = value
    loader = str(image.get("vips-loader")) if "vips-loader" in names else ""
    _check_decodes(pyvips, path, image, loader, description)
    fmt = str(image.format)
    depth = 16 if fmt in ("ushort", "short") else 32 if fmt in ("float", "uint", "int") else 8
    return {
        "width": image.width,
        "height": image.height,
        "bands": image.bands,
        "format": fmt,
        "interpretation": str(image.interpretation),
        "loader": loader,
        "orientation": image.get("orientation") if "orientation" in image.get_fields() else 1,
        "bit_depth": depth,
        "pages": pages,
        "fields": fields,
        **scan_metadata(path),
    }


#: Loaders that decode at a reduced scale (JPEG DCT scaling, WebP/HEIF scaled decode): a
#: whole-body check through them costs a fraction of a full decode, so it stays whole.
_SHRINK_ON_LOAD = ("jpegload", "webpload", "heifload")
#: Pixels decoded by the sample check of an image without shrink-on-load (PNG, TIFF, GIF, ...).
DECODE_SAMPLE_PIXELS = 4_000_000


def _check_decodes(pyvips: Any, path: Path, image: Any, loader: str, description: str) -> None:
    """Confirm the body decodes, at a cost bounded by the file rather than its pixel count.

    Shrink-on-load formats get a whole-body decode at 1/8 scale or less (a truncated or
    damaged body fails it; ~30 ms for a 12 MP JPEG). Others at most ``DECODE_SAMPLE_PIXELS``
    pixels are decoded whole; bigger ones decode their first rows up to that many pixels,
    and their end is checked from the bytes (a PNG must end with ``IEND``, a GIF with its
    trailer), so a cut file is still refused without decoding 12 MP at full size.
    """
    try:
        if loader.startswith(_SHRINK_ON_LOAD) or image.width * image.height <= DECODE_SAMPLE_PIXELS:
            pyvips.Image.thumbnail(str(path), 128, fail_on="truncated").avg()
            return
        rows = max(1, min(image.height, DECODE_SAMPLE_PIXELS // max(1, image.width)))
        sample = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="truncated")
        sample.crop(0, 0, sample.width, rows).avg()
    except pyvips.Error as exc:
        detail = " ".join(str(exc).strip().splitlines()[1:]) or str(exc)
        raise CorruptMediaError(f"{description} image does not decode: {detail[:400]}") from exc
    missing = _missing_trailer(path, loader)
    if missing:
        raise CorruptMediaError(f"{description} image does not decode: it is cut short ({missing})")


def _missing_trailer(path: Path, loader: str) -> str:
    """What a PNG or GIF lacks at its end ("" when its end is whole, or the format has no trailer)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 12))
        tail = fh.read(12)
    if loader.startswith("pngload") and tail[4:8] != b"IEND":
        return "no IEND chunk at its end"
    if loader.startswith("gifload") and not tail.endswith(b"\x3b"):
        return "no GIF trailer at its end"
    return ""


#: JPEG APPn segments libvips reads itself (JFIF, ICC profile, Adobe colour transform).
_JPEG_PLAIN_APP = {0xE0: (b"JFIF", b"JFXX"), 0xE2: (b"ICC_PROFILE",), 0xEE: (b"Adobe",)}
#: PNG and WebP chunks that hold metadata libvips does not report (text, EXIF, XMP, time).
_PNG_METADATA = {b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"tIME"}
_WEBP_METADATA = {b"EXIF", b"XMP "}
#: The most segments/chunks walked before giving up (then exiftool reads the file).
_MAX_BLOCKS = 10_000


def scan_metadata(path: Path) -> dict[str, list[str]]:
    """The metadata blocks libvips leaves unread in a JPEG, PNG or WebP, from its segment/chunk headers.

    libvips reports size, pages, orientation and ICC itself; exiftool is needed only for what
    it does not parse (EXIF in full, XMP, IPTC, PNG text chunks). This walk reads only the
    headers (8 bytes per chunk, at most ``_MAX_BLOCKS``, no decompression), so a file without
    such blocks skips exiftool's start (~0.1 s idle, seconds on a loaded node). A JPEG comment
    (plain text, at most 64 KiB) is read here rather than counted as a gap. Anything the walk
    cannot follow, and every other format (TIFF, GIF, HEIF, ...), is a gap ("unscanned").
    Returns ``{"metadata_blocks": [...gaps], "jpeg_comments": [...]}``.
    """
    comments: list[str] = []
    with open(path, "rb") as fh:
        head = fh.read(16)
        if head.startswith(b"\xff\xd8"):
            blocks = _jpeg_blocks(fh, comments)
        elif head.startswith(b"\x89PNG\r\n\x1a\n"):
            blocks = _chunk_blocks(fh, 8, big_endian=True, wanted=_PNG_METADATA)
        elif head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            blocks = _chunk_blocks(fh, 12, big_endian=False, wanted=_WEBP_METADATA)
        else:
            blocks = ["unscanned"]
    return {"metadata_blocks": blocks, "jpeg_comments": comments}


def _jpeg_blocks(fh: Any, comments: list[str]) -> list[str]:
    found: list[str] = []
    fh.seek(2)
    for _ in range(_MAX_BLOCKS):
        header = fh.read(4)
        if len(header) < 2 or header[0] != 0xFF:
            return [*found, "unscanned"]
        marker = header[1]
        if marker in (0xDA, 0xD9):  # start of scan / end of image: metadata segments come before
            return found
        if len(header) < 4:
            return [*found, "unscanned"]
        length = int.from_bytes(header[2:4], "big")
        if length < 2:
            return [*found, "unscanned"]
        if marker == 0xFE:
            comments.append(fh.read(length - 2).rstrip(b"\x00").decode("utf-8", "replace"))
        elif 0xE0 <= marker <= 0xEF:
            tag = fh.read(min(length - 2, 32))
            if not any(tag.startswith(sig) for sig in _JPEG_PLAIN_APP.get(marker, ())):
                found.append(f"APP{marker - 0xE0}")
            fh.seek(length - 2 - len(tag), os.SEEK_CUR)
        else:
            fh.seek(length - 2, os.SEEK_CUR)
    return [*found, "unscanned"]


def _chunk_blocks(fh: Any, start: int, *, big_endian: bool, wanted: set[bytes]) -> list[str]:
    found: list[str] = []
    fh.seek(start)
    for _ in range(_MAX_BLOCKS):
        header = fh.read(8)
        if len(header) == 0:
            return found
        if len(header) < 8:
            return [*found, "unscanned"]
        if big_endian:  # PNG: length, type, data, CRC
            length, kind, skip = int.from_bytes(header[:4], "big"), header[4:8], 4
        else:  # RIFF: type, length, data padded to even
            kind, length = header[:4], int.from_bytes(header[4:8], "little")
            skip = length % 2
        if kind in wanted:
            found.append(kind.decode("latin-1").strip())
        if kind == b"IEND":
            return found
        fh.seek(length + skip, os.SEEK_CUR)
    return [*found, "unscanned"]


async def _exiftool(path: Path, *, timeout_seconds: float, limit: MemoryLimit = MemoryLimit(0)) -> dict[str, Any]:
    """EXIF/XMP/IPTC as JSON; absent exiftool or odd output degrades to an empty dict.

    exiftool inflates compressed text chunks (PNG zTXt/iTXt) whole: a small file can ask it for
    gigabytes. Under the memory limit that ends its run, and the file is refused as unsafe.
    """
    try:
        exiftool = find_tool("exiftool")
    except Exception:  # noqa: BLE001 - exiftool is optional; libvips already validated the image
        return {}
    result = await run_tool(
        [exiftool, "-json", "-G", "-n", "-fast2", "-api", "largefilesupport=1", "--", str(path)],
        timeout_seconds=timeout_seconds,
        memory_bytes=limit.memory_bytes,
    )
    limit.check("exiftool", result, "file's metadata")
    if result.returncode != 0:
        return {"error": result.stderr_tail}
    try:
        parsed = json.loads(result.stdout or b"[]")
    except json.JSONDecodeError:
        return {}
    record = parsed[0] if parsed else {}
    record.pop("SourceFile", None)
    return clean_metadata({k: v for k, v in record.items() if not k.startswith("System:")})


#: Longest metadata string kept; longer ones are cut (with a note of how much was dropped).
MAX_METADATA_CHARS = 2000
_GPS_RANGES = {"GPSLatitude": 90.0, "GPSLongitude": 180.0}


def _clean_text(value: str) -> str:
    # Newlines and tabs are legitimate in descriptions; other controls and bidi/format characters
    # (which can disguise text in the UI) are shown as escapes.
    kept = "".join(c if c in "\n\t" or c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in value)
    if len(kept) > MAX_METADATA_CHARS:
        kept = f"{kept[:MAX_METADATA_CHARS]}… [{len(kept) - MAX_METADATA_CHARS} more characters dropped]"
    return kept


def _gps_plausible(name: str, value: Any) -> bool:
    """False for a GPS coordinate (``-n`` numbers, or ``GPSPosition``'s "lat lon") off the globe."""
    if name == "GPSPosition" and isinstance(value, str):
        parts = value.split()
        try:
            pairs = list(zip(("GPSLatitude", "GPSLongitude"), (float(p) for p in parts), strict=True))
        except ValueError:
            return False
        return all(_gps_plausible(n, v) for n, v in pairs)
    if name in _GPS_RANGES and isinstance(value, (int, float)):
        return math.isfinite(value) and abs(value) <= _GPS_RANGES[name]
    return True


def clean_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """Embedded metadata made safe to store and show: bounded strings, no bidi tricks, sane GPS.

    Values come from the uploaded file, so they are untrusted: a 24,000-character comment, a
    right-to-left override in a title, a latitude of 300 degrees. Strings are cut at
    ``MAX_METADATA_CHARS`` and control/format characters escaped; GPS coordinates outside the
    globe are dropped and listed under ``damfleet:ignored``.
    """
    cleaned: dict[str, Any] = {}
    ignored: list[str] = []
    for key, value in record.items():
        name = key.rsplit(":", 1)[-1]
        if not _gps_plausible(name, value):
            ignored.append(f"{_clean_text(key)}={value!r} (out of range)")
            continue
        if isinstance(value, str):
            value = _clean_text(value)
        elif isinstance(value, list):
            value = [_clean_text(v) if isinstance(v, str) else v for v in value[:1000]]
        cleaned[_clean_text(key)[:200]] = value
    if ignored:
        cleaned["damfleet:ignored"] = ignored
    return cleaned
