"""Distribution: delivering stored renditions to the outside world, and telling it so.

Target types (declared in settings, named by profiles and requests; see
:mod:`damfleet.delivery.config`), one module each, listed in :mod:`damfleet.delivery.targets`::

    local    atomic copy into a folder            (built-in "local": <state_dir>/delivered)
    s3       S3-compatible bucket, multipart with per-part checksums, tags, cache headers
    http     PUT or multipart POST, streamed, bearer/basic auth from settings
    webhook  signed JSON notification (HMAC-SHA256 over "<timestamp>.<body>")
    sftp     SSH file transfer, host key pinned; resumable, atomic rename into a watch folder
    ftp      FTP, passive; ftps: explicit TLS, verified. Resumable (REST/APPE), atomic rename

Plain async code with no Temporal in it: :class:`Distributor` is what the distribution
activities call. Errors follow :mod:`damfleet.errors`: network trouble, 5xx, 408, 425
and 429 raise ``TargetUnavailableError`` (retried, honouring Retry-After); other refusals
raise ``TargetRejectedError`` or ``ConfigurationError`` naming the target (not retried).
Every target that connects out (HTTP, webhook, SFTP, FTP) goes through
:mod:`damfleet.delivery.netguard`, which refuses private, loopback, link-local and metadata
addresses on every connection.
"""

from __future__ import annotations

from damfleet.delivery.base import DeliveryItem, DeliveryResult, TargetConfig, TargetType, parse_retry_after, redact_url
from damfleet.delivery.config import BUILTIN_LOCAL_TARGET, TargetRegistry, parse_target
from damfleet.delivery.http import HttpTargetConfig
from damfleet.delivery.local import LocalTargetConfig
from damfleet.delivery.netguard import OutboundBlockedError, OutboundPolicy
from damfleet.delivery.redeliver import plan_redelivery
from damfleet.delivery.s3 import S3TargetConfig
from damfleet.delivery.service import Distributor, delivery_item, receipt
from damfleet.delivery.targets import TARGET_TYPES
from damfleet.delivery.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookTargetConfig,
    WebhookVerificationError,
    build_notification,
    sign,
    verify_request,
    verify_signature,
)

__all__ = [
    "BUILTIN_LOCAL_TARGET",
    "SIGNATURE_HEADER",
    "TARGET_TYPES",
    "TIMESTAMP_HEADER",
    "DeliveryItem",
    "DeliveryResult",
    "Distributor",
    "HttpTargetConfig",
    "LocalTargetConfig",
    "OutboundBlockedError",
    "OutboundPolicy",
    "S3TargetConfig",
    "TargetConfig",
    "TargetRegistry",
    "TargetType",
    "WebhookTargetConfig",
    "WebhookVerificationError",
    "build_notification",
    "delivery_item",
    "parse_retry_after",
    "parse_target",
    "plan_redelivery",
    "receipt",
    "redact_url",
    "sign",
    "verify_request",
    "verify_signature",
]
