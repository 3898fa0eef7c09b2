"""Ingest stage functions on generated media, and the bad-input cases of issue 2."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from damfleet import ingest
from damfleet.errors import (
    BadInputError,
    ChecksumMismatchError,
    CorruptMediaError,
    EmptySourceError,
    SourceNotFoundError,
    UnsafeMediaError,
    UnsupportedMediaError,
)
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.v1 import common_pb2, stages_pb2
from tests.conftest import make_settings


async def _ingest(settings: Settings, source: Path | str, asset_id: str = "asset-test-1", **kw: str):
    storage = Storage.from_settings(settings)
    scratch = settings.scratch_path / asset_id
    scratch.mkdir(parents=True, exist_ok=True)
    request = stages_pb2.IngestInput(asset_id=asset_id, source_uri=str(source), profile="default", **kw)
    try:
        return await ingest.ingest_asset(request, storage=storage, settings=settings, scratch=scratch), storage
    finally:
        await storage.aclose()


async def _stored(settings: Settings, asset_id: str) -> list[str]:
    storage = Storage.from_settings(settings)
    return [o.uri async for o in storage.list(storage.keys(asset_id).prefix)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_ingest_image_stores_original_and_metadata(settings: Settings, media_dir: Path) -> None:
    source = media_dir / "harbour-still.jpg"
    result, storage = await _ingest(settings, source, expected_sha256=_sha(source))
    asset = result.asset
    assert asset.sha256 == _sha(source)
    assert asset.size_bytes == source.stat().st_size
    assert asset.media.kind == common_pb2.MEDIA_KIND_IMAGE
    assert asset.media.mime_type == "image/jpeg"
    assert (asset.media.width, asset.media.height) == (2400, 1600)
    roles = {o.role: o for o in result.outputs}
    assert set(roles) == {"original", "technical_metadata"}
    assert roles["original"].sha256 == asset.sha256
    assert roles["original"].uri.endswith("/original/harbour-still.jpg")
    sidecar = json.loads(Path(roles["technical_metadata"].uri.removeprefix("file://")).read_text())
    # ffmpeg's JPEG holds no EXIF/XMP/IPTC, only a comment: libvips and the segment walk say it all,
    # so exiftool is not started (issue 11); the comment is still recorded, as exiftool names it.
    assert sidecar["vips"]["width"] == 2400 and sidecar["tool"] == "libvips"
    assert sidecar["vips"]["metadata_blocks"] == []
    assert sidecar["exif"]["File:Comment"].startswith("Lavc")
    assert sidecar["vips"]["fields"]["filename"] == "harbour-still.jpg", "not the descriptor path read"


async def test_ingest_video_with_audio(settings: Settings, media_dir: Path) -> None:
    result, _ = await _ingest(settings, (media_dir / "harbour-clip.mp4").as_uri())
    media = result.asset.media
    assert media.kind == common_pb2.MEDIA_KIND_VIDEO
    assert media.has_video and media.has_audio
    assert (media.width, media.height) == (1280, 720)
    assert media.video_codec == "h264" and media.audio_codec == "aac"
    assert 7.5 < media.duration_seconds < 8.5
    assert media.frame_rate == pytest.approx(25.0)


async def test_ingest_detects_audio_from_content_not_extension(
    settings: Settings, media_dir: Path, tmp_path: Path
) -> None:
    disguised = tmp_path / "not-really-a-photo.jpg"
    disguised.write_bytes((media_dir / "harbour-interview.m4a").read_bytes())
    result, _ = await _ingest(settings, disguised)
    media = result.asset.media
    assert media.kind == common_pb2.MEDIA_KIND_AUDIO
    assert media.mime_type == "audio/mp4"
    assert media.has_audio and not media.has_video


async def test_ingest_is_idempotent_on_retry(settings: Settings, media_dir: Path) -> None:
    first, _ = await _ingest(settings, media_dir / "small.png", asset_id="asset-retry")
    second, _ = await _ingest(settings, media_dir / "small.png", asset_id="asset-retry")
    assert [o.uri for o in first.outputs] == [o.uri for o in second.outputs]
    assert len(await _stored(settings, "asset-retry")) == 2


def _file(folder: Path, name: str, data: bytes | None) -> Path:
    path = folder / name
    if data is not None:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make_source", "error", "message"),
    [
        (lambda d: _file(d, "missing.mp4", None), SourceNotFoundError, "no such file"),
        (lambda d: _file(d, "empty.mp4", b""), EmptySourceError, "0 bytes"),
        (lambda d: _file(d, "notes.mp4", b"just some text\n" * 20), UnsupportedMediaError, "text, not media"),
        (lambda d: _file(d, "evil.avi", b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n"), UnsupportedMediaError,
         "playlist"),
    ],
    ids=["missing", "zero-byte", "not-media", "hls-playlist-as-avi"],
)
async def test_bad_input_fails_clearly_and_stores_nothing(
    tmp_path: Path, make_source, error: type[Exception], message: str
) -> None:
    settings = make_settings(tmp_path)
    source = make_source(tmp_path)
    with pytest.raises(error, match=message) as caught:
        await _ingest(settings, source, asset_id="asset-bad")
    assert not caught.value.retryable
    assert await _stored(settings, "asset-bad") == []


async def test_checksum_mismatch_names_both_hashes(settings: Settings, media_dir: Path) -> None:
    source = media_dir / "small.png"
    wrong = "0" * 64
    with pytest.raises(ChecksumMismatchError, match=f"expected sha256 {wrong}, got {_sha(source)}"):
        await _ingest(settings, source, asset_id="asset-sum", expected_sha256=wrong)
    assert await _stored(settings, "asset-sum") == []
    with pytest.raises(BadInputError, match="not 64 hex digits"):
        await _ingest(settings, source, asset_id="asset-sum", expected_sha256="abc")


async def test_truncated_video_is_corrupt(settings: Settings, media_dir: Path, tmp_path: Path) -> None:
    data = (media_dir / "harbour-clip.mp4").read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(CorruptMediaError):
        await _ingest(settings, truncated, asset_id="asset-trunc")
    assert await _stored(settings, "asset-trunc") == []


async def test_image_decompression_bomb_is_refused(tmp_path: Path, media_dir: Path) -> None:
    settings = make_settings(tmp_path, DAMFLEET_INGEST_MAX_IMAGE_PIXELS="100000")
    with pytest.raises(UnsafeMediaError, match="exceeds the limit"):
        await _ingest(settings, media_dir / "small.png", asset_id="asset-bomb")


async def test_corrupt_image_body(settings: Settings, media_dir: Path, tmp_path: Path) -> None:
    data = bytearray((media_dir / "harbour-still.jpg").read_bytes())
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(bytes(data[:600]) + b"\x00" * 64)
    with pytest.raises(CorruptMediaError, match="JPEG"):
        await _ingest(settings, broken, asset_id="asset-brokenjpg")
