"""The ingest stage as plain functions: fetch once, verify, identify, describe, store.

Every thing is done once. A local (``file://``) source, opened once under the source roots
and trusted for the length of the activity, is probed in place through its descriptor
(``/proc/<pid>/fd/<n>``: the file checked is the file read, even if its path is swapped)
and then streamed once into storage, hashed on the way; there is no scratch copy. Any other
source is streamed once into local scratch (the tools need a file), hashed on the way, and
stored from there. Checks that can reject the file (content sniffing, tool probes) run
before anything is written under the asset's keys; the checksum and "did the source change"
checks, known only once the bytes have been streamed, remove the stored original again
when they fail, so a bad upload leaves no trace in storage. A good one is stored under keys
derived from the asset id, so a retried ingest overwrites its earlier attempt. File reads
and writes run in threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from damfleet.errors import (
    BadInputError,
    ChecksumMismatchError,
    EmptySourceError,
    UnsupportedMediaError,
)
from damfleet.media.detect import SNIFF_BYTES, Sniffed, sniff
from damfleet.media.probe import ProbeReport, probe_file
from damfleet.settings import Settings
from damfleet.sources import (
    LocalSource,
    SourceRoots,
    display_name,
    display_text,
    iter_local_source,
    open_local_source,
)
from damfleet.storage import CHUNK_BYTES, Storage, WriteResult, join_uri, normalize_uri
from damfleet.v1 import common_pb2, stages_pb2

__all__ = ["IngestProgress", "discard_failed_asset", "ingest_asset", "open_source", "source_filename"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: Called with (phase, bytes_done, bytes_total) as the ingest advances.
IngestProgress = Callable[[str, int, int], None]


def source_filename(uri: str) -> str:
    """The source's file name made safe to show (the stored key sanitises it further).

    The name's raw bytes may hold anything a file system allows (newlines, invalid UTF-8);
    this is the printable form from :func:`damfleet.sources.display_name`.
    """
    return display_name(uri)


@contextlib.asynccontextmanager
async def open_source(
    uri: str, *, storage: Storage, roots: SourceRoots
) -> AsyncIterator[tuple[int, AsyncIterator[bytes]]]:
    """Check ``uri`` against the source roots and open it: yields (size in bytes, chunks).

    Local files are opened once, through :func:`damfleet.sources.open_local_source`, and
    read from that descriptor, so the file checked is the file read. Object-store sources
    are checked by bucket and prefix, then read through storage.
    """
    if uri.startswith("file://"):
        async with _opened_local(uri, roots) as local:
            yield local.size_bytes, iter_local_source(local, CHUNK_BYTES)
        return
    roots.check(uri)
    info = await storage.stat(uri)
    yield info.size_bytes, storage.read(uri)


@contextlib.asynccontextmanager
async def _opened_local(uri: str, roots: SourceRoots) -> AsyncIterator[LocalSource]:
    local = await asyncio.to_thread(open_local_source, uri, roots)
    try:
        yield local
    finally:
        local.close()


def _descriptor_path(fd: int) -> Path | None:
    """A path that opens exactly this descriptor's file from a child process (Linux ``/proc``)."""
    path = Path(f"/proc/{os.getpid()}/fd/{fd}")
    return path if path.exists() else None


