"""Batch bookkeeping in storage: manifest pages, inbox ledgers and the content dedup index.

Plain async functions over :class:`damfleet.storage.Storage`; they know nothing of
Temporal (``activities/catalog.py`` wraps them). Everything lives under the storage root::

    <root>/batches/<batch id>/pages/000000.json    one ManifestPage (protobuf JSON) per page
    <root>/rescan/<inbox key>/ledger.json          objects an inbox rescan has already seen
    <root>/dedup/<collection key>/<profile>/<sha[:2]>/<sha256>.json   the first asset with that
                                                   content and profile (a run that fails releases it)

Why pages: a 100,000-row manifest is parsed once into pages of a few hundred rows, and
the batch workflow reads one page per activity call, so no payload or history event
grows with the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf import json_format

from damfleet import manifest
from damfleet.errors import BadInputError, SourceNotFoundError
from damfleet.settings import Settings
from damfleet.sources import SourceRoots
from damfleet.storage import Storage, join_uri
from damfleet.storage.keys import safe_name
from damfleet.v1 import common_pb2, jobs_pb2, stages_pb2

log = logging.getLogger(__name__)

__all__ = [
    "claim_content",
    "claim_while_ingesting",
    "dedup_index_uri",
    "ledger_uri_for",
    "list_new_sources",
    "pages_prefix_for",
    "prepare_manifest",
    "read_page",
    "release_content",
]

Progress = Callable[[int], None]


def pages_prefix_for(storage: Storage, batch_id: str) -> str:
    return join_uri(storage.root, "batches", safe_name(batch_id, default="batch"), "pages") + "/"


def ledger_uri_for(storage: Storage, source_prefix: str) -> str:
    """Default ledger of an inbox: one per prefix, keyed by its hash."""
    key = hashlib.sha256(source_prefix.encode()).hexdigest()[:24]
    return join_uri(storage.root, "rescan", key, "ledger.json")


def dedup_index_uri(storage: Storage, collection: str, sha256: str, profile: str = "") -> str:
    """Index entry for content ``sha256`` processed with ``profile`` in ``collection``.

    The profile is part of the key: the same bytes under ``--profile web`` need the web
    renditions, so they are new work, not a duplicate of the ``default`` asset.
    """
    key = f"{safe_name(collection, default='default')[:40]}-{hashlib.sha256(collection.encode()).hexdigest()[:12]}"
    return join_uri(storage.root, "dedup", key, safe_name(profile or "default", default="default")[:40],
                    sha256[:2], f"{sha256}.json")


class _PageWriter:
    """Collects rows and writes them to storage one page at a time."""

    def __init__(self, storage: Storage, prefix: str, page_size: int, defaults: common_pb2.AssetMetadata,
                 bad_rows_kept: int) -> None:
        self.storage = storage
        self.prefix = prefix
        self.page_size = max(1, page_size)
        self.defaults = defaults
        self.bad_rows_kept = bad_rows_kept
        self.page = jobs_pb2.ManifestPage()
        self.result = jobs_pb2.PreparedBatch(pages_prefix=prefix, page_size=self.page_size)

    async def add(self, item: manifest.Row | manifest.BadRow) -> None:
        if isinstance(item, manifest.BadRow):
            self.result.bad_row_count += 1
            if len(self.result.bad_rows) < self.bad_rows_kept:
                self.result.bad_rows.append(jobs_pb2.BadRow(line=item.line, reason=item.reason[:500]))
            return
        self.page.rows.append(
            jobs_pb2.ManifestRow(
                line=item.line,
                source_uri=item.source_uri,
                expected_sha256=item.expected_sha256,
                profile=item.profile,
                metadata=common_pb2.AssetMetadata(
                    title=item.title,
                    collection=item.collection or self.defaults.collection,
                    tenant=item.tenant or self.defaults.tenant,
                    extra={**dict(self.defaults.extra), **item.extra},
                ),
            )
        )
        self.result.total_rows += 1
        if len(self.page.rows) >= self.page_size:
            await self.flush()

    async def flush(self) -> None:
        if not self.page.rows:
            return
        uri = join_uri(self.prefix, f"{self.result.page_count:06d}.json")
        await self.storage.write_bytes(uri, json_format.MessageToJson(self.page, indent=None).encode(),
                                       content_type="application/json")
        self.result.page_count += 1
        self.page = jobs_pb2.ManifestPage()


async def prepare_manifest(
    request: jobs_pb2.PrepareBatchInput,
    *,
    storage: Storage,
    settings: Settings,
    scratch: Path,
    progress: Progress | None = None,
) -> jobs_pb2.PreparedBatch:
    """Parse a CSV/XLSX manifest into stored pages; bad rows are counted and listed, not fatal."""
    uri = request.manifest_uri
    fmt = manifest.manifest_format(uri)
    local = scratch / f"manifest.{fmt}"
    try:
        SourceRoots.from_settings(settings).check(uri)  # a manifest is a source too: rows are echoed back
        await storage.download_file(uri, local)
    except SourceNotFoundError as exc:
        raise SourceNotFoundError(f"manifest {uri} not found") from exc
    except (OSError, PermissionError) as exc:
        raise BadInputError(f"manifest {uri} cannot be read: {exc}") from exc
    base_uri = uri.rsplit("/", 1)[0]
    writer = _PageWriter(
        storage, pages_prefix_for(storage, request.batch_id), request.page_size or settings.jobs.manifest_page_size,
        request.defaults, settings.jobs.bad_rows_kept,
    )
    items = manifest.iter_manifest(local, base_uri=base_uri, fmt=fmt, max_rows=settings.jobs.manifest_max_rows)
    for count, item in enumerate(items, start=1):
        await writer.add(item)
        if progress is not None and count % 1000 == 0:
            progress(count)
    await writer.flush()
    return writer.result


async def list_new_sources(
    request: jobs_pb2.PrepareBatchInput,
    *,
    storage: Storage,
    settings: Settings,
    now: float | None = None,
    progress: Progress | None = None,
) -> jobs_pb2.PreparedBatch:
    """Page every object under a prefix that the ledger has not seen (all when no ledger).

    An object counts as seen by URI, size and modification time, so a file replaced with
    new content is picked up again. Objects modified within ``settle_seconds`` are left
    for the next scan (they may still be uploading). The ledger is updated after the pages
    are written: a crash in between re-lists rather than loses objects.
    """
    prefix = request.source_prefix
    if not prefix.endswith("/"):
        prefix += "/"
    SourceRoots.from_settings(settings).check(prefix, strict=False)  # listing names files: only inside roots
    seen: dict[str, list[float]] = {}
    if request.ledger_uri and await storage.exists(request.ledger_uri):
        seen = json.loads(await storage.read_bytes(request.ledger_uri))
    cutoff = (now if now is not None else time.time()) - request.settle_seconds
    writer = _PageWriter(
        storage, pages_prefix_for(storage, request.batch_id), request.page_size or settings.jobs.manifest_page_size,
        request.defaults, settings.jobs.bad_rows_kept,
    )
    current: dict[str, list[float]] = {}
    line = 0
    async for info in storage.list(prefix):
        line += 1
        if request.settle_seconds and info.modified_at > cutoff:
            continue
        signature = [float(info.size_bytes), round(info.modified_at, 3)]
        current[info.uri] = signature
        if seen.get(info.uri) == signature:
            continue
        if info.size_bytes == 0:
            await writer.add(manifest.BadRow(line, f"{info.uri}: empty object"))
            continue
        await writer.add(manifest.Row(line=line, source_uri=info.uri))
        if progress is not None and line % 1000 == 0:
            progress(line)
    await writer.flush()
    if request.ledger_uri:
        # Keep entries for objects still present; forget deleted ones.
        await storage.write_bytes(request.ledger_uri, json.dumps(current).encode(), content_type="application/json")
    return writer.result


async def read_page(request: jobs_pb2.ManifestPageInput, *, storage: Storage) -> jobs_pb2.ManifestPage:
    """One stored page of a prepared batch."""
    uri = join_uri(request.pages_prefix, f"{request.page:06d}.json")
    data = await storage.read_bytes(uri)
    return json_format.Parse(data, jobs_pb2.ManifestPage())


async def claim_content(request: jobs_pb2.ClaimContentInput, *, storage: Storage) -> jobs_pb2.ClaimContentOutput:
    """Record ``request.asset`` as its collection's copy of its content, or name the existing one.

    Idempotent: the same asset claiming again is not a duplicate. An entry whose asset was
    since discarded (its stored original is gone) is taken over. Two first copies racing
    are settled by reading the entry back after writing; a narrow window remains in which
    both win, which costs one extra processing run, never a lost asset.
    """
    asset = request.asset
    if not asset.sha256:
        raise BadInputError(f"asset {asset.asset_id} has no sha256 to deduplicate on")
    uri = dedup_index_uri(storage, asset.metadata.collection, asset.sha256, asset.profile)
    existing = await _read_entry(storage, uri)
    if existing is not None and await _still_valid(storage, existing, asset.asset_id):
        return existing
    entry = {
        "workflow_id": request.workflow_id,
        "asset": json.loads(json_format.MessageToJson(asset)),
        "claimed_at": time.time(),
    }
    await storage.write_bytes(uri, json.dumps(entry).encode(), content_type="application/json")
    winner = await _read_entry(storage, uri)
    if winner is not None and winner.existing.asset_id != asset.asset_id:
        return winner
    return jobs_pb2.ClaimContentOutput(duplicate=False)


async def claim_while_ingesting(ingested: stages_pb2.IngestOutput, workflow_id: str, *, storage: Storage) -> None:
    """The dedup claim made by ingest itself, right after the original is stored: sets
    ``ingested.claim``, and leaves it unset when the claim failed.

    A claim is two small storage reads and a write, but as its own activity it costs the
    asset's run a whole task hop (a workflow task and an activity dispatch, ~15 ms of
    orchestration). Dedup saves work and never blocks an upload, so a failure here does not
    fail the ingest: the workflow sees no claim and runs ``claim_content`` itself, with its
    own retry policy. Idempotent like :func:`claim_content`: a retried ingest claims again.
    """
    request = jobs_pb2.ClaimContentInput(asset=ingested.asset, workflow_id=workflow_id)
    try:
        ingested.claim.CopyFrom(await claim_content(request, storage=storage))
    except Exception as err:  # noqa: BLE001 - any failure defers to the workflow's own claim activity
        log.warning("dedup claim of asset %s during ingest failed (the run claims separately): %s",
                    ingested.asset.asset_id, err)


async def release_content(request: jobs_pb2.ClaimContentInput, *, storage: Storage) -> bool:
    """Drop ``request.asset``'s dedup claim, if it holds one; returns whether it did.

    A run that fails or is cancelled after claiming its content must not stay the
    collection's copy: the same bytes submitted again would be reported COMPLETED as a
    duplicate of an asset with no outputs. Another asset's claim is left alone.
    """
    asset = request.asset
    if not asset.sha256:
        return False
    uri = dedup_index_uri(storage, asset.metadata.collection, asset.sha256, asset.profile)
    entry = await _read_entry(storage, uri)
    if entry is None or entry.existing.asset_id != asset.asset_id:
        return False
    return await storage.delete(uri)


async def _read_entry(storage: Storage, uri: str) -> jobs_pb2.ClaimContentOutput | None:
    try:
        data = json.loads(await storage.read_bytes(uri))
    except SourceNotFoundError:
        return None
    record = json_format.ParseDict(data.get("asset", {}), common_pb2.AssetRecord(), ignore_unknown_fields=True)
    return jobs_pb2.ClaimContentOutput(
        duplicate=True, existing=record, existing_workflow_id=str(data.get("workflow_id", ""))
    )


async def _still_valid(storage: Storage, entry: jobs_pb2.ClaimContentOutput, asset_id: str) -> bool:
    if entry.existing.asset_id == asset_id:
        return False  # our own earlier claim (an activity retry): not a duplicate
    return bool(entry.existing.original_uri) and await storage.exists(entry.existing.original_uri)

