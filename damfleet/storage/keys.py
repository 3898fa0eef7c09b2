"""Deterministic storage keys for an asset's files.

Every key depends only on the storage root, the asset id and a rendition or sidecar
name, never on time or attempt number, so retries overwrite rather than duplicate, and
discarding an asset is one prefix delete. Layout::

    <root>/assets/<id[:2]>/<id>/original/<safe name>
    <root>/assets/<id[:2]>/<id>/metadata/technical.json
    <root>/assets/<id[:2]>/<id>/renditions/<name>.<ext>
    <root>/assets/<id[:2]>/<id>/renditions/<name>/<file>     (multi-file renditions: HLS)
    <root>/assets/<id[:2]>/<id>/enrichment/<name>.<ext>
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["AssetKeys", "join_uri", "safe_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_ASSET_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{3,127}$")


def join_uri(root: str, *parts: str) -> str:
    """Join URI path parts with single slashes."""
    pieces = [root.rstrip("/")] + [p.strip("/") for p in parts if p]
    return "/".join(pieces)


def safe_name(name: str, *, default: str = "original") -> str:
    """A file name safe for any object store and file system (no slashes, dots-only or spaces)."""
    cleaned = _UNSAFE.sub("_", name).strip("._")[:120]
    return cleaned or default


@dataclass(frozen=True)
class AssetKeys:
    root: str
    asset_id: str

    def __post_init__(self) -> None:
        if not _ASSET_ID.match(self.asset_id):
            raise ValueError(f"invalid asset id {self.asset_id!r}: letters, digits, '-' and '_' only")

    @property
    def prefix(self) -> str:
        """Everything of this asset lives under this prefix (ends with '/')."""
        return join_uri(self.root, "assets", self.asset_id[:2], self.asset_id) + "/"

    def original(self, filename: str) -> str:
        return join_uri(self.prefix, "original", safe_name(filename))

    def technical_metadata(self) -> str:
        return join_uri(self.prefix, "metadata", "technical.json")

    def rendition(self, name: str, ext: str) -> str:
        return join_uri(self.prefix, "renditions", f"{safe_name(name)}.{ext.lstrip('.')}")

    def rendition_file(self, name: str, filename: str) -> str:
        """A file of a multi-file rendition (an HLS ladder's playlists and segments) under its folder.

        ``<root>/assets/<id[:2]>/<id>/renditions/<name>/<filename>``; delete the rendition with
        ``rendition_folder(name)`` as a prefix.
        """
        return join_uri(self.rendition_folder(name), safe_name(filename))

    def rendition_folder(self, name: str) -> str:
        """The folder prefix (ends with '/') of a multi-file rendition."""
        return join_uri(self.prefix, "renditions", safe_name(name)) + "/"

    def rendition_prefix(self) -> str:
        return join_uri(self.prefix, "renditions") + "/"

    def enrichment(self, name: str, ext: str) -> str:
        return join_uri(self.prefix, "enrichment", f"{safe_name(name)}.{ext.lstrip('.')}")
