"""``s3://`` storage through aioboto3: AWS S3, Ceph RGW, MinIO.

Small objects go up in one PUT; larger streams use multipart upload with a Content-MD5
per part, completed only when every part is in, and aborted on any failure, so a
half-written object never becomes visible. botocore's newest default checksum headers
are switched to "when required", which Ceph RGW and MinIO accept.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from damfleet.errors import (
    BadInputError,
    ConfigurationError,
    DamfleetError,
    SourceNotFoundError,
    StorageUnavailableError,
    TransientError,
)
from damfleet.settings import StorageSettings
from damfleet.storage.base import CHUNK_BYTES, ObjectInfo, StorageBackend, WriteResult

__all__ = ["S3Backend", "S3ClientCache", "S3ClientOptions", "split_s3_uri"]

SHA256_METADATA_KEY = "sha256"
_MAX_COPY_BYTES = 5 * 1024**3  # S3 CopyObject limit


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` → ``("bucket", "some/key")``."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise BadInputError(f"not an s3://bucket/key URI: {uri!r}")
    return parsed.netloc, parsed.path.lstrip("/")


@dataclass(frozen=True)
class S3ClientOptions:
    """How to reach one S3-compatible endpoint (AWS, Ceph RGW, MinIO)."""

    access_key_id: str = ""
    secret_access_key: str = ""
    session_token: str = ""
    region: str = ""
    endpoint_url: str = ""
    addressing_style: str = "path"
    max_pool_connections: int = 64
    max_attempts: int = 3


class S3ClientCache:
    """One long-lived aioboto3 client per event loop, shared by every concurrent caller.

    botocore's newest default checksum headers are sent only "when required", which Ceph
    RGW and MinIO accept; the client retries briefly itself and leaves long retries to
    Temporal's policies.
    """

    def __init__(self, options: S3ClientOptions) -> None:
        self.options = options
        self._clients: dict[int, tuple[contextlib.AsyncExitStack, Any]] = {}
        self._lock = asyncio.Lock()

    async def get(self) -> Any:
        loop_id = id(asyncio.get_running_loop())
        cached = self._clients.get(loop_id)
        if cached is not None:
            return cached[1]
        async with self._lock:
            cached = self._clients.get(loop_id)
            if cached is not None:
                return cached[1]
            import aioboto3
            from botocore.config import Config

            o = self.options
            config = Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": o.addressing_style},
                max_pool_connections=o.max_pool_connections,
                retries={"max_attempts": o.max_attempts, "mode": "standard"},
            )
            session = aioboto3.Session(
                aws_access_key_id=o.access_key_id or None,
                aws_secret_access_key=o.secret_access_key or None,
                aws_session_token=o.session_token or None,
                region_name=o.region or None,
            )
            stack = contextlib.AsyncExitStack()
            client = await stack.enter_async_context(
                session.client("s3", endpoint_url=o.endpoint_url or None, config=config)
            )
            self._clients[loop_id] = (stack, client)
            return client

    async def aclose(self) -> None:
        """Close this event loop's client; a later call opens a new one."""
        cached = self._clients.pop(id(asyncio.get_running_loop()), None)
        if cached is not None:
            await cached[0].aclose()


