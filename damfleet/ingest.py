"""The ingest stage as plain functions: fetch once, verify, identify, describe, store.

The source is streamed exactly once, into local scratch, computing its sha256 on the
way. Everything that can reject the file (checksum, content sniffing, tool probes)
runs against that scratch copy *before* anything is written under the asset's keys, so
a bad upload leaves no trace in storage; a good one is stored under keys derived from
the asset id, so a retried ingest overwrites its earlier attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from damfleet.errors import (
    BadInputError,
    ChecksumMismatchError,
    EmptySourceError,
    UnsupportedMediaError,
)
from damfleet.media.detect import SNIFF_BYTES, sniff
from damfleet.media.probe import probe_file
from damfleet.settings import Settings
from damfleet.sources import SourceRoots, display_name, display_text, iter_local_source, open_local_source
from damfleet.storage import CHUNK_BYTES, Storage, join_uri, normalize_uri
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
        loop = asyncio.get_running_loop()
        local = await loop.run_in_executor(None, open_local_source, uri, roots)
        try:
            yield local.size_bytes, iter_local_source(local, CHUNK_BYTES)
        finally:
            local.close()
        return
    roots.check(uri)
    info = await storage.stat(uri)
    yield info.size_bytes, storage.read(uri)


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

    # One streaming pass over the source: hash, sniff the head, keep a local copy.
    filename = source_filename(source)
    local = scratch / "source.bin"
    digest = hashlib.sha256()
    head = bytearray()
    done = 0
    async with open_source(source, storage=storage, roots=SourceRoots.from_settings(settings)) as (size, chunks):
        if size == 0:
            raise EmptySourceError(f"source is empty (0 bytes): {shown}")
        limit = settings.ingest.max_source_bytes
        if limit and size > limit:
            raise BadInputError(f"source is {size} bytes, over the {limit}-byte limit: {shown}")
        with open(local, "wb") as fh:
            async for chunk in chunks:
                digest.update(chunk)
                if len(head) < SNIFF_BYTES:
                    head.extend(chunk[: SNIFF_BYTES - len(head)])
                fh.write(chunk)
                done += len(chunk)
                report("reading", done, size)
    if done == 0:
        raise EmptySourceError(f"source is empty (0 bytes): {shown}")
    sha256 = digest.hexdigest()
    if expected and sha256 != expected:
        raise ChecksumMismatchError(f"checksum mismatch for {shown}: expected sha256 {expected}, got {sha256}")

    sniffed = sniff(bytes(head))
    if not sniffed.kind:
        raise UnsupportedMediaError(f"{filename} is not a supported media file: {sniffed.description}")
    report("probing", done, done)
    max_pixels = settings.ingest.max_image_pixels
    media, tool_report = await probe_file(
        local, sniffed, timeout_seconds=settings.ingest.tool_timeout_seconds, max_image_pixels=max_pixels,
        memory_bytes=settings.ingest.tool_memory_bytes,
    )

    keys = storage.keys(request.asset_id)
    report("storing", 0, done)
    stored = await storage.upload_file(
        local, keys.original(filename), content_type=media.mime_type, metadata={"asset-id": request.asset_id}
    )
    if stored.sha256 != sha256:
        raise BadInputError(f"source changed while it was being ingested: {shown}")
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
    technical = await storage.write_bytes(keys.technical_metadata(), metadata_bytes, content_type="application/json")

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
