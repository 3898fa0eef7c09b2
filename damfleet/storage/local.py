"""``file://`` storage: a folder on a local disk or a shared volume (NFS, CephFS)."""

from __future__ import annotations

import asyncio
import fcntl
import glob
import hashlib
import os
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from damfleet.errors import BadInputError, SourceNotFoundError
from damfleet.sources import local_path_bytes
from damfleet.storage.base import CHUNK_BYTES, ObjectInfo, StorageBackend, WriteResult

__all__ = ["LocalBackend", "path_from_uri"]


def path_from_uri(uri: str) -> Path:
    """The local path a ``file://`` URI (or a bare absolute path) names. The URI is read by
    :func:`damfleet.sources.local_path_bytes`, the one ``file://`` parser: percent-decoded to
    bytes (a name that is not UTF-8 names the same file again), remote hosts, relative paths
    and NUL bytes refused."""
    if uri.startswith("/"):
        return Path(uri)
    return Path(os.fsdecode(local_path_bytes(uri)))


def _remove_abandoned_partials(path: Path) -> int:
    """Delete temporary files of earlier writes of ``path`` whose writer died (lock free).

    A worker SIGKILLed mid-write leaves its ``.partial`` behind; its retry writes the same
    object, so this is where the leftover is noticed. A concurrent live writer holds its
    lock and is left alone.
    """
    removed = 0
    for partial in path.parent.glob(f".{glob.escape(path.name)}.*.partial"):
        try:
            fd = os.open(partial, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live writer
        else:
            partial.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


class LocalBackend(StorageBackend):
    """Objects are plain files; writes go to a hidden temporary name, then rename into place."""

    scheme = "file"

    async def read(self, uri: str, *, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:  # type: ignore[override]
        path = path_from_uri(uri)
        loop = asyncio.get_running_loop()
        try:
            fh = await loop.run_in_executor(None, open, path, "rb")
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"no such file: {path}") from exc
        except IsADirectoryError as exc:
            raise BadInputError(f"is a directory, not a file: {path}") from exc
        except PermissionError as exc:
            raise BadInputError(f"permission denied reading {path}") from exc
        try:
            while True:
                chunk = await loop.run_in_executor(None, fh.read, chunk_bytes)
                if not chunk:
                    return
                yield chunk
        finally:
            fh.close()

    async def write(
        self,
        uri: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
    ) -> WriteResult:
        path = path_from_uri(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        loop = asyncio.get_running_loop()
        digest = hashlib.sha256()
        size = 0
        fh = await loop.run_in_executor(None, open, partial, "wb")
        # Held until the rename: a partial whose lock is free belongs to a dead writer.
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                await loop.run_in_executor(None, fh.write, chunk)
            await loop.run_in_executor(None, fh.flush)
            await loop.run_in_executor(None, os.fsync, fh.fileno())
        except BaseException:
            fh.close()
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, path)
        fh.close()
        await loop.run_in_executor(None, _remove_abandoned_partials, path)
        return WriteResult(uri=path.as_uri(), size_bytes=size, sha256=digest.hexdigest())

    async def stat(self, uri: str) -> ObjectInfo:
        path = path_from_uri(uri)
        try:
            st = path.stat()
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"no such file: {path}") from exc
        if not path.is_file():
            raise BadInputError(f"not a regular file: {path}")
        return ObjectInfo(uri=path.as_uri(), size_bytes=st.st_size, modified_at=st.st_mtime)

    async def list(  # type: ignore[override]
        self, prefix_uri: str, *, include_partial: bool = False
    ) -> AsyncIterator[ObjectInfo]:
        """Objects under a prefix; ``include_partial`` adds in-progress (or abandoned) writes."""
        prefix = path_from_uri(prefix_uri)
        # A prefix may end mid-name ("assets/ab" matches "assets/abc/..."), like S3.
        base = prefix if str(prefix_uri).endswith("/") or prefix.is_dir() else prefix.parent
        if not base.is_dir():
            return
        prefix_text = str(prefix)
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for name in sorted(filenames):
                if name.startswith(".") and name.endswith(".partial") and not include_partial:
                    continue  # an in-progress write, not an object yet
                full = os.path.join(dirpath, name)
                if not full.startswith(prefix_text):
                    continue
                st = os.stat(full)
                yield ObjectInfo(uri=Path(full).as_uri(), size_bytes=st.st_size, modified_at=st.st_mtime)

    async def delete_prefix(self, prefix_uri: str) -> int:
        """Delete every object under a prefix, abandoned ``.partial`` writes included.

        A writer killed outright (SIGKILL, node loss) never removes its temporary file;
        listings hide it, so without this a discarded asset would leave it behind.
        """
        removed = 0
        async for info in self.list(prefix_uri, include_partial=True):
            if await self.delete(info.uri):
                removed += 1
        return removed

    async def delete(self, uri: str) -> bool:
        path = path_from_uri(uri)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        # Tidy now-empty parent folders so a discarded asset leaves nothing behind.
        parent = path.parent
        for _ in range(4):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent
        return True
