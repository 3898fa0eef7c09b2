"""The Distributor: one per worker process, routing each delivery to its target type.

It owns what deliveries share: the target registry, one HTTP client or S3 client per
target (connection pools are per partner, so one partner's slow sockets do not hold
another's), and a concurrency limit per target name. A delivery waits for a slot of its
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
from collections.abc import AsyncIterator
from pathlib import PurePosixPath

import httpx

from damfleet.delivery.base import DeliveryItem, DeliveryResult, ProgressFn
from damfleet.delivery.config import (
    HttpTargetConfig,
    LocalTargetConfig,
    S3TargetConfig,
    TargetConfig,
    TargetRegistry,
    WebhookTargetConfig,
)
from damfleet.delivery.http import deliver_http
from damfleet.delivery.local import deliver_local
from damfleet.delivery.netguard import OutboundPolicy, guarded_client
from damfleet.delivery.s3 import S3TargetClient, deliver_s3
from damfleet.delivery.webhook import send_webhook
from damfleet.errors import BadInputError, ConfigurationError, TargetUnavailableError
from damfleet.settings import Settings
from damfleet.storage import Storage
from damfleet.storage.keys import safe_name

__all__ = ["Distributor", "delivery_item"]

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


class Distributor:
    """Delivers stored renditions and notifications to the targets named in settings."""

    def __init__(self, settings: Settings, storage: Storage, *, registry: TargetRegistry | None = None) -> None:
        self.settings = settings
        self.storage = storage
        self.registry = registry or TargetRegistry.from_settings(settings)
        self.policy = OutboundPolicy.from_entries(settings.distribution.allow_private_networks)
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._http_clients: dict[str, httpx.AsyncClient] = {}
        self._s3_clients: dict[str, S3TargetClient] = {}

    # ---- what the activities call ------------------------------------------------------

    def target(self, name: str) -> TargetConfig:
        """The named target's definition (ConfigurationError names what is wrong)."""
        return self.registry.get(name)

    async def deliver(self, target_name: str, item: DeliveryItem, *, progress: ProgressFn | None = None
                      ) -> tuple[TargetConfig, DeliveryResult]:
        """Deliver one stored rendition to one target; raises damfleet errors on failure."""
        config = self.target(target_name)
        if isinstance(config, WebhookTargetConfig):
            raise ConfigurationError(f"target {target_name!r} is a webhook; it receives notifications, not files")
        if item.size_bytes <= 0 or not item.sha256:
            # Old or hand-built requests may lack them; the stored object is the truth.
            info = await self.storage.stat(item.source_uri)
            item = _with_size(item, info.size_bytes, item.sha256 or info.sha256)
        chunk = self.settings.distribution.stream_chunk_bytes
        dist = self.settings.distribution
        async with self._slot(config):
            if isinstance(config, LocalTargetConfig):
                result = await deliver_local(config, item, self.storage, chunk_bytes=chunk, progress=progress,
                                             verify_source=dist.verify_source)
            elif isinstance(config, S3TargetConfig):
                result = await deliver_s3(config, item, self.storage, self._s3(config),
                                          chunk_bytes=chunk, progress=progress, verify_source=dist.verify_source)
            elif isinstance(config, HttpTargetConfig):
                result = await deliver_http(
                    config, item, self.storage, self._http(config), chunk_bytes=chunk,
                    verify_source=dist.verify_source, max_redirects=dist.max_redirects,
                    max_retry_after_seconds=dist.max_retry_after_seconds, progress=progress,
                )
            else:  # pragma: no cover - the registry only builds known types
                raise ConfigurationError(f"target {target_name!r}: unsupported type {config.type!r}")
        log.info("delivered %s of %s to %s at %s (%d bytes%s)", item.role, item.asset_id, config.describe(),
                 result.location, result.size_bytes, ", already present" if result.already_present else "")
        return config, result

    async def notify(self, target_name: str, body: bytes, *, idempotency_key: str) -> tuple[TargetConfig, DeliveryResult]:
        """Send a signed JSON notification to a webhook target."""
        config = self.target(target_name)
        if not isinstance(config, WebhookTargetConfig):
            raise ConfigurationError(
                f"target {target_name!r} is a {config.type} target; notifications need a webhook target"
            )
        dist = self.settings.distribution
        async with self._slot(config):
            result = await send_webhook(
                config, body, idempotency_key=idempotency_key, client=self._http(config),
                default_secret=dist.webhook_secret, max_redirects=dist.max_redirects,
                max_retry_after_seconds=dist.max_retry_after_seconds,
            )
        log.info("notified %s (%d bytes, key %s)", config.describe(), result.size_bytes, idempotency_key)
        return config, result

    async def aclose(self) -> None:
        """Close every client (the worker calls this on shutdown)."""
        clients, self._http_clients = self._http_clients, {}
        for client in clients.values():
            await client.aclose()
        s3_clients, self._s3_clients = self._s3_clients, {}
        for s3 in s3_clients.values():
            await s3.aclose()

    # ---- shared per-target resources ---------------------------------------------------

    def limit(self, config: TargetConfig) -> int:
        return max(1, config.concurrency or self.settings.distribution.per_target_concurrency)

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

    def _http(self, config: HttpTargetConfig | WebhookTargetConfig) -> httpx.AsyncClient:
        client = self._http_clients.get(config.name)
        if client is None:
            dist = self.settings.distribution
            client = guarded_client(
                self.policy,
                verify_tls=dist.verify_tls and config.verify_tls,
                ca_bundle=config.ca_bundle,
                timeout_seconds=config.timeout_seconds or dist.http_timeout_seconds,
                max_connections=self.limit(config),
            )
            self._http_clients[config.name] = client
        return client

    def _s3(self, config: S3TargetConfig) -> S3TargetClient:
        client = self._s3_clients.get(config.name)
        if client is None:
            client = self._s3_clients[config.name] = S3TargetClient(
                config, max_pool_connections=max(10, self.limit(config))
            )
        return client


def _with_size(item: DeliveryItem, size_bytes: int, sha256: str) -> DeliveryItem:
    return dataclasses.replace(item, size_bytes=size_bytes, sha256=sha256.lower())
