"""Local folder target: an atomic copy into ``<path>/<asset_id>/<filename>``.

The copy is written under a hidden temporary name, synced, verified against the recorded
sha256 and renamed into place (the storage layer's ``file://`` writer does exactly that),
so a watcher on the folder never sees a partial file, and a retry overwrites the same
path instead of adding a second copy.
"""

from __future__ import annotations

from pathlib import Path

from damfleet.delivery.base import DeliveryItem, DeliveryResult, ProgressFn, VerifiedStream
from damfleet.delivery.config import LocalTargetConfig
from damfleet.errors import ConfigurationError, TargetUnavailableError
from damfleet.storage import Storage
from damfleet.storage.local import LocalBackend

__all__ = ["deliver_local", "local_destination"]


def local_destination(config: LocalTargetConfig, item: DeliveryItem) -> Path:
    """Where a rendition lands; asset id and file name are already path-safe."""
    return Path(config.path).expanduser() / item.asset_id / item.filename


async def deliver_local(
    config: LocalTargetConfig,
    item: DeliveryItem,
    storage: Storage,
    *,
    chunk_bytes: int,
    verify_source: bool = True,
    progress: ProgressFn | None = None,
) -> DeliveryResult:
    destination = local_destination(config, item)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError as exc:
        raise ConfigurationError(f"target {config.name!r}: cannot create {destination.parent}: permission denied") from exc
    except OSError as exc:
        raise TargetUnavailableError(f"target {config.name!r}: cannot create {destination.parent}: {exc}") from exc
    stream = VerifiedStream(
        storage.read(item.source_uri, chunk_bytes=chunk_bytes),
        expected_size=item.size_bytes,
        expected_sha256=item.sha256,
        what=f"{item.role} of {item.asset_id}",
        progress=progress, hash_bytes=verify_source,
    )
    try:
        written = await LocalBackend().write(destination.as_uri(), stream, content_type=item.mime_type)
    except PermissionError as exc:
        raise ConfigurationError(f"target {config.name!r}: cannot write {destination}: permission denied") from exc
    except OSError as exc:   # disk full, stale NFS handle: may heal
        raise TargetUnavailableError(f"target {config.name!r}: writing {destination} failed: {exc}") from exc
    return DeliveryResult(location=str(destination), size_bytes=written.size_bytes, sha256=written.sha256)
