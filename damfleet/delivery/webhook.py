"""Webhook target: a signed JSON notification that an asset is finished.

Signing (the scheme Stripe and GitHub receivers will recognise)::

    X-Damfleet-Timestamp: 1767225600
    X-Damfleet-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>

The timestamp is inside the signed text, so a captured request cannot be replayed later
than the receiver's tolerance; the signature header may carry several ``v1=`` values
(comma-separated) while a secret is rotated. Receivers verify with
:func:`verify_signature` (or :func:`verify_request` given the headers), over the raw
body bytes, before parsing the JSON.

The body is the same on every attempt (no send time in it; that is the timestamp
header), and ``Idempotency-Key`` identifies the notification, so a receiver can drop
duplicates that retries produce.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Self

from google.protobuf import json_format
from pydantic import Field, SecretStr, model_validator

from damfleet.delivery.base import DeliveryContext, DeliveryResult, TargetConfig, TargetType, check_url
from damfleet.delivery.http import auth_headers, open_http_client, send_with_redirects
from damfleet.errors import ConfigurationError
from damfleet.v1 import common_pb2, stages_pb2

__all__ = [
    "SIGNATURE_HEADER",
    "TARGET_TYPE",
    "TIMESTAMP_HEADER",
    "WebhookTargetConfig",
    "WebhookVerificationError",
    "build_notification",
    "send_webhook",
    "sign",
    "signature_headers",
    "verify_request",
    "verify_signature",
]



class WebhookTargetConfig(TargetConfig):
    """A URL receiving a signed JSON notification when an asset is finished."""

    url: str
    secret: SecretStr = SecretStr("")  # "" -> DAMFLEET_DISTRIBUTION_WEBHOOK_SECRET
    bearer_token: SecretStr = SecretStr("")
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    verify_tls: bool = True
    ca_bundle: str = ""
    timeout_seconds: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        check_url(self.url)
        return self


SIGNATURE_HEADER = "X-Damfleet-Signature"
TIMESTAMP_HEADER = "X-Damfleet-Timestamp"
EVENT_HEADER = "X-Damfleet-Event"
EVENT_ASSET_FINISHED = "asset.finished"


class WebhookVerificationError(ValueError):
    """A received webhook's signature or timestamp does not check out; reject the request."""


def sign(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_headers(secret: str | bytes, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The timestamp and signature headers for one sending of ``body``."""
    timestamp = int(time.time() if now is None else now)
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: f"v1={sign(secret, timestamp, body)}"}


def verify_signature(
    secret: str | bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    tolerance_seconds: float = 300.0,
    now: float | None = None,
) -> None:
    """Check a received notification; raises WebhookVerificationError, returns None when valid.

    ``body`` must be the raw request bytes (re-serialised JSON will not match).
    """
    try:
        sent_at = int(timestamp)
    except (TypeError, ValueError):
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER} is not a unix timestamp: {timestamp!r}") from None
    current = time.time() if now is None else now
    if abs(current - sent_at) > tolerance_seconds:
        raise WebhookVerificationError(
            f"timestamp {sent_at} is {abs(current - sent_at):.0f}s away from now (tolerance {tolerance_seconds:.0f}s)"
        )
    expected = sign(secret, sent_at, body)
    candidates = [part.strip()[3:] for part in (signature or "").split(",") if part.strip().startswith("v1=")]
    if not candidates:
        raise WebhookVerificationError(f"{SIGNATURE_HEADER} has no v1= signature")
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise WebhookVerificationError("signature does not match the body and timestamp")


def verify_request(
    secret: str | bytes,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_seconds: float = 300.0,
    now: float | None = None,
) -> None:
    """:func:`verify_signature` reading the two headers from a (case-insensitive) mapping."""
    lowered = {k.lower(): v for k, v in headers.items()}
    verify_signature(
        secret, body, lowered.get(TIMESTAMP_HEADER.lower(), ""), lowered.get(SIGNATURE_HEADER.lower(), ""),
        tolerance_seconds=tolerance_seconds, now=now,
    )


def _message(msg: Any) -> dict[str, Any]:
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def build_notification(notify: stages_pb2.NotifyInput) -> bytes:
    """The JSON body: ids, final state, the asset, every output with checksum, every receipt.

    Deterministic for a given input (sorted keys, no send time), so every retry sends the
    same bytes under the same idempotency key.
    """
    payload = {
        "event": EVENT_ASSET_FINISHED,
        "idempotency_key": notify.idempotency_key,
        "asset_id": notify.asset_id,
        "workflow_id": notify.workflow_id,
        "state": common_pb2.JobState.Name(notify.state),
        "asset": _message(notify.asset),
        "outputs": [
            {"role": o.role, "uri": o.uri, "size_bytes": o.size_bytes, "sha256": o.sha256,
             "mime_type": o.mime_type, "stage": o.stage}
            for o in notify.outputs
        ],
        "receipts": [
            {"target": r.target, "target_type": r.target_type, "role": r.role, "location": r.location,
             "size_bytes": r.size_bytes, "sha256": r.sha256, "ok": r.ok, "error": r.error,
             "attempts": r.attempts}
            for r in notify.receipts
        ],
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


async def send_webhook(config: WebhookTargetConfig, body: bytes, idempotency_key: str, ctx: DeliveryContext
                       ) -> DeliveryResult:
    """POST a signed notification; each attempt is signed with a fresh timestamp."""
    signing_secret = (config.secret or ctx.settings.webhook_secret).get_secret_value()
    if not signing_secret:
        raise ConfigurationError(
            f"target {config.name!r}: webhook has no signing secret; set its \"secret\" (or secret_env) "
            "or DAMFLEET_DISTRIBUTION_WEBHOOK_SECRET"
        )
    headers = {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Idempotency-Key": idempotency_key,
        EVENT_HEADER: EVENT_ASSET_FINISHED,
        "User-Agent": "damfleet-distribution/1",
        **signature_headers(signing_secret, body),
    }
    private = auth_headers(config.headers, config.bearer_token)

    async def one_body() -> AsyncIterator[bytes]:
        yield body

    exchange = await send_with_redirects(
        ctx.client, target=config.name, method="POST", url=config.url, headers=headers, private_headers=private,
        body=one_body, max_redirects=ctx.settings.max_redirects,
        max_retry_after_seconds=ctx.settings.max_retry_after_seconds,
    )
    return DeliveryResult(location=exchange.location, size_bytes=len(body), sha256=hashlib.sha256(body).hexdigest())


TARGET_TYPE = TargetType("webhook", WebhookTargetConfig, notify=send_webhook, open_client=open_http_client)
