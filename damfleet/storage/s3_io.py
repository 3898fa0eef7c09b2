"""What storage and S3 delivery share: one botocore error map and one multipart writer.

Error map: :func:`s3_fault` sorts any exception botocore, aiobotocore or aiohttp raise
into one :class:`S3Fault` (the one table of codes and exception classes); an
:class:`S3ErrorMap` then says what that fault means to its caller, as a damfleet error
class and words. Storage reads "no such object" as a missing source and an outage as
:class:`~damfleet.errors.StorageUnavailableError`; a delivery target reads the same faults as
:class:`~damfleet.errors.TargetRejectedError` / :class:`~damfleet.errors.TargetUnavailableError`
naming the target. Used as a context manager, the way httpx's ``map_exceptions`` is::

    with errors.mapping("HEAD s3://bucket/key"):
        await client.head_object(...)

Writer: :func:`upload_stream` sends a stream in one PUT up to a threshold, and as a
multipart upload above it, holding about one part in memory; every request carries
Content-MD5 (optionally x-amz-checksum-sha256 too, with the store's echo compared); the
upload is completed only after the caller's check of the whole stream, and aborted on
any failure or cancellation, so a half-written object never becomes visible and no
upload is left open. The key is the caller's, so a retry overwrites the same object.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import enum
import hashlib
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from damfleet.errors import (
    BadInputError,
    ConfigurationError,
    DamfleetError,
    SourceNotFoundError,
    StorageUnavailableError,
    TargetRejectedError,
    TargetUnavailableError,
)

__all__ = [
    "MIN_PART_BYTES",
    "STORAGE_WORDS",
    "TARGET_WORDS",
    "S3ErrorMap",
    "S3Failure",
    "S3Fault",
    "Upload",
    "abort_uploads",
    "read_object",
    "s3_fault",
    "s3_status",
    "upload_stream",
]

#: S3's own minimum size of every part but the last.
MIN_PART_BYTES = 5 * 1024 * 1024


class S3Fault(enum.Enum):
    """What went wrong, in the store's terms, before anyone decides what it means."""

    NOT_FOUND = "not found"
    NO_BUCKET = "no bucket"
    BAD_BUCKET_NAME = "bad bucket name"
    BAD_CREDENTIALS = "credentials rejected"
    NO_CREDENTIALS = "no credentials"
    ACCESS_DENIED = "access denied"
    BAD_REQUEST = "invalid request"
    UNAVAILABLE = "unavailable"       # the store answered: overloaded, throttling, 5xx
    UNREACHABLE = "unreachable"       # no answer: refused, reset, DNS, timeout, body cut short
    REFUSED = "refused"
    CORRUPTED = "corrupted in transit"
    OTHER = "not an S3 error"


_NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
_CREDENTIAL_CODES = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "TokenRefreshRequired",
    "AuthorizationHeaderMalformed", "InvalidSecurity",
})
_TRANSIENT_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
    "InternalError", "ServiceUnavailable", "RequestLimitExceeded", "OperationAborted",
})


@dataclass(frozen=True)
class S3Failure:
    """One classified exception: its fault and what the store said."""

    fault: S3Fault
    code: str = ""
    status: int = 0
    detail: str = ""


