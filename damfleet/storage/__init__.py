"""One async storage interface over ``file://`` and ``s3://`` URIs.

>>> storage = Storage.from_settings(get_settings())
>>> async for chunk in storage.read("s3://media/in/clip.mov"): ...
>>> await storage.write(keys.rendition("proxy", "mp4"), chunks)

Output keys come from :class:`AssetKeys`, derived only from the asset id and the
rendition name, so a retried activity overwrites its earlier output instead of adding a
second copy.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from damfleet.errors import BadInputError
from damfleet.settings import Settings
from damfleet.storage.base import CHUNK_BYTES, ObjectInfo, StorageBackend, WriteResult
from damfleet.storage.keys import AssetKeys, join_uri
from damfleet.storage.local import LocalBackend, path_from_uri

__all__ = [
    "CHUNK_BYTES",
    "AssetKeys",
    "LocalBackend",
    "ObjectInfo",
    "Storage",
    "StorageBackend",
    "WriteResult",
    "join_uri",
    "normalize_uri",
    "path_from_uri",
]


def normalize_uri(uri_or_path: str) -> str:
    """Accept ``file://``, ``s3://`` or a local path; return a URI.

    Surrounding whitespace is trimmed from URIs and from paths that do not exist as
    written, but a path that exists is taken exactly (a name may end with a space). A
    path's bytes are percent-encoded (``Path.as_uri``), so any name round-trips.
    """
    if "\0" in uri_or_path:
        raise BadInputError(f"source {uri_or_path!r} contains a NUL byte, which no file name or URI can hold")
    text = uri_or_path.strip()
    if not text:
        raise BadInputError("empty source URI")
    if "://" not in text and text != uri_or_path and os.path.lexists(uri_or_path):
        text = uri_or_path
    if text.startswith(("file://", "s3://")):
        return text
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise BadInputError(f"unsupported URI scheme {scheme!r} in {text!r}: use file:// or s3://")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = path.resolve()
    return path.as_uri()


class Storage:
    """Routes each call to the backend for the URI's scheme."""

    def __init__(self, backends: dict[str, StorageBackend], root: str) -> None:
        self._backends = backends
        self.root = root.rstrip("/")

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        from damfleet.egress import restrict_egress
        from damfleet.storage.s3 import S3Backend

        restrict_egress(settings)  # before any S3 client exists: no instance-metadata lookups by default
        return cls({"file": LocalBackend(), "s3": S3Backend(settings.storage)}, settings.storage_root)

    def backend(self, uri: str) -> StorageBackend:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        try:
            return self._backends[scheme]
        except KeyError:
            raise BadInputError(f"unsupported storage URI {uri!r}: use file:// or s3://") from None

    def keys(self, asset_id: str) -> AssetKeys:
        return AssetKeys(self.root, asset_id)

    def read(self, uri: str, *, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        return self.backend(uri).read(uri, chunk_bytes=chunk_bytes)

    async def write(
        self,
        uri: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        return await self.backend(uri).write(uri, chunks, content_type=content_type, metadata=metadata)

    async def write_bytes(self, uri: str, data: bytes, *, content_type: str = "") -> WriteResult:
        """Write a small object (JSON sidecars, VTT files) from memory."""

        async def one() -> AsyncIterator[bytes]:
            yield data

        return await self.write(uri, one(), content_type=content_type)

    async def read_bytes(self, uri: str, *, limit: int = 64 * 1024 * 1024) -> bytes:
        """Read a small object whole; refuses objects larger than ``limit``."""
        out = bytearray()
        async for chunk in self.read(uri):
            out.extend(chunk)
            if len(out) > limit:
                raise BadInputError(f"{uri} is larger than {limit} bytes; stream it instead")
        return bytes(out)

    async def upload_file(
        self, path: Path, uri: str, *, content_type: str = "", metadata: dict[str, str] | None = None
    ) -> WriteResult:
        return await self.backend(uri).upload_file(path, uri, content_type=content_type, metadata=metadata)

    async def download_file(self, uri: str, path: Path) -> WriteResult:
        return await self.backend(uri).download_file(uri, path)

    async def stat(self, uri: str) -> ObjectInfo:
        return await self.backend(uri).stat(uri)

    async def exists(self, uri: str) -> bool:
        return await self.backend(uri).exists(uri)

    def list(self, prefix_uri: str) -> AsyncIterator[ObjectInfo]:
        return self.backend(prefix_uri).list(prefix_uri)

    async def delete(self, uri: str) -> bool:
        return await self.backend(uri).delete(uri)

    async def delete_prefix(self, prefix_uri: str) -> int:
        return await self.backend(prefix_uri).delete_prefix(prefix_uri)

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
