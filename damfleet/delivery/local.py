"""Local folder target: an atomic copy into ``<path>/<asset_id>/<filename>``.

The copy is written under a hidden temporary name, synced, verified against the recorded
sha256 and renamed into place (the storage layer's ``file://`` writer does exactly that),
so a watcher on the folder never sees a partial file, and a retry overwrites the same
path instead of adding a second copy.
"""

from __future__ import annotations

from pathlib import Path

from damfleet.delivery.base import DeliveryContext, DeliveryItem, DeliveryResult, TargetConfig, TargetType
from damfleet.errors import ConfigurationError, TargetUnavailableError
from damfleet.storage.local import LocalBackend

__all__ = ["TARGET_TYPE", "LocalTargetConfig", "deliver_local", "local_destination"]


class LocalTargetConfig(TargetConfig):
    """A folder on this machine or a mounted share; files land in ``<path>/<asset_id>/``."""

    path: str = ""                # "" -> <state_dir>/delivered


def local_destination(config: LocalTargetConfig, item: DeliveryItem) -> Path:
    """Where a rendition lands; asset id and file name are already path-safe."""
    return Path(config.path).expanduser() / item.asset_id / item.filename


async def deliver_local(config: LocalTargetConfig, item: DeliveryItem, ctx: DeliveryContext) -> DeliveryResult:
    """Copy one rendition into the folder, atomically."""
    destination = local_destination(config, item)
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError as exc:
        raise ConfigurationError(f"target {config.name!r}: cannot create {destination.parent}: permission denied") from exc
    except OSError as exc:
        raise TargetUnavailableError(f"target {config.name!r}: cannot create {destination.parent}: {exc}") from exc
    stream = ctx.stream(item)
    try:
        written = await LocalBackend().write(destination.as_uri(), stream, content_type=item.mime_type)
    except PermissionError as exc:
        raise ConfigurationError(f"target {config.name!r}: cannot write {destination}: permission denied") from exc
    except OSError as exc:   # disk full, stale NFS handle: may heal
        raise TargetUnavailableError(f"target {config.name!r}: writing {destination} failed: {exc}") from exc
    return DeliveryResult(location=str(destination), size_bytes=written.size_bytes, sha256=written.sha256)


TARGET_TYPE = TargetType("local", LocalTargetConfig, deliver=deliver_local)
