"""S3 target against a real S3 HTTP server (moto), and S3 error answers from a real HTTP
server speaking S3's error format (moto accepts any credentials)."""

from __future__ import annotations

import hashlib
from typing import Any

import boto3
import pytest
from aiohttp import web

from damfleet.errors import ConfigurationError, TargetRejectedError, TargetUnavailableError

MiB = 1024 * 1024


def _s3_target(s3_server: dict[str, str], bucket: str, **extra: Any) -> dict[str, Any]:
    return {"type": "s3", "bucket": bucket, "endpoint_url": s3_server["endpoint"],
            "access_key_id": s3_server["access_key"], "secret_access_key": s3_server["secret_key"],
            "region": s3_server["region"], **extra}


def _boto(s3_server: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=s3_server["endpoint"], aws_access_key_id=s3_server["access_key"],
                        aws_secret_access_key=s3_server["secret_key"], region_name=s3_server["region"])


@pytest.mark.parametrize("checksum_algorithm", ["", "SHA256"])
async def test_multipart_delivery_over_16_mib_verified_on_read_back(
    distributor_for, stored_rendition, s3_server, s3_bucket, checksum_algorithm: str
) -> None:
    target = _s3_target(s3_server, s3_bucket, prefix="deliveries", cache_control="public, max-age=600",
                        tags={"source": "damfleet", "tier": "web"}, metadata={"owner": "media-team"},
                        checksum_algorithm=checksum_algorithm)
    distributor, _ = distributor_for({"cdn": target})
    item = await stored_rendition(distributor.storage, size=17 * MiB + 123)
    progress: list[int] = []
    config, result = await distributor.deliver("cdn", item, progress=lambda done, total: progress.append(done))
    key = f"deliveries/{item.asset_id}/{item.filename}"
    assert result.location == f"s3://{s3_bucket}/{key}" and config.type == "s3"
    client = _boto(s3_server)
    obj = client.get_object(Bucket=s3_bucket, Key=key)
    body = obj["Body"].read()
    assert hashlib.sha256(body).hexdigest() == item.sha256 == result.sha256
    assert obj["ETag"].strip('"').endswith("-3")              # 8 + 8 + 1 MiB parts: multipart
    assert obj["ContentType"] == "video/mp4" and obj["CacheControl"] == "public, max-age=600"
    assert obj["Metadata"]["idempotency-key"] == item.idempotency_key
    assert obj["Metadata"]["sha256"] == item.sha256 and obj["Metadata"]["owner"] == "media-team"
    tags = {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=s3_bucket, Key=key)["TagSet"]}
    assert tags == {"source": "damfleet", "tier": "web"}   # set with PutObjectTagging and read back
    # Content-MD5 is checked by every store; SHA256 counts only when the store echoes it, and
    # moto (like Ceph RGW 16) echoes nothing: the receipt must not claim a SHA256 check.
    assert result.verified_checksum == "md5"
    assert progress[-1] == item.size_bytes
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


async def test_retry_finds_its_own_object_and_sends_nothing(
    distributor_for, stored_rendition, s3_server, s3_bucket
) -> None:
    distributor, _ = distributor_for({"cdn": _s3_target(s3_server, s3_bucket)})
    item = await stored_rendition(distributor.storage, size=1 * MiB)
    _, first = await distributor.deliver("cdn", item)
    _, again = await distributor.deliver("cdn", item)
    assert not first.already_present and again.already_present
    assert first.verified_checksum == "md5" and again.verified_checksum == "none", "nothing was sent again"
    keys = [o["Key"] for o in _boto(s3_server).list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert keys == [f"{item.asset_id}/{item.filename}"]


async def test_corrupted_rendition_aborts_the_multipart_upload(
    distributor_for, stored_rendition, s3_server, s3_bucket
) -> None:
    from damfleet.errors import ChecksumMismatchError

    distributor, _ = distributor_for({"cdn": _s3_target(s3_server, s3_bucket)})
    item = await stored_rendition(distributor.storage, size=17 * MiB)
    bad = item.__class__(**{**item.__dict__, "sha256": "f" * 64})
    with pytest.raises(ChecksumMismatchError):
        await distributor.deliver("cdn", bad)
    client = _boto(s3_server)
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


async def test_missing_bucket_is_a_configuration_error_naming_target(
    distributor_for, stored_rendition, s3_server
) -> None:
    distributor, _ = distributor_for({"cdn": _s3_target(s3_server, "no-such-bucket-here")})
    item = await stored_rendition(distributor.storage)
    with pytest.raises(ConfigurationError, match="'cdn'.*no-such-bucket-here.*does not exist"):
        await distributor.deliver("cdn", item)


def _s3_error(status: int, code: str) -> web.Response:
    body = f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{code} says no</Message></Error>"
    return web.Response(status=status, text=body, content_type="application/xml")


@pytest.mark.parametrize(
    ("status", "code", "expected", "words"),
    [
        (403, "InvalidAccessKeyId", ConfigurationError, "rejected the credentials"),
        (403, "SignatureDoesNotMatch", ConfigurationError, "rejected the credentials"),
        (403, "AccessDenied", TargetRejectedError, "403 AccessDenied"),
        (503, "SlowDown", TargetUnavailableError, "503 SlowDown"),
        (400, "InvalidArgument", TargetRejectedError, "400 InvalidArgument"),
    ],
)
async def test_s3_error_answers_are_classified(
    distributor_for, stored_rendition, status: int, code: str, expected: type, words: str
) -> None:
    async def answer(request: web.Request) -> web.Response:
        await request.read()
        if request.method == "HEAD":
            return web.Response(status=404)
        return _s3_error(status, code)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        distributor, _ = distributor_for({"cdn": {
            "type": "s3", "bucket": "media", "endpoint_url": f"http://127.0.0.1:{port}",
            "access_key_id": "AKIAWRONG", "secret_access_key": "wrong-secret"}})
        item = await stored_rendition(distributor.storage)
        with pytest.raises(expected, match=f"'cdn'.*{words}") as caught:
            await distributor.deliver("cdn", item)
        assert "wrong-secret" not in str(caught.value)
    finally:
        await runner.cleanup()
