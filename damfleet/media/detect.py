"""Detect what a file is from its first bytes, never from its name.

The sniffed signature decides which tool examines the file next (libvips for images,
ffprobe for audio/video); the tool's own report then confirms it. Text, archives,
documents and executables are refused here before any media tool parses them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SNIFF_BYTES", "Sniffed", "sniff"]

#: How many leading bytes :func:`sniff` needs.
SNIFF_BYTES = 4096

_IMAGE_FTYP = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_AUDIO_FTYP = {b"M4A ", b"M4B ", b"M4P ", b"F4A "}


@dataclass(frozen=True)
class Sniffed:
    """The family a signature belongs to; ``kind`` is "image", "av" (audio or video) or ""."""

    kind: str
    mime_type: str
    description: str


def _ftyp(head: bytes) -> Sniffed | None:
    if len(head) < 12 or head[4:8] != b"ftyp":
        return None
    major = head[8:12]
    box_size = int.from_bytes(head[0:4], "big")
    brands = {major} | {head[i : i + 4] for i in range(16, min(box_size, len(head)), 4)}
    if major in _IMAGE_FTYP or (brands & _IMAGE_FTYP and not brands & {b"isom", b"mp41", b"mp42", b"qt  "}):
        is_avif = major in (b"avif", b"avis") or b"avif" in brands
        return Sniffed("image", "image/avif" if is_avif else "image/heic", "AVIF" if is_avif else "HEIF/HEIC")
    if major in _AUDIO_FTYP:
        return Sniffed("av", "audio/mp4", "MPEG-4 audio")
    if major == b"qt  ":
        return Sniffed("av", "video/quicktime", "QuickTime")
    return Sniffed("av", "video/mp4", "ISO base media (MP4)")


def sniff(head: bytes) -> Sniffed:
    """Classify the leading bytes of a file. ``kind == ""`` means "not media we handle"."""
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed("image", "image/jpeg", "JPEG")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed("image", "image/png", "PNG")
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed("image", "image/gif", "GIF")
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return Sniffed("image", "image/tiff", "TIFF")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return Sniffed("image", "image/webp", "WebP")
    if head[:2] == b"\xff\x0a" or head[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n":
        return Sniffed("image", "image/jxl", "JPEG XL")
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n":
        return Sniffed("image", "image/jp2", "JPEG 2000")
    found = _ftyp(head)
    if found is not None:
        return found
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return Sniffed("av", "audio/wav", "WAV")
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return Sniffed("av", "video/x-msvideo", "AVI")
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return Sniffed("av", "video/x-matroska", "Matroska/WebM")
    if head[:4] == b"OggS":
        return Sniffed("av", "audio/ogg", "Ogg")
    if head[:4] == b"fLaC":
        return Sniffed("av", "audio/flac", "FLAC")
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        # MPEG audio frame sync (layer bits non-zero) or an ID3 tag; ADTS AAC has layer 00.
        if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
            return Sniffed("av", "audio/aac", "AAC (ADTS)")
        return Sniffed("av", "audio/mpeg", "MPEG audio")
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return Sniffed("av", "audio/aac", "AAC (ADTS)")
    if head[:4] in (b"FORM",) and head[8:12] in (b"AIFF", b"AIFC"):
        return Sniffed("av", "audio/aiff", "AIFF")
    if head[:4] == b"\x06\x0e\x2b\x34":
        return Sniffed("av", "application/mxf", "MXF")
    if head[:3] == b"FLV":
        return Sniffed("av", "video/x-flv", "FLV")
    if head[:4] == b"\x00\x00\x01\xba":
        return Sniffed("av", "video/mpeg", "MPEG program stream")
    if head[:16] == b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c":
        return Sniffed("av", "video/x-ms-asf", "ASF/WMV")
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return Sniffed("av", "video/mp2t", "MPEG transport stream")
    return Sniffed("", "application/octet-stream", _describe_unknown(head))


def _describe_unknown(head: bytes) -> str:
    if not head:
        return "empty file"
    if head.startswith(b"#EXTM3U"):
        return "an M3U/HLS playlist (playlists are refused: they reference other files)"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive"
    if head.startswith(b"\x7fELF"):
        return "an ELF executable"
    try:
        head[:512].decode("utf-8")
        return "text, not media"
    except UnicodeDecodeError:
        return "unrecognised binary data"
