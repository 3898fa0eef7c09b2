"""Ingest does each thing once (issue 11): one pass that hashes and stores, bounded checks, exiftool only where needed.

A local source is probed in place and streamed once into storage (no scratch copy); an
object-store source still goes through scratch (the tools need a file). The cheaper checks
must still refuse what the old ones refused: a video cut near its end, a large PNG cut short,
a source that changes while it is stored.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from damfleet import ingest
from damfleet.errors import BadInputError, CorruptMediaError
from damfleet.media.probe import DECODE_SAMPLE_PIXELS, scan_metadata
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.v1 import stages_pb2
from tests.conftest import make_settings


async def _ingest(settings: Settings, source: str, asset_id: str, progress=None) -> stages_pb2.IngestOutput:
    storage = Storage.from_settings(settings)
    scratch = settings.scratch_path / asset_id
    scratch.mkdir(parents=True, exist_ok=True)
    request = stages_pb2.IngestInput(asset_id=asset_id, source_uri=source, profile="default")
    try:
        return await ingest.ingest_asset(request, storage=storage, settings=settings, scratch=scratch,
                                         progress=progress)
    finally:
        await storage.aclose()


async def _stored(settings: Settings, asset_id: str) -> list[str]:
    storage = Storage.from_settings(settings)
    try:
        return [o.uri async for o in storage.list(storage.keys(asset_id).prefix)]
    finally:
        await storage.aclose()


async def test_a_local_source_is_probed_in_place_and_stored_in_one_pass(tmp_path: Path, media_dir: Path) -> None:
    settings = make_settings(tmp_path)
    source = media_dir / "short.mp4"
    phases: list[str] = []
    result = await _ingest(settings, source.as_uri(), "asset-once-1", lambda phase, done, total: phases.append(phase))
    assert result.asset.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert list(dict.fromkeys(phases)) == ["probing", "storing", "done"], "checked first, then one storing pass"
    assert list((settings.scratch_path / "asset-once-1").iterdir()) == [], "no scratch copy of a local source"


async def test_without_proc_a_local_source_goes_through_scratch(
    tmp_path: Path, media_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where no /proc path can hand the descriptor to the tools, the old scratch copy is made."""
    monkeypatch.setattr(ingest, "_descriptor_path", lambda fd: None)
    settings = make_settings(tmp_path)
    source = media_dir / "short.mp4"
    phases: list[str] = []
    result = await _ingest(settings, source.as_uri(), "asset-noproc", lambda phase, done, total: phases.append(phase))
    assert result.asset.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert list(dict.fromkeys(phases)) == ["reading", "probing", "storing", "done"]


async def test_a_source_changed_while_it_is_stored_is_refused_and_nothing_is_kept(
    tmp_path: Path, media_dir: Path
) -> None:
    settings = make_settings(tmp_path)
    source = tmp_path / "inbox" / "changing.mp4"
    source.parent.mkdir()
    source.write_bytes((media_dir / "short.mp4").read_bytes())

    def grow(phase: str, done: int, total: int) -> None:
        if phase == "storing" and done:
            with open(source, "ab") as fh:  # another writer appends while the ingest streams
                fh.write(b"\0" * 1024)

    with pytest.raises(BadInputError, match="changed while it was being ingested"):
        await _ingest(settings, source.as_uri(), "asset-changing", grow)
    assert await _stored(settings, "asset-changing") == []


async def test_an_object_store_source_goes_through_scratch_once(
    tmp_path: Path, media_dir: Path, s3_server: dict[str, str], s3_bucket: str
) -> None:
    settings = make_settings(
        tmp_path, DAMFLEET_INGEST_SOURCE_ROOTS=f"s3://{s3_bucket}/inbox",
        DAMFLEET_STORAGE_S3_ENDPOINT_URL=s3_server["endpoint"],
        DAMFLEET_STORAGE_S3_ACCESS_KEY_ID=s3_server["access_key"],
        DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY=s3_server["secret_key"],
    )
    data = (media_dir / "harbour-still.jpg").read_bytes()
    storage = Storage.from_settings(settings)
    try:
        await storage.write_bytes(f"s3://{s3_bucket}/inbox/still.jpg", data, content_type="image/jpeg")
    finally:
        await storage.aclose()
    phases: list[str] = []
    result = await _ingest(settings, f"s3://{s3_bucket}/inbox/still.jpg", "asset-s3-src",
                           lambda phase, done, total: phases.append(phase))
    assert result.asset.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.asset.media.width, result.asset.media.height) == (2400, 1600)
    assert list(dict.fromkeys(phases)) == ["reading", "probing", "storing", "done"]


async def test_a_video_cut_near_its_end_is_refused(tmp_path: Path, media_dir: Path) -> None:
    """The packet walk reads the whole file: a cut in the last 5% fails like one in the middle."""
    settings = make_settings(tmp_path)
    data = (media_dir / "short.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.95)])
    with pytest.raises(CorruptMediaError, match="does not decode"):
        await _ingest(settings, cut.as_uri(), "asset-cut-video")
    assert await _stored(settings, "asset-cut-video") == []


def _big_png() -> bytes:
    width = 2500
    height = DECODE_SAMPLE_PIXELS // width + 400  # over the sample budget: only its first rows are decoded
    buffer = io.BytesIO()
    Image.radial_gradient("L").resize((width, height)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_large_png_cut_short_is_refused_without_a_full_decode(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    data = _big_png()
    whole = tmp_path / "whole.png"
    whole.write_bytes(data)
    assert (await _ingest(settings, whole.as_uri(), "asset-png-whole")).asset.media.width == 2500
    for name, body in (("no-iend.png", data[:-12]), ("half.png", data[: len(data) // 2])):
        cut = tmp_path / name
        cut.write_bytes(body)
        with pytest.raises(CorruptMediaError, match="PNG image does not decode"):
            await _ingest(settings, cut.as_uri(), f"asset-{name[:-4]}")
        assert await _stored(settings, f"asset-{name[:-4]}") == []


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_scan_metadata_names_what_libvips_leaves_to_exiftool(tmp_path: Path) -> None:
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain, "PNG")
    assert scan_metadata(plain) == {"metadata_blocks": [], "jpeg_comments": []}
    png = plain.read_bytes()
    texted = tmp_path / "texted.png"
    texted.write_bytes(png[:33] + _png_chunk(b"tEXt", b"Author\0someone") + png[33:])
    assert scan_metadata(texted)["metadata_blocks"] == ["tEXt"]

    exif = Image.Exif()
    exif[0x010E] = "a description"
    with_exif = tmp_path / "exif.jpg"
    Image.new("RGB", (8, 8)).save(with_exif, "JPEG", exif=exif)
    assert scan_metadata(with_exif)["metadata_blocks"] == ["APP1"]

    commented = tmp_path / "comment.jpg"
    Image.new("RGB", (8, 8)).save(commented, "JPEG", comment=b"shot on a pier")
    assert scan_metadata(commented) == {"metadata_blocks": [], "jpeg_comments": ["shot on a pier"]}

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\x00\x00garbage")
    assert scan_metadata(broken)["metadata_blocks"] == ["unscanned"]
    gif = tmp_path / "a.gif"
    Image.new("P", (4, 4)).save(gif, "GIF")
    assert scan_metadata(gif)["metadata_blocks"] == ["unscanned"], "formats not walked always get exiftool"
