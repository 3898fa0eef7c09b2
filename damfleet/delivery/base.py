"""What every target type shares: the delivery records, the verified byte stream, and the
one rule that decides whether a target's answer is worth retrying.

Retry rule (the same for HTTP, webhooks and S3)::

    network error, timeout, 5xx, 408, 425, 429  -> TargetUnavailableError (retried; Retry-After honoured)
    any other 4xx, 3xx without a usable Location -> TargetRejectedError (not retried; names target + status)
"""

from __future__ import annotations

import email.utils
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from damfleet.errors import ChecksumMismatchError, TargetRejectedError, TargetUnavailableError

__all__ = [
    "RETRYABLE_STATUSES",
    "DeliveryItem",
    "DeliveryResult",
    "ProgressFn",
    "VerifiedStream",
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
    ) -> None:
        self._chunks = chunks
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
            self.size += len(chunk)
            if self._progress is not None:
                self._progress(self.size, self.expected_size)
            if self.expected_size and self.size > self.expected_size:
                raise ChecksumMismatchError(
                    f"{self.what}: stored rendition is larger than the recorded {self.expected_size} bytes"
                )
            if self.expected_size and self.size == self.expected_size:
                self.verify()
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