class S3Backend(StorageBackend):
    """Storage on an S3-compatible bucket, through one shared client per event loop."""

    scheme = "s3"

    def __init__(self, settings: StorageSettings) -> None:
        self._settings = settings
        self._cache = S3ClientCache(
            S3ClientOptions(
                access_key_id=settings.s3_access_key_id.get_secret_value(),
                secret_access_key=settings.s3_secret_access_key.get_secret_value(),
                region=settings.s3_region,
                endpoint_url=settings.s3_endpoint_url,
                addressing_style=settings.s3_addressing_style,
                max_pool_connections=settings.max_pool_connections,
            )
        )

    async def _client(self) -> Any:
        return await self._cache.get()

    async def aclose(self) -> None:
        await self._cache.aclose()

    @staticmethod
    def _translate(exc: Exception, uri: str) -> Exception:
        """Map botocore errors to damfleet's permanent/transient classes."""
        from botocore.exceptions import ClientError, EndpointConnectionError, HTTPClientError, NoCredentialsError

        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in ("NoSuchKey", "404", "NotFound"):
                return SourceNotFoundError(f"no such object: {uri}")
            if code == "NoSuchBucket":
                return ConfigurationError(f"bucket does not exist for {uri}")
            if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
                return ConfigurationError(f"access denied to {uri} ({code}): check the S3 credentials")
            if status >= 500 or code in ("SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"):
                return StorageUnavailableError(f"S3 error {code} on {uri}")
            return BadInputError(f"S3 refused {uri}: {code} {exc}")
        if isinstance(exc, NoCredentialsError):
            return ConfigurationError("no S3 credentials configured (DAMFLEET_STORAGE_S3_ACCESS_KEY_ID)")
        if isinstance(exc, (EndpointConnectionError, HTTPClientError, OSError, asyncio.TimeoutError)):
            # Connection refused, reset mid-stream, DNS, read timeout: the store is down, the
            # input is fine. Retried for the queue's whole retry window, never a bad input.
            return StorageUnavailableError(f"S3 endpoint unreachable for {uri}: {exc}")
        if type(exc).__module__.startswith("aiohttp"):
            # A body read cut short (server disconnected, payload error) surfaces unwrapped.
            return StorageUnavailableError(f"S3 connection lost reading {uri}: {type(exc).__name__}: {exc}")
        return exc

    async def read(self, uri: str, *, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:  # type: ignore[override]
        bucket, key = split_s3_uri(uri)
        client = await self._client()
        try:
            response = await client.get_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, uri) from exc
        body = response["Body"]
        try:
            while True:
                try:
                    chunk = await body.read(chunk_bytes)
                except Exception as exc:  # translated below
                    raise self._translate(exc, uri) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def write(
        self,
        uri: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        bucket, key = split_s3_uri(uri)
        client = await self._client()
        part_size = max(self._settings.multipart_chunk_bytes, 5 * 1024 * 1024)
        threshold = max(self._settings.multipart_threshold_bytes, part_size)
        digest = hashlib.sha256()
        size = 0
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        extra: dict[str, Any] = {"ContentType": content_type or "application/octet-stream"}
        meta = dict(metadata or {})

        expected = meta.get(SHA256_METADATA_KEY, "")

        async def flush_part(data: bytes) -> None:
            nonlocal upload_id
            if upload_id is None:
                # An earlier attempt of this write killed mid-upload (worker SIGKILL, outage)
                # left its upload open on the store: abort it before starting again.
                await self._abort_uploads(client, bucket, key, exact_key=True)
                created = await client.create_multipart_upload(
                    Bucket=bucket, Key=key, Metadata=meta, **extra
                )
                upload_id = created["UploadId"]
            number = len(parts) + 1
            md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
            response = await client.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, ContentMD5=md5
            )
            parts.append({"PartNumber": number, "ETag": response["ETag"]})

        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer.extend(chunk)
                # Start multipart only once the object is known to exceed the threshold.
                while len(buffer) >= part_size and (upload_id is not None or size > threshold):
                    await flush_part(bytes(buffer[:part_size]))
                    del buffer[:part_size]
            if expected and expected != digest.hexdigest():
                raise TransientError(f"{uri}: the data changed while it was uploaded (sha256 "
                                     f"{digest.hexdigest()}, expected {expected}); retrying")
            meta[SHA256_METADATA_KEY] = digest.hexdigest()
            if upload_id is None:
                data = bytes(buffer)
                md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
                await client.put_object(Bucket=bucket, Key=key, Body=data, ContentMD5=md5, Metadata=meta, **extra)
            else:
                if buffer:
                    await flush_part(bytes(buffer))
                    buffer.clear()
                await client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
                upload_id = None
                if not expected and size <= _MAX_COPY_BYTES:
                    # The hash is known only now; record it with a server-side self-copy so
                    # stat() can report it without reading the object back.
                    await client.copy_object(
                        Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                        Metadata=meta, MetadataDirective="REPLACE", **extra,
                    )
        except BaseException as exc:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id))
            if isinstance(exc, Exception) and not isinstance(exc, DamfleetError):
                raise self._translate(exc, uri) from exc
            raise
        return WriteResult(uri=f"s3://{bucket}/{key}", size_bytes=size, sha256=digest.hexdigest())

    async def upload_file(
        self, path: Path, uri: str, *, content_type: str = "", metadata: dict[str, str] | None = None
    ) -> WriteResult:
        """Store a local file; its sha256 is computed first, so the multipart upload is
        created with it and no object is ever visible without its checksum metadata."""
        loop = asyncio.get_running_loop()
        meta = dict(metadata or {})
        meta[SHA256_METADATA_KEY] = await loop.run_in_executor(None, _file_sha256, path)
        return await super().upload_file(path, uri, content_type=content_type, metadata=meta)

    async def _abort_uploads(
        self, client: Any, bucket: str, prefix: str, *, exact_key: bool = False, older_than: float | None = None
    ) -> int:
        """Abort open multipart uploads under ``prefix`` (only ``prefix`` itself with ``exact_key``)."""
        from botocore.exceptions import ClientError

        cutoff = time.time() - older_than if older_than is not None else None
        aborted = 0
        paginator = client.get_paginator("list_multipart_uploads")
        async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if exact_key and upload["Key"] != prefix:
                    continue
                if cutoff is not None and upload["Initiated"].timestamp() > cutoff:
                    continue
                with contextlib.suppress(ClientError):  # already completed or aborted
                    await client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted += 1
        return aborted

    async def abort_stale_uploads(self, prefix_uri: str, older_than_seconds: float) -> int:
        """Abort damfleet's multipart uploads under ``prefix_uri`` started over ``older_than_seconds`` ago.

        Uploads interrupted by a killed worker or an outage are invisible but keep their
        parts' bytes on the store (and on the bill). Run at worker start and periodically;
        a bucket lifecycle rule (AbortIncompleteMultipartUpload, see the README) is the
        store-side safety net.
        """
        bucket, prefix = split_s3_uri(prefix_uri)
        client = await self._client()
        try:
            return await self._abort_uploads(client, bucket, prefix, older_than=older_than_seconds)
        except Exception as exc:  # translated below
            translated = self._translate(exc, prefix_uri)
            if translated is exc:
                raise
            raise translated from exc

    async def stat(self, uri: str) -> ObjectInfo:
        bucket, key = split_s3_uri(uri)
        client = await self._client()
        try:
            head = await client.head_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, uri) from exc
        return ObjectInfo(
            uri=uri,
            size_bytes=int(head["ContentLength"]),
            modified_at=head["LastModified"].timestamp(),
            content_type=head.get("ContentType", ""),
            sha256=head.get("Metadata", {}).get(SHA256_METADATA_KEY, ""),
        )

    async def list(self, prefix_uri: str) -> AsyncIterator[ObjectInfo]:  # type: ignore[override]
        bucket, prefix = split_s3_uri(prefix_uri)
        client = await self._client()
        paginator = client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        uri=f"s3://{bucket}/{item['Key']}",
                        size_bytes=int(item["Size"]),
                        modified_at=item["LastModified"].timestamp(),
                    )
        except Exception as exc:  # noqa: BLE001
            translated = self._translate(exc, prefix_uri)
            if translated is exc:
                raise
            raise translated from exc

    async def delete(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        client = await self._client()
        existed = await self.exists(uri)
        try:
            await client.delete_object(Bucket=bucket, Key=key)
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, uri) from exc
        return existed