def _identity(fd: int) -> tuple[int, int, int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


class _Hashing:
    """Wraps a chunk stream: sha256, the first bytes and the count, reporting progress."""

    def __init__(self, chunks: AsyncIterator[bytes], phase: str, total: int, report: IngestProgress,
                 *, stop_after: int = 0) -> None:
        self.chunks, self.phase, self.total, self.report = chunks, phase, total, report
        self.stop_after = stop_after  # a local file still being written would otherwise be read for ever
        self.digest = hashlib.sha256()
        self.head = bytearray()
        self.done = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.chunks:
            self.digest.update(chunk)
            if len(self.head) < SNIFF_BYTES:
                self.head.extend(chunk[: SNIFF_BYTES - len(self.head)])
            self.done += len(chunk)
            self.report(self.phase, self.done, self.total)
            yield chunk
            if self.stop_after and self.done > self.stop_after:
                return  # it grew since it was opened: the identity check refuses it


async def ingest_asset(
    request: stages_pb2.IngestInput,
    *,
    storage: Storage,
    settings: Settings,
    scratch: Path,
    progress: IngestProgress | None = None,
) -> stages_pb2.IngestOutput:
    """Ingest one source into storage and return its AssetRecord and stored outputs."""
    report = progress or (lambda phase, done, total: None)
    source = normalize_uri(request.source_uri)
    shown = display_text(source)
    expected = request.expected_sha256.strip().lower()
    if expected and not _HEX64.match(expected):
        raise BadInputError(f"expected_sha256 is not 64 hex digits: {request.expected_sha256!r}")
    filename = source_filename(source)
    target = storage.keys(request.asset_id).original(filename)
    roots = SourceRoots.from_settings(settings)

    async def probe(path: Path, head: bytes) -> tuple[Sniffed, ProbeReport]:
        sniffed = sniff(head)
        if not sniffed.kind:
            raise UnsupportedMediaError(f"{filename} is not a supported media file: {sniffed.description}")
        report("probing", 0, 0)
        max_pixels = settings.ingest.max_image_pixels
        media, tool_report = await probe_file(
            path, sniffed, timeout_seconds=settings.ingest.tool_timeout_seconds, max_image_pixels=max_pixels,
            memory_bytes=settings.ingest.tool_memory_bytes,
        )
        return sniffed, (media, _named(tool_report, filename))

    if source.startswith("file://"):
        async with _opened_local(source, roots) as local:
            _check_size(local.size_bytes, settings, shown)
            before = await asyncio.to_thread(_identity, local.fd)
            head = await asyncio.to_thread(os.pread, local.fd, SNIFF_BYTES, 0)
            in_place = _descriptor_path(local.fd)
            if in_place is not None:
                sniffed, (media, tool_report) = await probe(in_place, head)
                stream = _Hashing(iter_local_source(local, CHUNK_BYTES), "storing", local.size_bytes, report,
                                  stop_after=local.size_bytes)
                stored = await storage.write(target, stream, content_type=media.mime_type,
                                             metadata={"asset-id": request.asset_id})
                try:
                    if await asyncio.to_thread(_identity, local.fd) != before or stream.done != before[2]:
                        raise BadInputError(f"source changed while it was being ingested: {shown}")
                    _check_sha256(stream, expected, shown)
                    return await _finish(request, storage, source, shown, filename, stream, stored,
                                         sniffed, media, tool_report, report)
                except BaseException:
                    await asyncio.shield(_forget(storage, stored.uri))
                    raise
            # No /proc to hand the descriptor to the tools: fall back to a scratch copy.
            stream = _Hashing(iter_local_source(local, CHUNK_BYTES), "reading", local.size_bytes, report,
                              stop_after=local.size_bytes)
            await _to_scratch(stream, scratch / "source.bin")
    else:
        async with open_source(source, storage=storage, roots=roots) as (size, chunks):
            _check_size(size, settings, shown)
            stream = _Hashing(chunks, "reading", size, report)
            await _to_scratch(stream, scratch / "source.bin")

    # A scratch copy: check it, then store it.
    if stream.done == 0:
        raise EmptySourceError(f"source is empty (0 bytes): {shown}")
    _check_sha256(stream, expected, shown)
    local_copy = scratch / "source.bin"
    sniffed, (media, tool_report) = await probe(local_copy, bytes(stream.head))
    report("storing", 0, stream.done)
    stored = await storage.upload_file(
        local_copy, target, content_type=media.mime_type, metadata={"asset-id": request.asset_id}
    )
    try:
        return await _finish(request, storage, source, shown, filename, stream, stored,
                             sniffed, media, tool_report, report)
    except BaseException:
        await asyncio.shield(_forget(storage, stored.uri))
        raise


def _named(tool_report: dict[str, Any], filename: str) -> dict[str, Any]:
    """The tools' report with the path they read (a descriptor or scratch path) shown as the source's name."""
    for tool, key in (("ffprobe", "format"), ("vips", "fields")):
        section = tool_report.get(tool, {}).get(key)
        if isinstance(section, dict) and "filename" in section:
            section["filename"] = filename
    exif = tool_report.get("exif")
    if isinstance(exif, dict):
        for key in ("File:FileName", "File:Directory"):
            if key in exif:
                exif[key] = filename if key == "File:FileName" else ""
    return tool_report


def _check_size(size: int, settings: Settings, shown: str) -> None:
    if size == 0:
        raise EmptySourceError(f"source is empty (0 bytes): {shown}")
    limit = settings.ingest.max_source_bytes
    if limit and size > limit:
        raise BadInputError(f"source is {size} bytes, over the {limit}-byte limit: {shown}")


def _check_sha256(stream: _Hashing, expected: str, shown: str) -> None:
    sha256 = stream.digest.hexdigest()
    if expected and sha256 != expected:
        raise ChecksumMismatchError(f"checksum mismatch for {shown}: expected sha256 {expected}, got {sha256}")


async def _to_scratch(stream: _Hashing, path: Path) -> None:
    """Stream into a local file, writing in a thread (never a blocking write on the event loop)."""
    fh = await asyncio.to_thread(open, path, "wb")
    try:
        async for chunk in stream:
            await asyncio.to_thread(fh.write, chunk)
    finally:
        await asyncio.to_thread(fh.close)


async def _forget(storage: Storage, uri: str) -> None:
    """Remove a stored original whose ingest failed after the write (best effort: a discard follows)."""
    with contextlib.suppress(Exception):
        await storage.delete(uri)


async def _finish(
    request: stages_pb2.IngestInput, storage: Storage, source: str, shown: str, filename: str,
    stream: _Hashing, stored: WriteResult, sniffed: Sniffed, media: common_pb2.MediaInfo,
    tool_report: dict[str, Any], report: IngestProgress,
) -> stages_pb2.IngestOutput:
    """Verify what was stored against what was read, write the sidecar, build the record."""
    sha256 = stream.digest.hexdigest()
    if stored.sha256 != sha256:
        raise BadInputError(f"source changed while it was being ingested: {shown}")
    done = stream.done
    sidecar = {
        "asset_id": request.asset_id,
        "source_uri": source,
        "sha256": sha256,
        "size_bytes": done,
        "original_uri": stored.uri,
        # Fixity audits filter by these and verify the original against sha256 above.
        "collection": request.metadata.collection,
        "tenant": request.metadata.tenant,
        "detected": {"kind": sniffed.kind, "mime_type": media.mime_type, "description": sniffed.description},
        **tool_report,
    }
    metadata_bytes = json.dumps(sidecar, indent=1, sort_keys=True, default=str).encode()
    technical = await storage.write_bytes(
        storage.keys(request.asset_id).technical_metadata(), metadata_bytes, content_type="application/json"
    )

    record = common_pb2.AssetRecord(
        asset_id=request.asset_id,
        source_uri=source,
        original_uri=stored.uri,
        sha256=sha256,
        size_bytes=done,
        original_filename=filename,
        media=media,
        technical_metadata_uri=technical.uri,
        profile=request.profile,
    )
    record.metadata.CopyFrom(request.metadata)
    outputs = [
        common_pb2.Output(
            uri=stored.uri, size_bytes=stored.size_bytes, sha256=stored.sha256,
            role="original", mime_type=media.mime_type, stage="ingest",
        ),
        common_pb2.Output(
            uri=technical.uri, size_bytes=technical.size_bytes, sha256=technical.sha256,
            role="technical_metadata", mime_type="application/json", stage="ingest",
        ),
    ]
    report("done", done, done)
    return stages_pb2.IngestOutput(asset=record, outputs=outputs)


async def discard_failed_asset(
    storage: Storage, asset_id: str, *, reason: str, quarantine: bool, now: float
) -> tuple[int, list[common_pb2.Output]]:
    """Remove everything a failed run stored; with ``quarantine``, keep its original first.

    A failed run must leave nothing under the asset's keys (a later listing or fixity audit
    would take it for a live asset). An archive that wants to inspect what failed sets
    ``DAMFLEET_JOBS_QUARANTINE_FAILED``: the original is copied, with a ``reason.txt``, to
    ``<root>/quarantine/<asset id>/<time>-<file>`` (the layout fixity audits use) before
    the discard. Returns the number of objects removed and the quarantined copies.
    """
    keys = storage.keys(asset_id)
    kept: list[common_pb2.Output] = []
    if quarantine:
        stamp = int(now)
        async for info in storage.list(keys.prefix + "original/"):
            name = info.uri.rsplit("/", 1)[-1]
            target = join_uri(storage.root, "quarantine", asset_id, f"{stamp}-{name}")
            written = await storage.write(target, storage.read(info.uri))
            kept.append(common_pb2.Output(uri=written.uri, size_bytes=written.size_bytes, sha256=written.sha256,
                                          role="quarantined_original", stage="ingest"))
        if kept:
            await storage.write_bytes(join_uri(storage.root, "quarantine", asset_id, f"{stamp}-reason.txt"),
                                      reason.encode(), content_type="text/plain")
    removed = await storage.delete_prefix(keys.prefix)
    return removed, kept
