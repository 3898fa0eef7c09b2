"""What the file-server targets (SFTP, FTP, FTPS) share: their common settings and the
resumable, atomic upload into a partner's watch folder.

The upload, whatever the protocol::

    1. the rendition goes to a temporary name in the remote folder (``temp_name``, by
       default ``.<file>.<first 12 hex of its sha256>.part``): a playout system watching
       the folder ignores dot-files and never sees the final name before the bytes are all
       there. The name is a function of the content, so a retry, on this worker or any
       other, finds the same partial file, and never mistakes an older version's for it;
    2. if that temporary file exists, the upload resumes after the bytes the server
       already holds (the server's size is the truth; minus the protocol's
       ``resume_margin`` where writes may land out of order), else it starts at 0;
    3. the server's size of the temporary file is compared with the recorded size;
    4. optionally a ``<file>.sha256`` / ``<file>.md5`` sidecar is written (also under a
       temporary name, then renamed);
    5. the temporary file is renamed onto the final name, replacing an older copy
       atomically.

A protocol module implements :class:`RemoteSession` (six small calls) and maps its own
errors; everything above lives here once.
"""

from __future__ import annotations

import hashlib
import logging
import posixpath
import string
from collections.abc import AsyncIterator
from typing import Any, Protocol, Self

from pydantic import Field, SecretStr, model_validator

from damfleet.delivery.base import (
    DeliveryContext,
    DeliveryItem,
    DeliveryResult,
    TargetConfig,
    VerifiedStream,
)
from damfleet.errors import TargetUnavailableError
from damfleet.storage.keys import safe_name

__all__ = [
    "DIR_PLACEHOLDERS",
    "RemoteSession",
    "RemoteTargetConfig",
    "ResumeUnsupportedError",
    "network_error",
    "remote_paths",
    "upload_atomically",
]

log = logging.getLogger(__name__)

#: Fields ``remote_dir`` may use (values are made path-safe first).
DIR_PLACEHOLDERS = frozenset({"asset_id", "role", "target"})
#: Fields ``temp_name`` may use; ``digest`` is the first 12 hex digits of the sha256.
TEMP_PLACEHOLDERS = frozenset({"filename", "digest"})
SIDECARS = ("", "sha256", "md5")


def _fields(template: str) -> set[str]:
    try:
        return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"malformed template {template!r}: {exc}") from None


class RemoteTargetConfig(TargetConfig):
    """Settings every file-server target has. Credentials come from settings or Secrets
    (``password_env``), never from requests; ``concurrency`` is the per-target session
    limit (partners often allow only a few logins at once)."""

    host: str
    port: int = Field(default=0, ge=0, le=65535)   # 0: the protocol's default port
    username: str
    password: SecretStr = SecretStr("")
    remote_dir: str = "{asset_id}"                 # relative to the login folder, or absolute
    temp_name: str = ".{filename}.{digest}.part"
    checksum_sidecar: str = ""                     # "", "sha256" or "md5": <file>.<kind> next to it
    timeout_seconds: float = Field(default=60.0, ge=0)   # connect, login and each network operation

    @model_validator(mode="after")
    def _check_remote(self) -> Self:
        if not self.host.strip() or any(c in self.host for c in "/@ "):
            raise ValueError(f"host must be a host name or address, got {self.host!r}")
        if not self.username:
            raise ValueError("username must not be empty")
        unknown = _fields(self.remote_dir) - DIR_PLACEHOLDERS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)} in remote_dir; "
                             f"allowed: {sorted(DIR_PLACEHOLDERS)}")
        if ".." in self.remote_dir.split("/"):
            raise ValueError("remote_dir must not contain '..'")
        fields = _fields(self.temp_name)
        if fields - TEMP_PLACEHOLDERS or "filename" not in fields or "/" in self.temp_name:
            raise ValueError(f"temp_name must be a file name using {{filename}} (and optionally {{digest}}), "
                             f"got {self.temp_name!r}")
        if self.temp_name.format(filename="x", digest="0") == "x":
            raise ValueError("temp_name must differ from the final name")
        if self.checksum_sidecar not in SIDECARS:
            raise ValueError(f"checksum_sidecar must be one of {list(SIDECARS)}, got {self.checksum_sidecar!r}")
        return self


class ResumeUnsupportedError(Exception):
    """Raised by :meth:`RemoteSession.write` when the server cannot continue a file at an
    offset; the upload then starts over from byte 0."""


