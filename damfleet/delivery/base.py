"""What every target type shares: its config model's base, the :class:`TargetType` record a
type module exports, the delivery records, the verified byte stream, and the one rule that
decides whether a target's answer is worth retrying.

A target type is one module exporting ``TARGET_TYPE = TargetType(name, config model,
deliver, ...)``; :mod:`damfleet.delivery.targets` lists the modules, and nothing else
names a type.

Retry rule (the same for HTTP, webhooks and S3)::

    network error, timeout, 5xx, 408, 425, 429  -> TargetUnavailableError (retried; Retry-After honoured)
    any other 4xx, 3xx without a usable Location -> TargetRejectedError (not retried; names target + status)
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import string
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, model_validator

from damfleet.delivery.netguard import OutboundPolicy
from damfleet.errors import ChecksumMismatchError, TargetRejectedError, TargetUnavailableError
from damfleet.settings import DistributionSettings
from damfleet.storage import Storage

__all__ = [
    "RETRYABLE_STATUSES",
    "DeliveryContext",
    "DeliveryItem",
    "DeliveryResult",
    "ProgressFn",
    "TargetConfig",
    "TargetType",
    "VerifiedStream",
    "check_url",
    "parse_retry_after",
    "raise_for_status",
    "redact_url",
]

#: Called with (bytes sent so far, total bytes); feeds heartbeats.
ProgressFn = Callable[[int, int], None]

#: 4xx answers that mean "later", not "never".
RETRYABLE_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True)
class DeliveryItem:
    """One stored rendition to deliver, with what is needed to verify it arrived intact."""

    asset_id: str
    role: str
    source_uri: str
    filename: str
    size_bytes: int
    sha256: str
    mime_type: str
    idempotency_key: str
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    """Where a delivery landed and what was sent."""

    location: str
    size_bytes: int
    sha256: str
    already_present: bool = False   # an earlier attempt had delivered it; nothing was sent again
    resumed_from: int = 0           # bytes an earlier, interrupted attempt had left on the target
    #: Which checksum the target itself verified on arrival: "md5", "sha256" or "none";
    #: "" when this target type does not say (damfleet's own end-to-end sha256 check still ran).
    verified_checksum: str = ""


class TargetConfig(BaseModel):
    """What every target definition has: its name, type and an optional concurrency override.

    Strict and closed: a typo (``"buckett"``) or a string where a number belongs fails the
    definition with a message naming the target, instead of being ignored or coerced.

    Credentials are ``SecretStr`` fields (``password: SecretStr = SecretStr("")``): repr,
    logs, errors and ``model_dump`` show ``**********``; each may be given as ``<field>_env``
    (an environment variable's name, how Kubernetes Secrets are mounted) so the JSON never
    holds it, and only the call into the client library reads ``.get_secret_value()``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: str
    type: str
    concurrency: int = Field(default=0, ge=0)   # 0: DAMFLEET_DISTRIBUTION_PER_TARGET_CONCURRENCY

    @classmethod
    def secret_fields(cls) -> frozenset[str]:
        """The credential fields (typed ``SecretStr``): masked everywhere, settable as ``<field>_env``."""
        return frozenset(name for name, info in cls.model_fields.items() if info.annotation is SecretStr)

    @model_validator(mode="before")
    @classmethod
    def _secrets_from_env(cls, data: Any, info: ValidationInfo) -> Any:
        """``<secret>_env: "VAR"`` becomes ``<secret>: $VAR``; the environment comes in the
        validation context (``{"env": mapping}``), else ``os.environ``."""
        if not isinstance(data, dict):
            return data
        env = (info.context or {}).get("env")
        env = os.environ if env is None else env
        secrets = cls.secret_fields()
        values: dict[str, Any] = {}
        for key, value in data.items():
            base = key.removesuffix("_env") if key.endswith("_env") else ""
            if base not in secrets:
                values[key] = value
                continue
            variable = value if isinstance(value, str) else ""
            if not variable or variable not in env:
                raise ValueError(f"{key} names environment variable {variable!r}, which is not set")
            values[base] = env[variable]
        return values

    def describe(self) -> str:
        """A loggable one-liner (no secrets)."""
        return f"{self.type} target {self.name!r}"


class AsyncCloseable(Protocol):
    async def aclose(self) -> None: ...


@dataclass
class DeliveryContext:
    """What one delivery may use besides its target's definition and the item.

    ``client`` is the target's shared client (connection pool), made once per target name
    and worker by the type's ``open_client``; ``resume_hint`` is the offset the previous
    attempt's last heartbeat reported, for targets that cannot ask the server how much
    of an interrupted upload it holds.
    """

    storage: Storage
    settings: DistributionSettings
    policy: OutboundPolicy
    limit: int                                   # concurrent deliveries allowed to this target
    client: Any = None
    progress: ProgressFn | None = None
    resume_hint: int = 0

    def stream(self, item: DeliveryItem, *, offset: int = 0, report: bool = True,
               extra_digest: Any = None) -> VerifiedStream:
        """The stored rendition from ``offset`` on, verified against the recorded size and sha256
        (bytes before ``offset`` are read and hashed but not yielded). ``report=False``: the
        caller reports progress itself (when the target has confirmed bytes, not when read)."""
        return VerifiedStream(
            self.storage.read(item.source_uri, chunk_bytes=self.settings.stream_chunk_bytes),
            expected_size=item.size_bytes, expected_sha256=item.sha256, what=f"{item.role} of {item.asset_id}",
            progress=self.progress if report else None, hash_bytes=self.settings.verify_source, skip=offset,
            extra_digest=extra_digest,
        )


DeliverFn = Callable[[Any, DeliveryItem, DeliveryContext], Awaitable[DeliveryResult]]
NotifyFn = Callable[[Any, bytes, str, DeliveryContext], Awaitable[DeliveryResult]]
OpenClientFn = Callable[[Any, DeliveryContext], AsyncCloseable]


@dataclass(frozen=True)
class TargetType:
    """One kind of destination, as its module exports it.

    ``deliver`` sends a stored rendition; ``notify`` sends a notification body (webhooks);
    a type has one or both. ``open_client`` makes the per-target shared client the
    Distributor caches and closes.
    """

    name: str
    config: type[TargetConfig]
    deliver: DeliverFn | None = None
    notify: NotifyFn | None = None
    open_client: OpenClientFn | None = None


def check_url(url: str, *, placeholders: frozenset[str] = frozenset(), schemes: tuple[str, ...] = ("http", "https")
              ) -> str:
    """Refuse a URL that is not absolute with one of ``schemes``, or that embeds credentials;
    ``placeholders`` are the ``{fields}`` a template may use. Returns the URL; raises
    ValueError (a config model turns it into a message naming the target)."""
    probe = url
    if placeholders:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(url) if f is not None}
        except ValueError as exc:
            raise ValueError(f"malformed URL template {url!r}: {exc}") from None
        unknown = fields - placeholders
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)} in URL; allowed: {sorted(placeholders)}")
        probe = url.format(**{f: "x" for f in placeholders})
    try:
        parts = urlsplit(probe)
        _ = parts.port          # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"malformed URL {url!r}: {exc}") from None
    if parts.scheme not in schemes or not parts.hostname:
        wanted = " or ".join(f"{scheme}://" for scheme in schemes)
        raise ValueError(f"URL must be an absolute {wanted} URL, got {url!r}")
    if parts.username or parts.password:
        raise ValueError("credentials in the URL are not allowed; use the target's credential settings")
    return url


