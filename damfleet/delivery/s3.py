"""S3-compatible bucket target (AWS S3, Ceph RGW, MinIO) through aioboto3.

- Streaming: the rendition is read from storage in small chunks and sent in parts of
  ``part_size_bytes`` (8 MiB by default); a delivery holds about one part in memory,
  and the per-target concurrency limit bounds how many parts are in memory at once.
- Integrity: every part carries Content-MD5, which every S3-compatible store checks;
  with ``checksum_algorithm: "SHA256"`` it also carries x-amz-checksum-sha256 and the
  store's echo is compared. The whole stream's sha256 is compared with the recorded one
  before the upload is completed; on any failure the multipart upload is aborted, so a
  partial object never becomes visible.
- Compatibility: botocore's newest default checksum headers are switched to "when
  required" (Ceph RGW and MinIO reject some of them).
- Idempotency: the key is deterministic (``<prefix>/<asset_id>/<file>``) and the object
  records ``idempotency-key`` and ``sha256`` metadata; a retry that finds the same
  rendition already there sends nothing, and one that does not overwrites the same key,
  so there is never a second copy.

The writer and the botocore error map are storage's (:mod:`damfleet.storage.s3_io`),
read with the target's words: an outage is TargetUnavailableError, a refusal
TargetRejectedError, both naming the target.
"""

from __future__ import annotations

from typing import Any, Self
from urllib.parse import quote

from pydantic import Field, SecretStr, model_validator

from damfleet.delivery.base import (
    DeliveryContext,
    DeliveryItem,
    DeliveryResult,
    TargetConfig,
    TargetType,
    check_url,
)
from damfleet.errors import TargetUnavailableError
from damfleet.storage.s3 import S3ClientCache, S3ClientOptions
from damfleet.storage.s3_io import TARGET_WORDS, S3ErrorMap, s3_status, upload_stream

__all__ = ["TARGET_TYPE", "S3TargetClient", "S3TargetConfig", "deliver_s3", "object_key"]


class S3TargetConfig(TargetConfig):
    """An S3-compatible bucket (AWS S3, Ceph RGW, MinIO); objects at ``<prefix>/<asset_id>/<file>``."""

    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key_id: SecretStr = SecretStr("")
    secret_access_key: SecretStr = SecretStr("")
    session_token: SecretStr = SecretStr("")
    addressing_style: str = "path"
    cache_control: str = ""
    content_disposition: str = ""
    storage_class: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    #: "" sends Content-MD5 per part (understood by every S3-compatible store); "SHA256"
    #: also sends and checks x-amz-checksum-sha256 per part (AWS, MinIO, recent Ceph).
    checksum_algorithm: str = ""
    part_size_bytes: int = Field(default=8 * 1024 * 1024, ge=0)
    public_url_base: str = ""     # e.g. "https://cdn.example.com": receipts then carry a URL too

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not self.bucket.strip():
            raise ValueError("bucket must not be empty")
        if self.endpoint_url:
            check_url(self.endpoint_url)
        if self.checksum_algorithm.upper() not in ("", "SHA256"):
            raise ValueError('checksum_algorithm must be "" or "SHA256"')
        if self.addressing_style not in ("path", "virtual", "auto"):
            raise ValueError("addressing_style must be path, virtual or auto")
        if self.part_size_bytes < 5 * 1024 * 1024:
            raise ValueError("part_size_bytes must be at least 5 MiB (S3's minimum)")
        return self

IDEMPOTENCY_METADATA_KEY = "idempotency-key"
SHA256_METADATA_KEY = "sha256"

def object_key(config: S3TargetConfig, item: DeliveryItem) -> str:
    prefix = config.prefix.strip("/")
    return "/".join(p for p in (prefix, item.asset_id, item.filename) if p)


def _errors(config: S3TargetConfig) -> S3ErrorMap:
    """Delivery's reading of S3 faults, naming the target and its bucket."""
    return S3ErrorMap(TARGET_WORDS, {"name": config.name, "bucket": config.bucket})


class S3TargetClient(S3ClientCache):
    """One aioboto3 client per target and event loop, shared by all its deliveries."""

    def __init__(self, config: S3TargetConfig, *, max_pool_connections: int) -> None:
        self.config = config
        super().__init__(
            S3ClientOptions(
                access_key_id=config.access_key_id,
                secret_access_key=config.secret_access_key,
                session_token=config.session_token,
                region=config.region,
                endpoint_url=config.endpoint_url,
                addressing_style=config.addressing_style,
                max_pool_connections=max_pool_connections,
                max_attempts=2,  # Temporal does the long retries
            )
        )