class RemoteSession(Protocol):
    """One logged-in session on a file server, as the shared upload needs it."""

    #: Bytes below the server's size that may not have landed yet (out-of-order writes);
    #: a resume restarts this far back.
    resume_margin: int

    async def size(self, path: str) -> int | None:
        """The file's size, or None when it does not exist."""
        ...

    async def makedirs(self, path: str) -> None: ...

    async def write(self, path: str, offset: int, chunks: AsyncIterator[bytes]) -> None:
        """Write ``chunks`` into ``path`` from ``offset`` (0: create or truncate)."""
        ...

    async def rename(self, source: str, destination: str) -> None:
        """Rename, replacing ``destination`` if it exists."""
        ...

    async def remove(self, path: str) -> None: ...


def network_error(where: str, exc: BaseException, timeout_seconds: float) -> TargetUnavailableError:
    """A timeout, a socket error or anything unforeseen from a file server's client library:
    worth retrying (the protocol modules classify the server's own replies first)."""
    if isinstance(exc, TimeoutError):
        return TargetUnavailableError(f"{where}: no answer within {timeout_seconds:.0f}s")
    if isinstance(exc, OSError):   # refused, reset, unreachable, name not resolved
        return TargetUnavailableError(f"{where}: {exc.strerror or exc}")
    return TargetUnavailableError(f"{where}: {type(exc).__name__}: {exc}")


def remote_paths(config: RemoteTargetConfig, item: DeliveryItem) -> tuple[str, str, str]:
    """(folder, final path, temporary path) of ``item`` on the server."""
    folder = config.remote_dir.format(
        asset_id=item.asset_id, role=safe_name(item.role or "output"), target=safe_name(config.name)
    ).rstrip("/") or "."
    temp = config.temp_name.format(filename=item.filename, digest=item.sha256[:12] or "nosha")
    return folder, posixpath.join(folder, item.filename), posixpath.join(folder, temp)


async def _write_small(session: RemoteSession, path: str, data: bytes) -> None:
    async def one() -> AsyncIterator[bytes]:
        yield data

    await session.write(path, 0, one())


async def _send(session: RemoteSession, config: RemoteTargetConfig, item: DeliveryItem, ctx: DeliveryContext,
                temp: str, offset: int) -> tuple[VerifiedStream, Any]:
    """Stream the rendition from ``offset`` into ``temp``; returns the verified stream and the
    sidecar's MD5 (None unless an md5 sidecar is configured)."""
    md5 = hashlib.md5(usedforsecurity=False) if config.checksum_sidecar == "md5" else None
    stream = ctx.stream(item, offset=offset, report=False, extra_digest=md5)

    async def confirmed() -> AsyncIterator[bytes]:
        """Yield chunks; report the previous one as held once the session asks for the next."""
        done = offset
        async for chunk in stream:
            if ctx.progress is not None:
                ctx.progress(done, item.size_bytes)
            yield chunk
            done += len(chunk)
        if ctx.progress is not None:
            ctx.progress(done, item.size_bytes)

    if offset < item.size_bytes or item.size_bytes == 0:
        await session.write(temp, offset, confirmed())
    else:
        async for _ in stream:   # the server holds everything: still verify the source
            pass
    stream.verify()
    return stream, md5


async def upload_atomically(
    session: RemoteSession, config: RemoteTargetConfig, item: DeliveryItem, ctx: DeliveryContext, server_url: str
) -> DeliveryResult:
    """Steps 1-5 of the module docstring; ``server_url`` (``sftp://host:port``) starts the receipt's location."""
    folder, final, temp = remote_paths(config, item)
    await session.makedirs(folder)
    held = await session.size(temp)
    offset = 0
    if held is not None and 0 < held <= item.size_bytes:
        offset = max(0, held - session.resume_margin)
    if ctx.resume_hint and held is None:
        log.info("%s: the previous attempt reported %d bytes of %s, but the server has no %s; starting over",
                 config.describe(), ctx.resume_hint, item.filename, temp)
    try:
        stream, md5 = await _send(session, config, item, ctx, temp, offset)
    except ResumeUnsupportedError as exc:
        log.info("%s cannot resume %s (%s); starting over", config.describe(), temp, exc)
        offset = 0
        stream, md5 = await _send(session, config, item, ctx, temp, offset)
    landed = await session.size(temp)
    if landed != item.size_bytes:
        await session.remove(temp)
        raise TargetUnavailableError(
            f"target {config.name!r}: the server holds {landed} bytes of {temp} after the upload, "
            f"not {item.size_bytes}; removed it, the retry starts over"
        )
    if config.checksum_sidecar:
        digest = stream.sha256 if md5 is None else md5.hexdigest()
        sidecar = f"{final}.{config.checksum_sidecar}"
        await _write_small(session, f"{sidecar}.part", f"{digest}  {item.filename}\n".encode())
        await session.rename(f"{sidecar}.part", sidecar)
    await session.rename(temp, final)
    location = f"{server_url}/{final.lstrip('/')}"
    return DeliveryResult(location=location, size_bytes=item.size_bytes, sha256=stream.sha256, resumed_from=offset)
