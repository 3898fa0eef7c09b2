"""Where ingest may read sources from, and how a source is resolved and opened safely.

A source URI comes from outside (an upstream service, a manifest row, the ``temporal``
CLI), so it is checked the way the file is actually opened, not as a string:

* ``file://`` URIs are percent-decoded **to bytes** (RFC 3986), so any name the file system
  allows round-trips: trailing spaces, newlines, invalid UTF-8, leading dashes.
* The path is resolved with symbolic links followed (``realpath``) and must lie under one
  of the configured roots *after* resolution, so ``..``, ``%2f``-encoded traversal and a
  link inside a root that points outside are all refused. With
  ``DAMFLEET_INGEST_FOLLOW_SYMLINKS=false`` any link in the path is refused instead, and
  the file is opened with ``O_NOFOLLOW``.
* The file is then opened and checked again through ``/proc/self/fd``: what was really
  opened must be a regular file under a root, which closes the race between the check and
  the open (a path component swapped for a link in between).
* ``s3://`` URIs must name a configured bucket (and prefix, if the root has one); keys
  with ``.`` or ``..`` segments are refused, because some S3-compatible stores normalise
  them.

Roots are deny-by-default: with none configured every source is refused, and the message
names the setting (``DAMFLEET_INGEST_SOURCE_ROOTS``) to change. The client runs the same
check before it starts a run (when its settings carry roots), so a bad request fails at
submit with the same words a worker would use at ingest.

Operating-system errors are classified here: a link loop, an over-long name, a denied
permission or a NUL byte cannot be fixed by retrying and become permanent
:class:`~damfleet.errors.BadInputError` s with a clear message; only errors that may pass
(an I/O error, too many open files) stay retryable.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Self
from urllib.parse import quote_from_bytes, unquote_to_bytes, urlsplit

from damfleet.errors import (
    BadInputError,
    SourceNotFoundError,
    SourceRefusedError,
    StorageUnavailableError,
    TransientError,
)
from damfleet.settings import Settings

__all__ = [
    "FOLLOW_SYMLINKS_SETTING",
    "SOURCE_ROOTS_SETTING",
    "LocalSource",
    "SourceRefusedError",
    "SourceRoots",
    "check_before_submit",
    "classify_os_error",
    "display_name",
    "display_text",
    "file_uri",
    "iter_local_source",
    "local_path_bytes",
    "open_local_source",
    "source_name_bytes",
]

SOURCE_ROOTS_SETTING = "DAMFLEET_INGEST_SOURCE_ROOTS"
FOLLOW_SYMLINKS_SETTING = "DAMFLEET_INGEST_FOLLOW_SYMLINKS"


# ---- names as bytes ---------------------------------------------------------------------------


def file_uri(path: bytes | str) -> str:
    """A ``file://`` URI for an absolute path, percent-encoding its raw bytes (RFC 3986).

    The inverse of :func:`local_path_bytes`: every byte string a POSIX file system allows
    in a name survives the round trip, valid UTF-8 or not.
    """
    raw = os.fsencode(path)
    if not raw.startswith(b"/"):
        raise BadInputError(f"not an absolute path: {display_text(raw)}")
    return "file://" + quote_from_bytes(raw, safe="/")


def local_path_bytes(uri: str) -> bytes:
    """The raw path bytes a ``file://`` URI names (percent-decoded to bytes, not to text).

    Refuses a remote host, a relative path and a NUL byte (which no file name can hold and
    which the OS calls would otherwise reject with a bare ``ValueError``).
    """
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise BadInputError(f"not a file:// URI: {display_text(uri)}")
    if parts.netloc not in ("", "localhost"):
        raise BadInputError(f"file:// URI with a remote host is not supported: {display_text(uri)}")
    raw = unquote_to_bytes(parts.path)
    if b"\0" in raw:
        raise SourceRefusedError(f"file:// URI contains a NUL byte, which no file name can hold: {display_text(uri)}")
    if not raw.startswith(b"/"):
        raise SourceRefusedError(f"file:// URI without an absolute path: {display_text(uri)}")
    return raw


def source_name_bytes(uri: str) -> bytes:
    """The last path segment of a source URI, as raw bytes (``b""`` for a folder-like URI)."""
    if uri.startswith("file://"):
        raw = unquote_to_bytes(urlsplit(uri).path)
    elif "://" in uri:
        raw = urlsplit(uri).path.encode()
    else:
        raw = os.fsencode(uri)
    return raw.rstrip(b"/").rsplit(b"/", 1)[-1] if raw.strip(b"/") else b""


def display_text(value: bytes | str, *, limit: int = 300) -> str:
    """A one-line, printable rendering of an untrusted name or URI for logs, errors and the UI.

    Invalid UTF-8 bytes appear as ``\\xff``; control, format (bidi overrides) and other
    invisible characters as ``\\n``/``\\u202e`` escapes, so a name cannot break a log line
    or disguise itself. Trailing spaces are shown as ``\\x20``. Long values are shortened in
    the middle. Never use the result to find the file again: keep the bytes for that.
    """
    raw = value if isinstance(value, bytes) else os.fsencode(value)
    text = raw.decode("utf-8", errors="backslashreplace")
    out = []
    for char in text:
        if char.isprintable():  # False for controls, bidi/format characters, odd spaces
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    shown = "".join(out)
    stripped = shown.rstrip(" ")
    if len(stripped) != len(shown):
        shown = stripped + "\\x20" * (len(shown) - len(stripped))
    if len(shown) > limit:
        half = (limit - 1) // 2
        shown = f"{shown[:half]}…{shown[-half:]}"
    return shown


def display_name(uri: str, *, default: str = "original") -> str:
    """The source's file name made safe for display (see :func:`display_text`)."""
    name = source_name_bytes(uri)
    return display_text(name, limit=200) if name else default


