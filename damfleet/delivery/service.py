"""The Distributor: one per worker process, routing each delivery to its target type.

It owns what deliveries share: the target registry, one client per target made by the
type's ``open_client`` (connection pools are per partner, so one partner's slow sockets
do not hold another's), and a concurrency limit per target name. It names no target
type: each is looked up in :data:`damfleet.delivery.targets.TARGET_TYPES`. A delivery waits for a slot of its
own target only; if none frees up within ``per_target_wait_seconds`` it gives the task
back to Temporal (a retryable "busy" error with a short delay) rather than occupying one
of the worker's activity slots that other targets' deliveries could use.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import PurePosixPath

from damfleet import tracing
from damfleet.delivery.base import (
    AsyncCloseable,
    DeliveryContext,
    DeliveryItem,
    DeliveryResult,
    ProgressFn,
    TargetConfig,
    TargetType,
)
from damfleet.delivery.config import TargetRegistry
from damfleet.delivery.netguard import OutboundPolicy
from damfleet.delivery.targets import TARGET_TYPES
from damfleet.errors import BadInputError, ConfigurationError, DamfleetError, TargetUnavailableError
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.storage.keys import safe_name
from damfleet.v1 import common_pb2, stages_pb2

__all__ = ["BatchOutcome", "Distributor", "delivery_item", "receipt"]

log = logging.getLogger(__name__)


def delivery_item(
    *,
    asset_id: str,
    role: str,
    source_uri: str,
    size_bytes: int,
    sha256: str,
    mime_type: str,
    idempotency_key: str,
    metadata: dict[str, str] | None = None,
) -> DeliveryItem:
    """A DeliveryItem with its file name taken (safely) from the stored rendition's key."""
    if not asset_id:
        raise BadInputError("delivery has no asset id")
    if not source_uri:
        raise BadInputError(f"delivery of {role or 'an output'} for {asset_id} has no source URI")
    name = safe_name(PurePosixPath(source_uri.split("?", 1)[0]).name, default=safe_name(role or "output"))
    return DeliveryItem(
        asset_id=safe_name(asset_id),
        role=role,
        source_uri=source_uri,
        filename=name,
        size_bytes=size_bytes,
        sha256=sha256.lower(),
        mime_type=mime_type,
        idempotency_key=idempotency_key or f"{asset_id}:{role}:{name}",
        metadata=dict(metadata or {}),
    )


def receipt(
    *,
    target: str,
    role: str,
    idempotency_key: str,
    target_type: str = "",
    source_uri: str = "",
    result: DeliveryResult | None = None,
    attempts: int = 1,
    seconds: float = 0.0,
    error: str = "",
) -> stages_pb2.DeliveryReceipt:
    """The one receipt builder: what landed where (``result``), or why not (``error``)."""
    message = stages_pb2.DeliveryReceipt(
        target=target, target_type=target_type, role=role, idempotency_key=idempotency_key,
        source_uri=source_uri, attempts=attempts, seconds=round(seconds, 3), ok=result is not None, error=error,
    )
    if result is not None:
        message.location = result.location
        message.size_bytes = result.size_bytes
        message.sha256 = result.sha256
        message.resumed_from = result.resumed_from
        message.already_present = result.already_present
        message.verified_checksum = result.verified_checksum
    return message


@dataclasses.dataclass
class BatchOutcome:
    """What one pass over a batch achieved: a receipt per delivery (in input order), ``None``
    where a retryable error (``retry``, keyed by idempotency key) leaves it for the next attempt."""

    receipts: list[stages_pb2.DeliveryReceipt | None]
    retry: dict[str, DamfleetError]


def _metadata(metadata: common_pb2.AssetMetadata) -> dict[str, str]:
    """Descriptive metadata as plain strings, for object metadata and multipart fields."""
    values = {"title": metadata.title, "collection": metadata.collection, "tenant": metadata.tenant}
    values.update({f"x-{k}": v for k, v in metadata.extra.items()})
    return {k: v for k, v in values.items() if v}


