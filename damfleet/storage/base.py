"""The storage interface every stage uses, and the records it returns.

Media bytes move between stages only through storage; Temporal payloads carry URIs.
All reads and writes stream in bounded chunks, so memory use does not grow with file size.
Writes are atomic from a reader's point of view: an object appears under its key only
once it is complete (file: rename into place; S3: complete the multipart upload), so a
crashed or cancelled writer never leaves a partial output that looks finished.
"""

from __future__ import annotations

import abc
import hashlib
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CHUNK_BYTES", "ObjectInfo", "StorageBackend", "WriteResult"]

#: Read/write chunk size: large enough for throughput, small enough to keep hundreds of
#: concurrent streams within a few hundred MB.
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class ObjectInfo:
    """What ``stat`` and ``list`` report about a stored object."""

    uri: str
    size_bytes: int
    modified_at: float = 0.0          # seconds since the epoch
    content_type: str = ""
    sha256: str = ""                  # known when the writer recorded it (S3 metadata)


@dataclass(frozen=True)
class WriteResult:
    """What a completed write produced: enough to build an ``Output`` record."""

    uri: str
    size_bytes: int
    sha256: str


class StorageBackend(abc.ABC):
    """One URI scheme's implementation. Use :class:`damfleet.storage.Storage`, which routes."""

    scheme: str

    @abc.abstractmethod
    def read(self, uri: str, *, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        """Stream an object's bytes. Raises SourceNotFoundError when it does not exist."""

    @abc.abstractmethod
    async def write(
        self,
        uri: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        """Write an object from a stream, replacing any existing one atomically."""

    @abc.abstractmethod
    async def stat(self, uri: str) -> ObjectInfo:
        """Size and time of an object. Raises SourceNotFoundError when it does not exist."""

    @abc.abstractmethod
    def list(self, prefix_uri: str) -> AsyncIterator[ObjectInfo]:
        """Every object whose URI starts with ``prefix_uri``, in key order."""

    @abc.abstractmethod
    async def delete(self, uri: str) -> bool:
        """Delete one object; True if it existed."""

    async def exists(self, uri: str) -> bool:
        from damfleet.errors import SourceNotFoundError

        try:
            await self.stat(uri)
        except SourceNotFoundError:
            return False
        return True

    async def delete_prefix(self, prefix_uri: str) -> int:
        """Delete every object under a prefix; returns how many were removed."""
        removed = 0
        async for info in self.list(prefix_uri):
            if await self.delete(info.uri):
                removed += 1
        return removed

    async def upload_file(
        self, path: Path, uri: str, *, content_type: str = "", metadata: dict[str, str] | None = None
    ) -> WriteResult:
        """Store a local file under ``uri``, streaming it."""
        return await self.write(uri, _iter_file(path), content_type=content_type, metadata=metadata)

    async def download_file(self, uri: str, path: Path) -> WriteResult:
        """Copy an object to a local file (atomically), returning its size and sha256."""
        import asyncio
        import os

        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        digest = hashlib.sha256()
        size = 0
        loop = asyncio.get_running_loop()
        fh = await loop.run_in_executor(None, open, partial, "wb")
        try:
            async for chunk in self.read(uri):
                digest.update(chunk)
                size += len(chunk)
                await loop.run_in_executor(None, fh.write, chunk)
        except BaseException:
            fh.close()
            partial.unlink(missing_ok=True)
            raise
        fh.close()
        os.replace(partial, path)
        return WriteResult(uri=path.as_uri(), size_bytes=size, sha256=digest.hexdigest())

    async def aclose(self) -> None:
        """Release connections; the backend may be used again afterwards."""


async def _iter_file(path: Path, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    import asyncio

    loop = asyncio.get_running_loop()
    with open(path, "rb") as fh:
        while True:
            chunk = await loop.run_in_executor(None, fh.read, chunk_bytes)
            if not chunk:
                return
            yield chunk
