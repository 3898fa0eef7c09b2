"""Storage layer: the same async interface over file:// and a real S3 HTTP server (moto)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import pytest

from damfleet.errors import BadInputError, SourceNotFoundError
from damfleet.settings import Settings
from damfleet.storage import AssetKeys, Storage, normalize_uri, path_from_uri
from tests.conftest import make_settings


def _s3_settings(tmp_path: Path, s3_server: dict[str, str], bucket: str) -> Settings:
    from tests.conftest import make_settings as _make

    return _make(
        tmp_path,
        DAMFLEET_STORAGE_ROOT=f"s3://{bucket}/fleet",
        DAMFLEET_STORAGE_S3_ENDPOINT_URL=s3_server["endpoint"],
        DAMFLEET_STORAGE_S3_ACCESS_KEY_ID=s3_server["access_key"],
        DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY=s3_server["secret_key"],
    )


async def _chunks(total: int, chunk: int = 1024 * 1024, seed: int = 7) -> AsyncIterator[bytes]:
    sent = 0
    block = hashlib.sha256(str(seed).encode()).digest() * (chunk // 32)
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        sent += len(piece)
        yield piece


def _expected_sha(total: int, chunk: int = 1024 * 1024, seed: int = 7) -> str:
    digest = hashlib.sha256()
    block = hashlib.sha256(str(seed).encode()).digest() * (chunk // 32)
    sent = 0
    while sent < total:
        piece = block[: min(chunk, total - sent)]
        digest.update(piece)
        sent += len(piece)
    return digest.hexdigest()


@pytest.fixture(params=["file", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "file":
        store = Storage.from_settings(make_settings(tmp_path))
    else:
        s3_server = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
        store = Storage.from_settings(_s3_settings(tmp_path, s3_server, bucket))
    yield store
    await store.aclose()


async def test_write_read_stat_list_delete_roundtrip(storage: Storage) -> None:
    keys = storage.keys("asset-0001")
    uri = keys.rendition("thumbnail", "webp")
    written = await storage.write_bytes(uri, b"hello world", content_type="image/webp")
    assert written.size_bytes == 11
    assert written.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert await storage.read_bytes(uri) == b"hello world"
    info = await storage.stat(uri)
    assert info.size_bytes == 11
    assert await storage.exists(uri)
    await storage.write_bytes(keys.technical_metadata(), b"{}")
    listed = [o.uri async for o in storage.list(keys.prefix)]
    assert sorted(listed) == sorted([written.uri, (await storage.stat(keys.technical_metadata())).uri])
    assert await storage.delete(uri) is True
    assert await storage.delete(uri) is False
    assert not await storage.exists(uri)
    assert await storage.delete_prefix(keys.prefix) == 1
    assert [o async for o in storage.list(keys.prefix)] == []


async def test_retried_write_overwrites_instead_of_duplicating(storage: Storage) -> None:
    uri = storage.keys("asset-0002").rendition("proxy", "mp4")
    await storage.write_bytes(uri, b"first attempt, longer")
    await storage.write_bytes(uri, b"second")
    assert await storage.read_bytes(uri) == b"second"
    assert len([o async for o in storage.list(storage.keys("asset-0002").prefix)]) == 1


async def test_missing_object_is_source_not_found(storage: Storage) -> None:
    uri = storage.keys("asset-0003").rendition("nope", "bin")
    with pytest.raises(SourceNotFoundError):
        await storage.stat(uri)
    with pytest.raises(SourceNotFoundError):
        await storage.read_bytes(uri)


async def test_large_streamed_write_is_multipart_and_intact(storage: Storage, tmp_path: Path) -> None:
    total = 21 * 1024 * 1024 + 12345  # > 16 MB threshold: multipart on S3, several parts
    uri = storage.keys("asset-0004").rendition("big", "bin")
    written = await storage.write(uri, _chunks(total))
    assert written.size_bytes == total
    assert written.sha256 == _expected_sha(total)
    local = await storage.download_file(uri, tmp_path / "back.bin")
    assert local.size_bytes == total and local.sha256 == written.sha256
    assert (await storage.stat(uri)).size_bytes == total


async def test_failed_write_leaves_nothing_behind(storage: Storage) -> None:
    uri = storage.keys("asset-0005").rendition("broken", "bin")

    async def failing() -> AsyncIterator[bytes]:
        async for chunk in _chunks(18 * 1024 * 1024):
            yield chunk
        raise RuntimeError("writer died")

    with pytest.raises(RuntimeError, match="writer died"):
        await storage.write(uri, failing())
    assert not await storage.exists(uri)
    assert [o async for o in storage.list(storage.keys("asset-0005").prefix)] == []


async def test_s3_multipart_visible_in_bucket_with_checksum_metadata(
    tmp_path: Path, s3_server: dict[str, str], s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="werkzeug")  # moto's HTTP request log
    store = Storage.from_settings(_s3_settings(tmp_path, s3_server, s3_bucket))
    total = 17 * 1024 * 1024
    uri = store.keys("asset-0006").rendition("proxy", "mp4")
    written = await store.write(uri, _chunks(total), content_type="video/mp4")
    await store.aclose()
    client = boto3.client(
        "s3", endpoint_url=s3_server["endpoint"], aws_access_key_id="testing",
        aws_secret_access_key="testing", region_name="us-east-1",
    )
    key = uri.split(f"s3://{s3_bucket}/", 1)[1]
    head = client.head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentLength"] == total
    assert head["ContentType"] == "video/mp4"
    requests = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert any("?uploads " in line and "POST" in line for line in requests), "multipart upload not started"
    assert any("partNumber=3" in line for line in requests), "a 17 MB stream in 8 MB parts needs 3 parts"
    assert head["Metadata"]["sha256"] == written.sha256
    body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == written.sha256


def test_keys_are_deterministic_and_safe() -> None:
    keys = AssetKeys("s3://bucket/root/", "abcd1234")
    assert keys.prefix == "s3://bucket/root/assets/ab/abcd1234/"
    assert keys.original("../../etc/passwd") == "s3://bucket/root/assets/ab/abcd1234/original/etc_passwd"
    assert keys.rendition("preview", ".jpg") == keys.rendition("preview", "jpg")
    with pytest.raises(ValueError):
        AssetKeys("file:///x", "../escape")


def test_normalize_uri() -> None:
    assert normalize_uri("/tmp/a b.mp4") == "file:///tmp/a%20b.mp4"
    assert path_from_uri(normalize_uri("/tmp/a b.mp4")) == Path("/tmp/a b.mp4")
    assert normalize_uri("s3://b/k") == "s3://b/k"
    with pytest.raises(BadInputError, match="unsupported URI scheme 'http'"):
        normalize_uri("http://example.com/x.mp4")
    with pytest.raises(BadInputError):
        normalize_uri("   ")
    assert os.path.isabs(path_from_uri(normalize_uri("relative.mp4")))