def redact_url(url: str) -> str:
    """A URL safe to log and to put in receipts: no user info, no query (tokens live there)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<malformed URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def parse_retry_after(value: str | None, *, cap_seconds: float, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), capped."""
    if not value:
        return None
    text = value.strip()
    seconds: float | None
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.fromtimestamp(time.time() if now is None else now, tz=UTC)
        seconds = (when - current).total_seconds()
    return max(0.0, min(seconds, cap_seconds))


def raise_for_status(
    target: str,
    status: int,
    *,
    action: str,
    retry_after: str | None = None,
    detail: str = "",
    cap_seconds: float = 6 * 3600.0,
) -> None:
    """Map a non-2xx answer to damfleet's retryable or permanent error, naming the target."""
    if 200 <= status < 300:
        return
    suffix = f": {detail}" if detail else ""
    if status >= 500 or status in RETRYABLE_STATUSES:
        delay = parse_retry_after(retry_after, cap_seconds=cap_seconds)
        wait = f" (Retry-After {delay:.0f}s)" if delay is not None else ""
        raise TargetUnavailableError(
            f"target {target!r} answered {status} to {action}{wait}{suffix}", retry_after_seconds=delay
        )
    if status in (401, 403):
        raise TargetRejectedError(
            f"target {target!r} answered {status} to {action}: credentials missing, wrong or not allowed{suffix}"
        )
    raise TargetRejectedError(f"target {target!r} answered {status} to {action}{suffix}")


