"""``s3://`` storage through aioboto3: AWS S3, Ceph RGW, MinIO.

Small objects go up in one PUT; larger streams use multipart upload with a Content-MD5
per part, completed only when every part is in, and aborted on any failure, so a
half-written object never becomes visible. botocore's newest default checksum headers
are switched to "when required", which Ceph RGW and MinIO accept. The writer, the reader
and the botocore error map are shared with S3 delivery (:mod:`damfleet.storage.s3_io`);
this module adds what only storage needs: the sha256 recorded in each object's metadata,
aborting an earlier attempt's open upload, and the sweep of stale uploads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import SecretStr

from damfleet.errors import BadInputError, TransientError
from damfleet.settings import StorageSettings
from damfleet.storage.base import CHUNK_BYTES, ObjectInfo, StorageBackend, WriteResult
from damfleet.storage.s3_io import STORAGE_WORDS, S3ErrorMap, abort_uploads, read_object, upload_stream

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


_NO_SECRET = SecretStr("")


@dataclass(frozen=True)
class S3ClientOptions:
    """How to reach one S3-compatible endpoint (AWS, Ceph RGW, MinIO): made from the storage
    settings (:class:`S3Backend`) or from an S3 target definition (delivery), which own the
    defaults; the two that both always set have none here, so no default is written twice."""

    addressing_style: str
    max_pool_connections: int
    #: Credentials stay ``SecretStr`` (masked in repr and logs) until the session is made.
    access_key_id: SecretStr = _NO_SECRET
    secret_access_key: SecretStr = _NO_SECRET
    session_token: SecretStr = _NO_SECRET
    region: str = ""
    endpoint_url: str = ""
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
                aws_access_key_id=o.access_key_id.get_secret_value() or None,
                aws_secret_access_key=o.secret_access_key.get_secret_value() or None,
                aws_session_token=o.session_token.get_secret_value() or None,
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
                access_key_id=settings.s3_access_key_id,
                secret_access_key=settings.s3_secret_access_key,
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
    def _errors(uri: str) -> S3ErrorMap:
        """Storage's reading of S3 faults, naming ``uri``."""
        return S3ErrorMap(STORAGE_WORDS, {"where": uri})

    @staticmethod
    def _translate(exc: Exception, uri: str) -> BaseException:
        """Map a botocore/aiohttp error to damfleet's permanent/transient classes."""
        return S3Backend._errors(uri).translate(exc)

    async def read(self, uri: str, *, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:  # type: ignore[override]
        bucket, key = split_s3_uri(uri)
        client = await self._client()
        async for chunk in read_object(client, bucket, key, errors=self._errors(uri), chunk_bytes=chunk_bytes):
            yield chunk

    async def write(
        self,
        uri: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        bucket, key = split_s3_uri(uri)
        errors = self._errors(uri)
        client = await self._client()
        digest = hashlib.sha256()
        meta = dict(metadata or {})
        expected = meta.get(SHA256_METADATA_KEY, "")
        headers: dict[str, Any] = {"ContentType": content_type or "application/octet-stream", "Metadata": meta}

        async def hashed() -> AsyncIterator[bytes]:
            async for chunk in chunks:
                digest.update(chunk)
                yield chunk

        def seal(headers: dict[str, Any]) -> None:
            if expected and expected != digest.hexdigest():
                raise TransientError(f"{uri}: the data changed while it was uploaded (sha256 "
                                     f"{digest.hexdigest()}, expected {expected}); retrying")
            headers["Metadata"] = {**meta, SHA256_METADATA_KEY: digest.hexdigest()}

        # An earlier attempt of this write killed mid-upload (worker SIGKILL, outage) may
        # have left its upload open on the store: it is aborted before starting again.
        upload = await upload_stream(
            client, bucket, key, hashed(), errors=errors, headers=headers,
            part_size=self._settings.multipart_chunk_bytes, threshold=self._settings.multipart_threshold_bytes,
            replace_open_uploads=True, before_commit=seal,
        )
        if upload.multipart and not expected and upload.size_bytes <= _MAX_COPY_BYTES:
            # The hash is known only now; record it with a server-side self-copy so stat()
            # can report it without reading the object back.
            with errors.mapping():
                await client.copy_object(
                    Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": key},
                    Metadata={**meta, SHA256_METADATA_KEY: digest.hexdigest()}, MetadataDirective="REPLACE",
                    ContentType=headers["ContentType"],
                )
        return WriteResult(uri=f"s3://{bucket}/{key}", size_bytes=upload.size_bytes, sha256=digest.hexdigest())

    async def upload_file(
        self, path: Path, uri: str, *, content_type: str = "", metadata: dict[str, str] | None = None
    ) -> WriteResult:
        """Store a local file; its sha256 is computed first, so the multipart upload is
        created with it and no object is ever visible without its checksum metadata."""
        loop = asyncio.get_running_loop()
        meta = dict(metadata or {})
        meta[SHA256_METADATA_KEY] = await loop.run_in_executor(None, _file_sha256, path)
        return await super().upload_file(path, uri, content_type=content_type, metadata=meta)

    async def abort_stale_uploads(self, prefix_uri: str, older_than_seconds: float) -> int:
        """Abort damfleet's multipart uploads under ``prefix_uri`` started over ``older_than_seconds`` ago.

        Uploads interrupted by a killed worker or an outage are invisible but keep their
        parts' bytes on the store (and on the bill). Run at worker start and periodically;
        a bucket lifecycle rule (AbortIncompleteMultipartUpload, see the README) is the
        store-side safety net.
        """
        bucket, prefix = split_s3_uri(prefix_uri)
        client = await self._client()
        with self._errors(prefix_uri).mapping():
            return await abort_uploads(client, bucket, prefix, older_than=older_than_seconds)

    async def stat(self, uri: str) -> ObjectInfo:
        bucket, key = split_s3_uri(uri)
        client = await self._client()
        with self._errors(uri).mapping():
            head = await client.head_object(Bucket=bucket, Key=key)
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
        with self._errors(prefix_uri).mapping():
            async for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(
                        uri=f"s3://{bucket}/{item['Key']}",
                        size_bytes=int(item["Size"]),
                        modified_at=item["LastModified"].timestamp(),
                    )

    async def delete(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        client = await self._client()
        existed = await self.exists(uri)
        with self._errors(uri).mapping():
            await client.delete_object(Bucket=bucket, Key=key)
        return existed