def _metadata(config: S3TargetConfig, item: DeliveryItem) -> dict[str, str]:
    """Object metadata: the target's own, the asset's (percent-encoded: headers are ASCII),
    and what a retry needs to recognise its own earlier upload."""
    meta = {k.lower(): v for k, v in config.metadata.items()}
    for key, value in item.metadata.items():
        if value:
            meta[key.lower()] = quote(value, safe=" -_.,:/@")
    meta.update({
        IDEMPOTENCY_METADATA_KEY: item.idempotency_key,
        SHA256_METADATA_KEY: item.sha256,
        "asset-id": item.asset_id,
        "role": item.role,
    })
    return meta


def open_client(config: S3TargetConfig, ctx: DeliveryContext) -> S3TargetClient:
    return S3TargetClient(config, max_pool_connections=max(10, ctx.limit))


async def deliver_s3(config: S3TargetConfig, item: DeliveryItem, ctx: DeliveryContext) -> DeliveryResult:
    """Upload one rendition (multipart above one part), or find it already there."""
    client = await ctx.client.get()
    key = object_key(config, item)
    location = (
        f"{config.public_url_base.rstrip('/')}/{quote(key)}" if config.public_url_base else f"s3://{config.bucket}/{key}"
    )

    errors = _errors(config)
    # A retry after a lost response finds its own object: nothing to send again.
    try:
        head = await client.head_object(Bucket=config.bucket, Key=key)
    except Exception as exc:
        translated = errors.translate(exc, f"HEAD s3://{config.bucket}/{key}")
        if isinstance(translated, TargetUnavailableError) or s3_status(exc) not in (403, 404):
            raise translated from exc
        head = None      # 404: not there yet; 403: HEAD may be denied without ListBucket, try the upload
    if head is not None:
        meta = head.get("Metadata", {})
        if (
            meta.get(IDEMPOTENCY_METADATA_KEY) == item.idempotency_key
            and meta.get(SHA256_METADATA_KEY) == item.sha256
            and int(head.get("ContentLength", -1)) == item.size_bytes
        ):
            # An earlier attempt may have died between completing the upload and tagging it.
            await _apply_tags(client, config, key)
            return DeliveryResult(location=location, size_bytes=item.size_bytes, sha256=item.sha256,
                                  already_present=True, verified_checksum="none")

    headers: dict[str, Any] = {"ContentType": item.mime_type or "application/octet-stream",
                               "Metadata": _metadata(config, item)}
    if config.cache_control:
        headers["CacheControl"] = config.cache_control
    if config.content_disposition:
        headers["ContentDisposition"] = config.content_disposition
    if config.storage_class:
        headers["StorageClass"] = config.storage_class

    stream = ctx.stream(item)
    # The whole stream's size and sha256 are checked before the upload is completed.
    upload = await upload_stream(
        client, config.bucket, key, stream, errors=errors, headers=headers,
        part_size=config.part_size_bytes, sha256_parts=config.checksum_algorithm.upper() == "SHA256",
        before_commit=lambda _headers: stream.verify(),
    )
    await _apply_tags(client, config, key)
    # Content-MD5 on every request is checked by every S3-compatible store; SHA256 counts as
    # verified only when the store echoed it for every request (Ceph RGW 16 echoes nothing).
    verified = "sha256" if upload.sha256_verified else "md5"
    return DeliveryResult(location=location, size_bytes=stream.size, sha256=stream.sha256, verified_checksum=verified)


async def _apply_tags(client: Any, config: S3TargetConfig, key: str) -> None:
    """Tag the finished object with PutObjectTagging and read the tags back.

    Tags are not sent with the upload: Ceph RGW ignores ``x-amz-tagging`` on
    CreateMultipartUpload without an error, so large deliveries silently lost them.
    A store that does not keep them fails the delivery retryably, with a message saying so.
    """
    if not config.tags:
        return
    action = f"tag s3://{config.bucket}/{key}"
    with _errors(config).mapping(action):
        await client.put_object_tagging(
            Bucket=config.bucket, Key=key,
            Tagging={"TagSet": [{"Key": k, "Value": v} for k, v in sorted(config.tags.items())]},
        )
        answer = await client.get_object_tagging(Bucket=config.bucket, Key=key)
    kept = {t["Key"]: t["Value"] for t in answer.get("TagSet", [])}
    if kept != dict(config.tags):
        raise TargetUnavailableError(
            f"target {config.name!r}: the store did not keep the tags of {key} (sent {dict(config.tags)}, read back {kept})"
        )


TARGET_TYPE = TargetType("s3", S3TargetConfig, deliver=deliver_s3, open_client=open_client)
