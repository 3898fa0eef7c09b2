"""Multipart hygiene on a real S3 HTTP server (moto): nothing left open, nothing visible without its sha256."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
import pytest

from damfleet.storage import Storage
from damfleet.storage.s3 import S3Backend
from tests.damfleet.storage.test_storage import _chunks, _s3_settings


def _boto(s3_server: dict[str, str]):  # type: ignore[no-untyped-def]
    return boto3.client("s3", endpoint_url=s3_server["endpoint"], aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def _open_uploads(client, bucket: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [u["Key"] for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]


async def test_uploaded_file_carries_its_sha256_from_creation_no_self_copy(
    tmp_path: Path, s3_server: dict[str, str], s3_bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="werkzeug")
    source = tmp_path / "proxy.mp4"
    source.write_bytes(os.urandom(17 * 1024 * 1024))
    store = Storage.from_settings(_s3_settings(tmp_path, s3_server, s3_bucket))
    uri = store.keys("asset-hyg1").rendition("proxy", "mp4")
    written = await store.upload_file(source, uri, content_type="video/mp4")
    await store.aclose()
    key = uri.split(f"s3://{s3_bucket}/", 1)[1]
    head = _boto(s3_server).head_object(Bucket=s3_bucket, Key=key)
    assert head["Metadata"]["sha256"] == written.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    requests = [r.getMessage() for r in caplog.records if r.name == "werkzeug" and key in r.getMessage()]
    assert any("?uploads" in line for line in requests), "expected a multipart upload"
    plain_puts = [line for line in requests if '"PUT ' in line and "partNumber" not in line]
    assert plain_puts == [], f"the object was rewritten after completion: {plain_puts}"


async def test_a_retry_aborts_the_upload_its_killed_attempt_left_open(
    tmp_path: Path, s3_server: dict[str, str], s3_bucket: str
) -> None:
    client = _boto(s3_server)
    store = Storage.from_settings(_s3_settings(tmp_path, s3_server, s3_bucket))
    uri = store.keys("asset-hyg2").rendition("proxy", "mp4")
    key = uri.split(f"s3://{s3_bucket}/", 1)[1]
    # The first attempt's worker was SIGKILLed after one part: its upload stays open.
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key=key)
    client.upload_part(Bucket=s3_bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                       Body=b"x" * 5 * 1024 * 1024)
    assert _open_uploads(client, s3_bucket) == [key]
    await store.write(uri, _chunks(17 * 1024 * 1024), content_type="video/mp4")
    await store.aclose()
    assert _open_uploads(client, s3_bucket) == []


async def test_sweeper_aborts_only_uploads_older_than_the_setting(
    tmp_path: Path, s3_server: dict[str, str], s3_bucket: str
) -> None:
    client = _boto(s3_server)
    settings = _s3_settings(tmp_path, s3_server, s3_bucket)
    for name in ("a", "b"):
        client.create_multipart_upload(Bucket=s3_bucket, Key=f"{settings.storage_root.split('/', 3)[3]}/x/{name}")
    client.create_multipart_upload(Bucket=s3_bucket, Key="not-damfleet/other")
    backend = S3Backend(settings.storage)
    # moto reports every upload as initiated in 2010, so "younger than the setting" is an
    # age no upload can reach (100 years) and "older" is any.
    century = 100 * 365 * 86400.0
    assert await backend.abort_stale_uploads(settings.storage_root + "/", older_than_seconds=century) == 0
    assert await backend.abort_stale_uploads(settings.storage_root + "/", older_than_seconds=0) == 2
    await backend.aclose()
    assert _open_uploads(client, s3_bucket) == ["not-damfleet/other"]