class Distributor:
    """Delivers stored renditions and notifications to the targets named in settings."""

    def __init__(self, settings: Settings, storage: Storage, *, registry: TargetRegistry | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self.registry = registry or TargetRegistry.from_settings(settings)
        self.policy = OutboundPolicy.from_entries(settings.distribution.allow_private_networks)
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._clients: dict[str, AsyncCloseable] = {}

    # ---- what the activities call ------------------------------------------------------

    def target(self, name: str) -> TargetConfig:
        """The named target's definition (ConfigurationError names what is wrong)."""
        return self.registry.get(name)

    async def deliver_input(
        self,
        request: stages_pb2.DeliverInput,
        *,
        progress: ProgressFn | None = None,
        resume_hint: int = 0,
        attempt: int = 1,
    ) -> stages_pb2.DeliveryReceipt:
        """Deliver what a DeliverInput names and return its receipt (the activity's whole job)."""
        if not request.target:
            raise BadInputError(
                f"delivery of {request.output.role or 'an output'} for {request.asset_id} names no target"
            )
        item = delivery_item(
            asset_id=request.asset_id, role=request.output.role, source_uri=request.output.uri,
            size_bytes=request.output.size_bytes, sha256=request.output.sha256, mime_type=request.output.mime_type,
            idempotency_key=request.idempotency_key, metadata=_metadata(request.metadata),
        )
        started = time.monotonic()
        config, result = await self.deliver(request.target, item, progress=progress, resume_hint=resume_hint)
        return receipt(
            target=request.target, target_type=config.type, role=item.role, idempotency_key=item.idempotency_key,
            source_uri=request.output.uri, result=result, attempts=attempt, seconds=time.monotonic() - started,
        )

    async def deliver_batch(
        self,
        request: stages_pb2.DeliverBatchInput,
        *,
        delivered: dict[str, stages_pb2.DeliveryReceipt] | None = None,
        resume_hints: dict[str, int] | None = None,
        progress: Callable[[str, int, int], None] | None = None,
        on_delivered: Callable[[stages_pb2.DeliveryReceipt], None] | None = None,
        attempt: int = 1,
    ) -> BatchOutcome:
        """Deliver every output of a batch concurrently (within the target's limit).

        One delivery's failure never stops the others. A permanent error becomes that
        delivery's failed receipt (``ok=False``, its message); a retryable one is returned in
        ``retry`` so the caller can try the batch again, skipping what ``delivered`` (receipts
        of an earlier attempt, by idempotency key) says already landed.
        """
        delivered = delivered or {}
        hints = resume_hints or {}
        retry: dict[str, DamfleetError] = {}

        async def one(job: stages_pb2.DeliverInput) -> stages_pb2.DeliveryReceipt | None:
            key = job.idempotency_key
            if key in delivered and delivered[key].ok:
                return delivered[key]
            try:
                done = await self.deliver_input(
                    job, attempt=attempt, resume_hint=hints.get(key, 0),
                    progress=(lambda sent, total: progress(key, sent, total)) if progress else None,
                )
            except DamfleetError as exc:
                if exc.retryable:
                    retry[key] = exc
                    return None
                log.warning("delivery %s failed permanently: %s", key, exc)
                return receipt(target=job.target, role=job.output.role, idempotency_key=key,
                               source_uri=job.output.uri, attempts=attempt, error=str(exc))
            if on_delivered is not None:
                on_delivered(done)
            return done

        receipts = await asyncio.gather(*(one(job) for job in request.deliveries))
        return BatchOutcome(list(receipts), retry)

    async def deliver(self, target_name: str, item: DeliveryItem, *, progress: ProgressFn | None = None,
                      resume_hint: int = 0) -> tuple[TargetConfig, DeliveryResult]:
        """Deliver one stored rendition to one target; raises damfleet errors on failure."""
        config = self.target(target_name)
        kind = TARGET_TYPES[config.type]
        if kind.deliver is None:
            raise ConfigurationError(
                f"target {target_name!r} is a {config.type} target; it receives notifications, not files"
            )
        if item.size_bytes <= 0 or not item.sha256:
            # Old or hand-built requests may lack them; the stored object is the truth.
            info = await self.storage.stat(item.source_uri)
            item = _with_size(item, info.size_bytes, item.sha256 or info.sha256)
        async with self._slot(config):
            ctx = self._context(config, kind, progress=progress, resume_hint=resume_hint)
            with tracing.span("deliver", target=target_name, target_type=config.type, role=item.role,
                              size_bytes=item.size_bytes):
                result = await kind.deliver(config, item, ctx)
        log.info("delivered %s of %s to %s at %s (%d bytes%s%s)", item.role, item.asset_id, config.describe(),
                 result.location, result.size_bytes, ", already present" if result.already_present else "",
                 f", resumed from byte {result.resumed_from}" if result.resumed_from else "")
        return config, result

    async def notify(self, target_name: str, body: bytes, *, idempotency_key: str) -> tuple[TargetConfig, DeliveryResult]:
        """Send a signed JSON notification to a webhook target."""
        config = self.target(target_name)
        kind = TARGET_TYPES[config.type]
        if kind.notify is None:
            raise ConfigurationError(
                f"target {target_name!r} is a {config.type} target; notifications need a webhook target"
            )
        async with self._slot(config):
            result = await kind.notify(config, body, idempotency_key, self._context(config, kind))
        log.info("notified %s (%d bytes, key %s)", config.describe(), result.size_bytes, idempotency_key)
        return config, result

    async def aclose(self) -> None:
        """Close every target's client (the worker calls this on shutdown)."""
        clients, self._clients = self._clients, {}
        for client in clients.values():
            await client.aclose()

    # ---- shared per-target resources ---------------------------------------------------

    def limit(self, config: TargetConfig) -> int:
        return max(1, config.concurrency or self.settings.distribution.per_target_concurrency)

    def _context(self, config: TargetConfig, kind: TargetType, *, progress: ProgressFn | None = None,
                 resume_hint: int = 0) -> DeliveryContext:
        """What a type's deliver()/notify() may use, with the target's shared client made on first use."""
        ctx = DeliveryContext(storage=self.storage, settings=self.settings.distribution, policy=self.policy,
                              limit=self.limit(config), progress=progress, resume_hint=resume_hint)
        if kind.open_client is not None:
            client = self._clients.get(config.name)
            if client is None:
                client = self._clients[config.name] = kind.open_client(config, ctx)
            ctx.client = client
        return ctx

    @contextlib.asynccontextmanager
    async def _slot(self, config: TargetConfig) -> AsyncIterator[None]:
        semaphore = self._semaphores.get(config.name)
        if semaphore is None:
            semaphore = self._semaphores[config.name] = asyncio.Semaphore(self.limit(config))
        wait = self.settings.distribution.per_target_wait_seconds
        try:
            await asyncio.wait_for(semaphore.acquire(), timeout=wait if wait > 0 else None)
        except TimeoutError:
            raise TargetUnavailableError(
                f"target {config.name!r} is busy: {self.limit(config)} deliveries already in flight "
                f"for more than {wait:.0f}s; handing this one back to the queue",
                retry_after_seconds=5.0 + random.uniform(0, 10.0),
            ) from None
        try:
            yield
        finally:
            semaphore.release()


def _with_size(item: DeliveryItem, size_bytes: int, sha256: str) -> DeliveryItem:
    return dataclasses.replace(item, size_bytes=size_bytes, sha256=sha256.lower())
