"""The signature table: every format damfleet sniffs, with the bytes that identify it, and the
order rules that a flat table would get wrong (images before ISO boxes, ADTS vs MPEG audio)."""

from __future__ import annotations

import pytest

from damfleet.media.detect import sniff

PAD = bytes(range(256)) * 2   # no signature of its own; long enough for the 188-byte TS check


@pytest.mark.parametrize(
    ("head", "kind", "mime_type"),
    [
        (b"\xff\xd8\xff\xe0", "image", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n", "image", "image/png"),
        (b"GIF87a", "image", "image/gif"),
        (b"GIF89a", "image", "image/gif"),
        (b"II*\x00", "image", "image/tiff"),
        (b"MM\x00+", "image", "image/tiff"),
        (b"RIFF\x00\x00\x00\x00WEBP", "image", "image/webp"),
        (b"\xff\x0a", "image", "image/jxl"),
        (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "image", "image/jxl"),
        (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "image", "image/jp2"),
        (b"\x00\x00\x00\x18ftypheic", "image", "image/heic"),
        (b"\x00\x00\x00\x18ftypavif", "image", "image/avif"),
        (b"\x00\x00\x00\x18ftypisom", "av", "video/mp4"),
        (b"\x00\x00\x00\x18ftypqt  ", "av", "video/quicktime"),
        (b"\x00\x00\x00\x18ftypM4A ", "av", "audio/mp4"),
        (b"RIFF\x00\x00\x00\x00WAVE", "av", "audio/wav"),
        (b"RIFF\x00\x00\x00\x00AVI ", "av", "video/x-msvideo"),
        (b"\x1a\x45\xdf\xa3", "av", "video/x-matroska"),
        (b"OggS", "av", "audio/ogg"),
        (b"fLaC", "av", "audio/flac"),
        (b"ID3\x04", "av", "audio/mpeg"),
        (b"\xff\xfb\x90", "av", "audio/mpeg"),      # MPEG-1 layer III frame sync
        (b"\xff\xf1\x50", "av", "audio/aac"),       # ADTS: layer bits 00
        (b"FORM\x00\x00\x00\x00AIFC", "av", "audio/aiff"),
        (b"\x06\x0e\x2b\x34", "av", "application/mxf"),
        (b"FLV\x01", "av", "video/x-flv"),
        (b"\x00\x00\x01\xba", "av", "video/mpeg"),
        (b"\x30\x26\xb2\x75\x8e\x66\xcf\x11\xa6\xd9\x00\xaa\x00\x62\xce\x6c", "av", "video/x-ms-asf"),
    ],
)
def test_each_signature_names_its_format(head: bytes, kind: str, mime_type: str) -> None:
    found = sniff(head + PAD)
    assert (found.kind, found.mime_type) == (kind, mime_type)


def test_a_transport_stream_needs_two_sync_bytes_188_apart() -> None:
    packet = b"\x47" + bytes(187)
    assert sniff(packet * 2).mime_type == "video/mp2t"
    assert sniff(packet).kind == ""          # one packet is not evidence enough


@pytest.mark.parametrize(
    ("head", "words"),
    [(b"", "empty file"), (b"%PDF-1.7", "PDF"), (b"PK\x03\x04", "ZIP"), (b"#EXTM3U\n", "playlist"),
     (b"just some words", "text, not media"), (b"RIFF\x00\x00\x00\x00XXXX\xfe", "unrecognised")],
)
def test_what_is_not_media_is_said_in_words(head: bytes, words: str) -> None:
    found = sniff(head)
    assert found.kind == "" and words in found.description