def s3_status(exc: BaseException) -> int:
    """The HTTP status of a botocore ClientError (0 for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return 0
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)


def s3_fault(exc: BaseException) -> S3Failure:
    """The one table: botocore/aiohttp exception → :class:`S3Fault`.

    Order matters: a 5xx or throttling answer is an outage whatever its code; "access
    denied" is the store's verdict on these credentials and this bucket, not an outage.
    Transport failures (refused, reset mid-stream, DNS, timeouts, a body read cut short)
    are outages too: the input is fine.
    """
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        HTTPClientError,
        NoCredentialsError,
        ParamValidationError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code, status = str(error.get("Code", "")), s3_status(exc)
        detail = str(error.get("Message", "") or "")
        if code in _NOT_FOUND_CODES:
            fault = S3Fault.NOT_FOUND
        elif code == "NoSuchBucket":
            fault = S3Fault.NO_BUCKET
        elif code == "InvalidBucketName":
            fault = S3Fault.BAD_BUCKET_NAME
        elif code in _CREDENTIAL_CODES:
            fault = S3Fault.BAD_CREDENTIALS
        elif status >= 500 or status in (408, 425, 429) or code in _TRANSIENT_CODES:
            fault = S3Fault.UNAVAILABLE
        elif status in (401, 403) or code in ("AccessDenied", "403"):
            fault = S3Fault.ACCESS_DENIED
        else:
            fault = S3Fault.REFUSED
        return S3Failure(fault, code, status, detail)
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, NoCredentialsError):
        return S3Failure(S3Fault.NO_CREDENTIALS, detail=detail)
    if isinstance(exc, ParamValidationError):
        return S3Failure(S3Fault.BAD_REQUEST, detail=detail)
    if isinstance(exc, (EndpointConnectionError, HTTPClientError, OSError, asyncio.TimeoutError)) or (
        type(exc).__module__.startswith("aiohttp")
    ):
        return S3Failure(S3Fault.UNREACHABLE, detail=detail)
    return S3Failure(S3Fault.OTHER, detail=detail)


#: What a fault means to a caller: the damfleet error class and a message template. The
#: template's fields: the map's own (``where``, ``name``, ``bucket``...), ``action``,
#: ``code``, ``answer`` (the store's "status code", or the transport failure) and ``detail``
#: (the store's message, or the exception). A fault missing from the table leaves the
#: exception as it is (an unexpected error, retried a few times).
Words = Mapping[S3Fault, tuple[type[DamfleetError], str]]

#: Storage: the pipeline's own bucket (``where`` is the object's URI).
STORAGE_WORDS: Words = {
    S3Fault.NOT_FOUND: (SourceNotFoundError, "no such object: {where}"),
    S3Fault.NO_BUCKET: (ConfigurationError, "bucket does not exist for {where}"),
    S3Fault.BAD_BUCKET_NAME: (ConfigurationError, "not a valid bucket name in {where}"),
    S3Fault.BAD_CREDENTIALS: (ConfigurationError, "access denied to {where} ({code}): check the S3 credentials"),
    S3Fault.ACCESS_DENIED: (ConfigurationError, "access denied to {where} ({code}): check the S3 credentials"),
    S3Fault.NO_CREDENTIALS: (
        ConfigurationError, "no S3 credentials configured (DAMFLEET_STORAGE_S3_ACCESS_KEY_ID)"
    ),
    S3Fault.BAD_REQUEST: (BadInputError, "invalid S3 request for {where}: {detail}"),
    S3Fault.UNAVAILABLE: (StorageUnavailableError, "S3 error {answer} on {where}"),
    S3Fault.UNREACHABLE: (StorageUnavailableError, "S3 endpoint unreachable for {where}: {detail}"),
    S3Fault.REFUSED: (BadInputError, "S3 refused {where}: {answer} {detail}"),
    S3Fault.CORRUPTED: (StorageUnavailableError, "{where}: {detail}"),
}

#: Delivery: a partner's bucket (``name`` is the target, ``bucket`` its bucket).
TARGET_WORDS: Words = {
    S3Fault.NOT_FOUND: (TargetRejectedError, "target {name!r} answered {answer} to {action}"),
    S3Fault.NO_BUCKET: (ConfigurationError, "target {name!r}: bucket {bucket!r} does not exist"),
    S3Fault.BAD_BUCKET_NAME: (ConfigurationError, "target {name!r}: {bucket!r} is not a valid bucket name"),
    S3Fault.BAD_CREDENTIALS: (
        ConfigurationError, "target {name!r}: the store rejected the credentials ({code}) on {action}"
    ),
    S3Fault.ACCESS_DENIED: (
        TargetRejectedError,
        "target {name!r} answered {answer} to {action}: the credentials may not write to bucket {bucket!r}",
    ),
    S3Fault.NO_CREDENTIALS: (
        ConfigurationError, "target {name!r}: no S3 credentials (set access_key_id/secret_access_key)"
    ),
    S3Fault.BAD_REQUEST: (ConfigurationError, "target {name!r}: invalid S3 request on {action}: {detail}"),
    S3Fault.UNAVAILABLE: (TargetUnavailableError, "target {name!r}: {action} failed: {answer}"),
    S3Fault.UNREACHABLE: (TargetUnavailableError, "target {name!r}: {action} failed: {detail}"),
    S3Fault.REFUSED: (TargetRejectedError, "target {name!r} answered {answer} to {action}: {detail}"),
    S3Fault.CORRUPTED: (TargetUnavailableError, "target {name!r}: {detail}"),
    S3Fault.OTHER: (TargetUnavailableError, "target {name!r}: {action} failed: {detail}"),
}


@dataclass(frozen=True)
class S3ErrorMap:
    """One caller's reading of :class:`S3Fault`: its words and the fields they name."""

    words: Words
    fields: Mapping[str, str] = field(default_factory=dict)

    def error(self, failure: S3Failure, action: str = "") -> DamfleetError | None:
        """The damfleet error for ``failure``; None when this caller leaves it unmapped."""
        entry = self.words.get(failure.fault)
        if entry is None:
            return None
        cls, template = entry
        answer = f"{failure.status or ''} {failure.code}".strip() if failure.code else failure.detail
        return cls(template.format(**self.fields, action=action or self.fields.get("where", ""),
                                   code=failure.code, answer=answer, detail=failure.detail))

    def translate(self, exc: BaseException, action: str = "") -> BaseException:
        """``exc`` as a damfleet error (damfleet's own and unmapped ones pass through unchanged)."""
        if isinstance(exc, DamfleetError) or not isinstance(exc, Exception):
            return exc
        mapped = self.error(s3_fault(exc), action)
        return exc if mapped is None else mapped

    def corrupted(self, detail: str) -> DamfleetError:
        """The error for bytes the store says it received differently from how they were sent."""
        error = self.error(S3Failure(S3Fault.CORRUPTED, detail=detail))
        assert error is not None, "every words table names CORRUPTED"
        return error

    @contextlib.contextmanager
    def mapping(self, action: str = "") -> Iterator[None]:
        """Re-raise anything botocore/aiohttp raise inside as this caller's damfleet error."""
        try:
            yield
        except Exception as exc:
            mapped = self.translate(exc, action)
            if mapped is exc:
                raise
            raise mapped from exc