# ---- roots --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _S3Root:
    bucket: str
    prefix: str  # "" or ends with "/"

    def holds(self, bucket: str, key: str) -> bool:
        return bucket == self.bucket and key.startswith(self.prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class SourceRoots:
    """The folders and buckets sources may come from (``DAMFLEET_INGEST_SOURCE_ROOTS``)."""

    folders: tuple[bytes, ...] = ()    # real paths (links resolved), without a trailing slash
    buckets: tuple[_S3Root, ...] = ()
    follow_symlinks: bool = True

    @classmethod
    def parse(cls, entries: tuple[str, ...] | list[str], *, follow_symlinks: bool = True) -> SourceRoots:
        """Roots from ``file://`` folders, absolute paths and ``s3://bucket[/prefix]`` entries.

        A folder root is itself resolved (``/tmp`` may be a link); a root that does not
        exist yet is kept as written, normalised.
        """
        folders: list[bytes] = []
        buckets: list[_S3Root] = []
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            if text.startswith("s3://"):
                parts = urlsplit(text)
                if not parts.netloc:
                    raise BadInputError(f"{SOURCE_ROOTS_SETTING}: {text!r} names no bucket")
                prefix = parts.path.lstrip("/")
                if prefix and not prefix.endswith("/"):
                    prefix += "/"
                buckets.append(_S3Root(parts.netloc, prefix))
                continue
            if "://" in text and not text.startswith("file://"):
                raise BadInputError(f"{SOURCE_ROOTS_SETTING}: {text!r} is neither a file:// folder nor an s3:// bucket")
            raw = local_path_bytes(text) if text.startswith("file://") else os.fsencode(os.path.expanduser(text))
            if not raw.startswith(b"/"):
                raise BadInputError(f"{SOURCE_ROOTS_SETTING}: {text!r} is not an absolute path")
            folders.append(os.path.realpath(raw).rstrip(b"/") or b"/")
        return cls(tuple(folders), tuple(buckets), follow_symlinks)

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceRoots:
        """The configured roots; the older ``DAMFLEET_INGEST_ALLOWED_SOURCE_PREFIXES`` still counts."""
        ingest = settings.ingest
        entries = ingest.source_roots or ingest.allowed_source_prefixes
        return cls.parse(entries, follow_symlinks=ingest.follow_symlinks)

    @property
    def empty(self) -> bool:
        return not (self.folders or self.buckets)

    def describe(self) -> str:
        shown = [file_uri(f) for f in self.folders] + [str(b) for b in self.buckets]
        return ", ".join(display_text(s, limit=120) for s in shown) or "none"

    def _outside(self, uri: str, resolved: bytes | None = None) -> SourceRefusedError:
        where = f" (it resolves to {display_text(resolved)})" if resolved is not None else ""
        if self.empty:
            return SourceRefusedError(
                f"source {display_text(uri)} refused: no source roots are configured; set {SOURCE_ROOTS_SETTING} "
                "to the file:// folders and s3:// buckets sources may come from"
            )
        return SourceRefusedError(
            f"source {display_text(uri)} is outside the source roots{where}; "
            f"{SOURCE_ROOTS_SETTING} allows {self.describe()}"
        )

    def holds_path(self, real: bytes) -> bool:
        return any(real == root or real.startswith(root.rstrip(b"/") + b"/") for root in self.folders)

    def check(self, uri: str, *, strict: bool = True) -> bytes | None:
        """Refuse a source outside the roots; returns the resolved local path for ``file://``.

        Raises :class:`SourceRefusedError` (permanent) with a message naming the setting,
        :class:`~damfleet.errors.SourceNotFoundError` for a missing file, and permanent or
        transient errors for other path failures (see :func:`classify_os_error`).
        ``strict=False`` (the client, which may not see the workers' files) resolves what
        exists and does not require the file itself to exist.
        """
        if uri.startswith("s3://"):
            parts = urlsplit(uri)
            key = parts.path.lstrip("/")
            if any(segment in (".", "..") for segment in key.split("/")):
                raise SourceRefusedError(f"source {display_text(uri)} has a '.' or '..' segment in its key")
            if not any(root.holds(parts.netloc, key) for root in self.buckets):
                raise self._outside(uri)
            return None
        raw = local_path_bytes(uri)
        if self.empty:
            raise self._outside(uri)
        try:
            real = os.path.realpath(raw, strict=strict)
        except OSError as exc:
            # Say "outside" rather than "missing" when even the lexical path leaves the roots,
            # so probing for files outside them learns nothing.
            lexical = os.path.realpath(raw)
            if not self.holds_path(lexical):
                raise self._outside(uri, lexical) from None
            raise classify_os_error(exc, uri) from exc
        if not self.holds_path(real):
            raise self._outside(uri, real if real != os.path.normpath(raw) else None)
        if not self.follow_symlinks and real != os.path.normpath(raw):
            raise SourceRefusedError(
                f"source {display_text(uri)} goes through a symbolic link (it resolves to {display_text(real)}) "
                f"and {FOLLOW_SYMLINKS_SETTING}=false"
            )
        return real


def check_before_submit(uri: str, settings: Settings) -> None:
    """The client's early check: refuse a source outside the roots before a run starts.

    It uses the client's own settings; with no roots configured there, the decision is
    left to the workers (whose roots may differ from a client's), which refuse at ingest
    with the same message.
    """
    roots = SourceRoots.from_settings(settings)
    if not roots.empty:
        roots.check(uri, strict=False)


def classify_os_error(exc: OSError, uri: str) -> Exception:
    """A damfleet error for an OS error on a source path: permanent unless retrying may help."""
    shown = display_text(uri)
    code = exc.errno
    if code == errno.ENOENT:
        return SourceNotFoundError(f"no such file: {shown}")
    permanent = {
        errno.ELOOP: "too many levels of symbolic links (a link loop, or a link where links are not followed)",
        errno.ENAMETOOLONG: "file name too long",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOTDIR: "a component of the path is not a folder",
        errno.EISDIR: "is a folder, not a file",
        errno.ENXIO: "is a special file with nothing behind it",
        errno.EINVAL: "invalid path",
        errno.EILSEQ: "the name is not valid in this file system's encoding",
    }
    if code in permanent:
        return SourceRefusedError(f"cannot read source {shown}: {permanent[code]}")
    if code in _UNREACHABLE:  # a network file system (NFS, CephFS) that is down: wait it out
        return StorageUnavailableError(f"cannot read source {shown}: {exc.strerror or exc}")
    return TransientError(f"cannot read source {shown}: {exc.strerror or exc}")


#: errno values of a shared volume whose server is unreachable, not of a bad file.
_UNREACHABLE = frozenset({errno.ESTALE, errno.ETIMEDOUT, errno.EHOSTDOWN, errno.EHOSTUNREACH,
                          errno.ENETDOWN, errno.ENETUNREACH, errno.ECONNREFUSED, errno.ECONNRESET})


# ---- opening ---------------------------------------------------------------------------------


@dataclass
class LocalSource:
    """An opened local source: its descriptor was checked to be a regular file under a root."""

    uri: str
    fd: int
    size_bytes: int

    def read(self, size: int) -> bytes:
        return os.read(self.fd, size)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_local_source(uri: str, roots: SourceRoots) -> LocalSource:
    """Check and open a ``file://`` source; what is opened is checked again after the open.

    The descriptor is opened non-blocking (a FIFO swapped in after the check cannot hang
    the worker), without becoming a controlling terminal, and with ``O_NOFOLLOW`` when
    links are not followed. Blocking I/O: call it from a thread.
    """
    real = roots.check(uri)
    assert real is not None
    try:
        st = os.stat(real)
    except OSError as exc:
        raise classify_os_error(exc, uri) from exc
    _require_regular(st, uri)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if not roots.follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(real, flags)
    except OSError as exc:
        raise classify_os_error(exc, uri) from exc
    try:
        st = os.fstat(fd)
        _require_regular(st, uri)
        opened = _opened_path(fd)
        if opened is not None and not roots.holds_path(opened):
            raise roots._outside(uri, opened)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return LocalSource(uri=uri, fd=fd, size_bytes=st.st_size)


def _require_regular(st: os.stat_result, uri: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "a special file (device, FIFO or socket)"
        raise SourceRefusedError(f"source {display_text(uri)} is {kind}, not a regular file")


def _opened_path(fd: int) -> bytes | None:
    """The path the kernel says this descriptor refers to (Linux ``/proc``), if available."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}".encode())
    except OSError:
        return None
    return None if target.endswith(b" (deleted)") else target


async def iter_local_source(source: LocalSource, chunk_bytes: int) -> AsyncIterator[bytes]:
    """Stream an opened source in chunks, reading in a worker thread."""
    loop = asyncio.get_running_loop()
    while True:
        chunk = await loop.run_in_executor(None, source.read, chunk_bytes)
        if not chunk:
            return
        yield chunk
