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


#: A signature: (offset, bytes) pairs that must all hold.
_Magic = tuple[tuple[int, bytes], ...]

_GIF = Sniffed("image", "image/gif", "GIF")
_TIFF = Sniffed("image", "image/tiff", "TIFF")
_JXL = Sniffed("image", "image/jxl", "JPEG XL")
_AIFF = Sniffed("av", "audio/aiff", "AIFF")
_ADTS = Sniffed("av", "audio/aac", "AAC (ADTS)")

#: Image signatures, read before ISO base media boxes (HEIF/AVIF are ``ftyp`` files too).
_IMAGE_SIGNATURES: tuple[tuple[_Magic, Sniffed], ...] = (
    (((0, b"\xff\xd8\xff"),), Sniffed("image", "image/jpeg", "JPEG")),
    (((0, b"\x89PNG\r\n\x1a\n"),), Sniffed("image", "image/png", "PNG")),
    (((0, b"GIF87a"),), _GIF),
    (((0, b"GIF89a"),), _GIF),
    (((0, b"II*\x00"),), _TIFF),
    (((0, b"MM\x00*"),), _TIFF),
    (((0, b"II+\x00"),), _TIFF),   # BigTIFF
    (((0, b"MM\x00+"),), _TIFF),
    (((0, b"RIFF"), (8, b"WEBP")), Sniffed("image", "image/webp", "WebP")),
    (((0, b"\xff\x0a"),), _JXL),   # bare codestream
    (((0, b"\x00\x00\x00\x0cJXL \r\n\x87\n"),), _JXL),   # container
    (((0, b"\x00\x00\x00\x0cjP  \r\n\x87\n"),), Sniffed("image", "image/jp2", "JPEG 2000")),
)

#: Audio/video signatures, read after ISO base media boxes.
_AV_SIGNATURES: tuple[tuple[_Magic, Sniffed], ...] = (
    (((0, b"RIFF"), (8, b"WAVE")), Sniffed("av", "audio/wav", "WAV")),
    (((0, b"RIFF"), (8, b"AVI ")), Sniffed("av", "video/x-msvideo", "AVI")),
    (((0, b"\x1a\x45\xdf\xa3"),), Sniffed("av", "video/x-matroska", "Matroska/WebM")),
    (((0, b"OggS"),), Sniffed("av", "audio/ogg", "Ogg")),
    (((0, b"fLaC"),), Sniffed("av", "audio/flac", "FLAC")),
    (((0, b"FORM"), (8, b"AIFF")), _AIFF),
    (((0, b"FORM"), (8, b"AIFC")), _AIFF),
    (((0, b"\x06\x0e\x2b\x34"),), Sniffed("av", "application/mxf", "MXF")),
    (((0, b"FLV"),), Sniffed("av", "video/x-flv", "FLV")),
    (((0, b"\x00\x00\x01\xba"),), Sniffed("av", "video/mpeg", "MPEG program stream")),
    (((0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c"),),
     Sniffed("av", "video/x-ms-asf", "ASF/WMV")),
    (((0, b"\x47"), (188, b"\x47")), Sniffed("av", "video/mp2t", "MPEG transport stream")),  # two packets' sync bytes
)


def _first(head: bytes, signatures: tuple[tuple[_Magic, Sniffed], ...]) -> Sniffed | None:
    for magic, found in signatures:
        if all(head.startswith(value, offset) for offset, value in magic):
            return found
    return None


def _mpeg_audio(head: bytes) -> Sniffed | None:
    """An ID3 tag or an MPEG audio frame sync (layer bits non-zero); ADTS AAC has layer 00."""
    if len(head) > 1 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0:
        return _ADTS
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06):
        return Sniffed("av", "audio/mpeg", "MPEG audio")
    return None


def sniff(head: bytes) -> Sniffed:
    """Classify the leading bytes of a file. ``kind == ""`` means "not media we handle"."""
    found = _first(head, _IMAGE_SIGNATURES) or _ftyp(head) or _first(head, _AV_SIGNATURES) or _mpeg_audio(head)
    return found or Sniffed("", "application/octet-stream", _describe_unknown(head))


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