@dataclass
class Upload:
    """What :func:`upload_stream` sent."""

    size_bytes: int = 0
    multipart: bool = False
    #: Per request: whether the store echoed (and so checked) the part's sha256.
    sha256_echoes: list[bool] = field(default_factory=list)

    @property
    def sha256_verified(self) -> bool:
        """True when the store echoed the sha256 of every request (Ceph RGW 16 echoes none)."""
        return bool(self.sha256_echoes) and all(self.sha256_echoes)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


async def upload_stream(
    client: Any,
    bucket: str,
    key: str,
    chunks: AsyncIterable[bytes],
    *,
    errors: S3ErrorMap,
    headers: dict[str, Any],
    part_size: int,
    threshold: int = 0,
    sha256_parts: bool = False,
    replace_open_uploads: bool = False,
    before_commit: Callable[[dict[str, Any]], None] | None = None,
) -> Upload:
    """Stream ``chunks`` to ``bucket/key``: one PUT up to ``threshold``, multipart above it.

    ``headers`` go on the PUT or CreateMultipartUpload (ContentType, Metadata...).
    ``before_commit(headers)`` runs once the stream has ended and before anything becomes
    visible: it raises to discard the upload (a checksum mismatch) and may still change
    the headers of a single PUT. ``replace_open_uploads`` first aborts uploads an earlier,
    killed attempt at the same key left open (for buckets whose credentials may list
    them). Memory: about one part (``part_size`` plus one chunk).
    """
    part_size = max(part_size, MIN_PART_BYTES)
    threshold = max(threshold, part_size)
    upload = Upload()
    upload_id: str | None = None
    parts: list[dict[str, Any]] = []
    action = f"upload to s3://{bucket}/{key}"

    def checksums(data: bytes | bytearray) -> dict[str, str]:
        sums = {"ContentMD5": _b64(hashlib.md5(data, usedforsecurity=False).digest())}
        if sha256_parts:
            sums["ChecksumSHA256"] = _b64(hashlib.sha256(data).digest())
        return sums

    def check_echo(response: dict[str, Any], sums: dict[str, str], what: str) -> None:
        if not sha256_parts:
            return
        echoed = response.get("ChecksumSHA256")
        upload.sha256_echoes.append(bool(echoed))
        if echoed and echoed != sums["ChecksumSHA256"]:
            raise errors.corrupted(f"{what} arrived corrupted (sha256 {echoed} != {sums['ChecksumSHA256']})")

    async def send_part(data: bytes | bytearray) -> None:
        nonlocal upload_id
        if upload_id is None:
            if replace_open_uploads:
                await abort_uploads(client, bucket, key, exact_key=True)
            created = await client.create_multipart_upload(
                Bucket=bucket, Key=key, **headers, **({"ChecksumAlgorithm": "SHA256"} if sha256_parts else {})
            )
            upload_id = created["UploadId"]
            upload.multipart = True
        number = len(parts) + 1
        sums = checksums(data)
        response = await client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **sums
        )
        part: dict[str, Any] = {"PartNumber": number, "ETag": response["ETag"]}
        check_echo(response, sums, f"part {number} of {key}")
        if sha256_parts:
            part["ChecksumSHA256"] = sums["ChecksumSHA256"]
        parts.append(part)

    try:
        with errors.mapping(action):
            # One growing buffer: parts of exactly ``part_size`` (sent without a copy when
            # chunks divide it, as storage's do), so about one part is in memory. Multipart
            # starts only once the stream is known to exceed the threshold.
            data = bytearray()
            async for chunk in chunks:
                data += chunk
                upload.size_bytes += len(chunk)
                while len(data) >= part_size and (upload_id is not None or upload.size_bytes > threshold):
                    if len(data) == part_size:
                        await send_part(data)
                        data = bytearray()
                    else:
                        await send_part(data[:part_size])
                        del data[:part_size]
            if before_commit is not None:
                before_commit(headers)
            if upload_id is None:
                sums = checksums(data)
                response = await client.put_object(Bucket=bucket, Key=key, Body=data, **sums, **headers)
                check_echo(response, sums, key)
            else:
                if data:
                    await send_part(data)
                await client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                )
                upload_id = None
    except BaseException:
        if upload_id is not None:
            # Shielded: a cancelled activity still removes its parts from the store.
            with contextlib.suppress(Exception):
                await asyncio.shield(client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id))
        raise
    return upload


async def read_object(
    client: Any, bucket: str, key: str, *, errors: S3ErrorMap, chunk_bytes: int = 1024 * 1024
) -> AsyncIterator[bytes]:
    """Stream ``bucket/key`` in chunks of at most ``chunk_bytes``, errors read by ``errors``.

    A body read cut short (the store went away mid-object) is mapped like any request.
    """
    with errors.mapping():
        response = await client.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        while True:
            with errors.mapping():
                chunk = await body.read(chunk_bytes)
            if not chunk:
                return
            yield chunk
    finally:
        body.close()


async def abort_uploads(
    client: Any, bucket: str, prefix: str, *, exact_key: bool = False, older_than: float | None = None
) -> int:
    """Abort open multipart uploads under ``prefix`` (only ``prefix`` itself with ``exact_key``),
    optionally only those started over ``older_than`` seconds ago; how many were aborted."""
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