class VerifiedStream:
    """Streams a stored rendition, counting and hashing as it goes, reporting progress.

    After the last chunk, the size and sha256 are compared with what the pipeline
    recorded; a mismatch raises ChecksumMismatchError *before* the stream ends, so an
    atomic writer (local folder, S3 multipart) discards what it received instead of
    publishing a corrupt copy.
    """

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        *,
        expected_size: int,
        expected_sha256: str,
        what: str,
        progress: ProgressFn | None = None,
        hash_bytes: bool = True,
        skip: int = 0,
        extra_digest: Any = None,
    ) -> None:
        #: A second hashlib object fed every byte (an MD5 for a checksum sidecar), or None.
        self.extra_digest = extra_digest
        self._chunks = chunks
        #: Bytes read, hashed and counted but not yielded: the part of an interrupted upload
        #: the target already holds (a resumed SFTP/FTP upload).
        self.skip = skip
        #: False (``DAMFLEET_DISTRIBUTION_VERIFY_SOURCE=false``): only the size is checked, and the
        #: receipt carries the checksum recorded by the pipeline, not one computed here.
        self.hash_bytes = hash_bytes
        self.expected_size = expected_size
        self.expected_sha256 = expected_sha256.lower()
        self.what = what
        self._progress = progress
        self._digest = hashlib.sha256()
        self.size = 0

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest() if self.hash_bytes else self.expected_sha256

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            if self.hash_bytes:
                self._digest.update(chunk)
            if self.extra_digest is not None:
                self.extra_digest.update(chunk)
            self.size += len(chunk)
            if self._progress is not None:
                self._progress(self.size, self.expected_size)
            if self.expected_size and self.size > self.expected_size:
                raise ChecksumMismatchError(
                    f"{self.what}: stored rendition is larger than the recorded {self.expected_size} bytes"
                )
            if self.expected_size and self.size == self.expected_size:
                self.verify()
            if self.size <= self.skip:
                continue
            if self.size - len(chunk) < self.skip:
                chunk = chunk[len(chunk) - (self.size - self.skip):]
            yield chunk
        self.verify()

    def verify(self) -> None:
        """Raise ChecksumMismatchError when what was read differs from the recorded rendition."""
        if self.expected_size and self.size != self.expected_size:
            raise ChecksumMismatchError(
                f"{self.what}: read {self.size} bytes, the pipeline recorded {self.expected_size}"
            )
        if self.expected_sha256 and self.sha256 != self.expected_sha256:
            raise ChecksumMismatchError(
                f"{self.what}: sha256 {self.sha256} differs from the recorded {self.expected_sha256}"
            )
