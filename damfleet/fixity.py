"""Fixity as plain functions: list stored assets, re-hash originals, find damage, repair it.

Archives keep files for decades; bit rot, a bad disk or an operator's mistake changes bytes
silently. Ingest records every original's sha256 in ``metadata/technical.json`` (and, on
S3, in the object's own metadata); these functions check the stored bytes against it:

- :func:`plan_audit` lists the assets under a prefix once and writes their ids into pages
  stored next to the audit, keeping one stable *bucket* of ``N`` per audit (stratified
  sampling: ``bucket_of(asset_id, N)`` is a hash, so every asset is checked exactly once
  in ``N`` consecutive audits of a scope, whatever is added or removed meanwhile).
- :func:`verify_page` re-hashes each original of one page, streamed and throttled to a
  bytes-per-second budget (:class:`ByteThrottle`), and reports ``OK``, ``MISMATCH`` (with
  both hashes), ``MISSING`` or ``UNREADABLE``. With repair on, a damaged original is
  restored from the first verified copy (:func:`repair_sources`: replica roots, then
  delivery targets holding the delivered original) and re-verified; without a copy the
  damaged bytes move to ``<root>/quarantine/`` and the asset is marked
  (``metadata/fixity.json``), so nobody downloads them as good.
- :func:`write_report` merges the page findings into ``report.json`` and advances the
  scope's sampling cycle.

Layout, all under the storage root::

    <root>/fixity/<audit key>/pages/000000.json      asset ids of one page (FixityPage JSON)
    <root>/fixity/<audit key>/findings/000000.json   every finding of that page
    <root>/fixity/<audit key>/report.json            summary and every failure
    <root>/fixity/cycles/<scope key>.json            next bucket of a sampled scope
    <root>/quarantine/<asset id>/<time>-<file>       damaged originals taken out of service

Nothing here knows Temporal (``activities/fixity.py`` wraps it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import json_format

from damfleet.errors import BadInputError, ConfigurationError, SourceNotFoundError, TransientError
from damfleet.ingest import source_filename
from damfleet.settings import Settings
from damfleet.storage import Storage, join_uri
from damfleet.storage.keys import AssetKeys, safe_name
from damfleet.v1 import fixity_pb2

__all__ = [
    "ByteThrottle",
    "CopySource",
    "audit_prefix_for",
    "bucket_of",
    "buckets_for_percent",
    "check_original",
    "check_rendition",
    "counts_dict",
    "finding_dict",
    "hash_object",
    "marker_uri",
    "plan_audit",
    "read_marker",
    "read_page",
    "read_report",
    "repair_sources",
    "status_name",
    "verify_page",
    "write_report",
]

log = logging.getLogger(__name__)

_TECHNICAL_SUFFIX = "/metadata/technical.json"

#: Called with (asset index in the page, bytes read of that asset, its size) while hashing.
Progress = Callable[[int, int, int], None]


# ---- sampling ----------------------------------------------------------------------------


def bucket_of(asset_id: str, buckets: int) -> int:
    """The stable sampling bucket of an asset: a hash, so buckets stay balanced and an
    asset keeps its bucket for ever (adding assets never shifts the others)."""
    if buckets <= 1:
        return 0
    return int.from_bytes(hashlib.sha256(asset_id.encode()).digest()[:8], "big") % buckets


def buckets_for_percent(percent: float) -> int:
    """``--sample 5%`` -> 20 buckets: each audit checks one, every asset is checked once in 20."""
    if not 0 < percent <= 100:
        raise BadInputError(f"sample must be a percentage in (0, 100], got {percent}")
    return max(1, round(100.0 / percent))


def status_name(status: int) -> str:
    """``FIXITY_MISMATCH`` -> ``"MISMATCH"``: the word reports and the CLI show."""
    return fixity_pb2.FixityStatus.Name(status).removeprefix("FIXITY_")  # type: ignore[arg-type]


def finding_dict(finding: fixity_pb2.FixityFinding) -> dict[str, Any]:
    """A finding as the report's JSON: status and repair as words, empty fields left out."""
    data = json_format.MessageToDict(finding, preserving_proto_field_name=True)
    data["status"] = status_name(finding.status)
    data["repair"] = fixity_pb2.FixityRepair.Name(finding.repair).removeprefix("FIXITY_REPAIR_")
    if finding.size_bytes:
        data["size_bytes"] = finding.size_bytes  # protobuf JSON writes int64 as a string
    return data


def counts_dict(counts: fixity_pb2.FixityCounts) -> dict[str, int]:
    """Every count as a JSON number (protobuf JSON would write int64 as strings)."""
    return {field.name: int(getattr(counts, field.name)) for field in fixity_pb2.FixityCounts.DESCRIPTOR.fields}


# ---- throttling and hashing --------------------------------------------------------------


class ByteThrottle:
    """A token bucket over bytes read, shared by every audit in one worker process.

    ``bytes_per_second`` 0 disables it. The burst is one second's budget, so reads run at
    full speed in bursts of at most that and the long-run rate never exceeds the budget;
    ``clock`` and ``sleep`` are injectable so tests need no wall-clock timing.
    """

    def __init__(
        self,
        bytes_per_second: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.rate = max(0, int(bytes_per_second))
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.rate)
        self._last = clock()
        self._lock = asyncio.Lock()
        self.waited_seconds = 0.0

    async def consume(self, count: int) -> None:
        """Wait until ``count`` bytes may be read (a chunk larger than the burst waits for its share)."""
        if not self.rate or count <= 0:
            return
        async with self._lock:
            now = self._clock()
            self._tokens = min(float(self.rate), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= count
            if self._tokens < 0:
                delay = -self._tokens / self.rate
                self.waited_seconds += delay
                await self._sleep(delay)
                self._last = self._clock()
                self._tokens = 0.0


async def hash_object(
    chunks: AsyncIterator[bytes], *, throttle: ByteThrottle | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[str, int]:
    """sha256 and size of a stream, read chunk by chunk within the throttle's budget.

    Each chunk is hashed in a thread (hashlib releases the GIL) while the next one is
    read, so reading and hashing overlap and the event loop stays free for heartbeats.
    """
    loop = asyncio.get_running_loop()
    digest = hashlib.sha256()
    size = 0
    hashing: asyncio.Future[None] | None = None
    try:
        async for chunk in chunks:
            if throttle is not None:
                await throttle.consume(len(chunk))
            if hashing is not None:
                await hashing
            hashing = loop.run_in_executor(None, digest.update, chunk)
            size += len(chunk)
            if progress is not None:
                progress(size)
        if hashing is not None:
            await hashing
    finally:
        if hashing is not None and not hashing.done():
            await asyncio.shield(hashing)  # never leave a thread updating a digest we dropped
    return digest.hexdigest(), size


# ---- planning ----------------------------------------------------------------------------


def audit_prefix_for(storage: Storage, audit_id: str) -> str:
    """Where one audit keeps its pages, findings and report (ends with '/')."""
    key = f"{safe_name(audit_id, default='audit')[:80]}-{hashlib.sha256(audit_id.encode()).hexdigest()[:10]}"
    return join_uri(storage.root, "fixity", key) + "/"


def _scope_prefix(storage: Storage, prefix: str) -> str:
    """The listed prefix: a full URI under the root, or a path relative to it ("" = all assets)."""
    if not prefix:
        return join_uri(storage.root, "assets") + "/"
    if "://" in prefix:
        if not prefix.startswith(storage.root + "/"):
            raise BadInputError(f"fixity prefix {prefix} is outside the storage root {storage.root}")
        return prefix
    return join_uri(storage.root, prefix.lstrip("/"))


def _cycle_uri(storage: Storage, scope: str, collection: str, buckets: int) -> str:
    key = hashlib.sha256(f"{scope}\n{collection}\n{buckets}".encode()).hexdigest()[:24]
    return join_uri(storage.root, "fixity", "cycles", f"{key}.json")


async def plan_audit(
    request: fixity_pb2.FixityPlanInput,
    *,
    storage: Storage,
    settings: Settings,
    progress: Callable[[int], None] | None = None,
) -> fixity_pb2.FixityPlan:
    """List the assets (those with an ingest record) under the scope, keep this audit's
    bucket, and store their ids in pages. Idempotent: a retry rewrites the same pages."""
    scope = _scope_prefix(storage, request.prefix)
    buckets = max(1, request.sample_buckets)
    plan = fixity_pb2.FixityPlan(
        audit_prefix=audit_prefix_for(storage, request.audit_id),
        page_size=max(1, request.page_size or settings.fixity.page_size),
        buckets=buckets,
    )
    plan.pages_prefix = join_uri(plan.audit_prefix, "pages") + "/"
    if request.HasField("bucket"):
        if not 0 <= request.bucket < buckets:
            raise BadInputError(f"bucket {request.bucket} is outside 0..{buckets - 1}")
        plan.bucket = request.bucket
    elif buckets > 1:
        plan.cycle_uri = _cycle_uri(storage, scope, request.collection, buckets)
        plan.bucket = await _next_bucket(storage, plan.cycle_uri, buckets)
    page = fixity_pb2.FixityPage()

    async def flush() -> None:
        if page.asset_ids:
            uri = join_uri(plan.pages_prefix, f"{plan.page_count:06d}.json")
            await storage.write_bytes(uri, json_format.MessageToJson(page, indent=None).encode(),
                                      content_type="application/json")
            plan.page_count += 1
            del page.asset_ids[:]

    async for info in storage.list(scope):
        if not info.uri.endswith(_TECHNICAL_SUFFIX):
            continue
        asset_id = info.uri[: -len(_TECHNICAL_SUFFIX)].rsplit("/", 1)[-1]
        plan.listed_assets += 1
        if progress is not None and plan.listed_assets % 1000 == 0:
            progress(plan.listed_assets)
        if bucket_of(asset_id, buckets) != plan.bucket:
            continue
        page.asset_ids.append(asset_id)
        plan.total_assets += 1
        if len(page.asset_ids) >= plan.page_size:
            await flush()
    await flush()
    return plan


async def _next_bucket(storage: Storage, cycle_uri: str, buckets: int) -> int:
    try:
        data = json.loads(await storage.read_bytes(cycle_uri))
        return int(data.get("next_bucket", 0)) % buckets
    except SourceNotFoundError:
        return 0
    except (ValueError, TypeError) as exc:
        log.warning("fixity cycle %s unreadable (%s); starting the cycle again", cycle_uri, exc)
        return 0


async def read_page(pages_prefix: str, page: int, *, storage: Storage) -> fixity_pb2.FixityPage:
    uri = join_uri(pages_prefix, f"{page:06d}.json")
    return json_format.Parse(await storage.read_bytes(uri), fixity_pb2.FixityPage())


# ---- checking one original ---------------------------------------------------------------


@dataclass(frozen=True)
class IngestRecord:
    """What ingest recorded about an asset (its ``technical.json``), as fixity needs it."""

    asset_id: str
    sha256: str
    size_bytes: int
    original_uri: str
    collection: str
    mime_type: str


async def read_ingest_record(storage: Storage, asset_id: str) -> IngestRecord:
    """Raises SourceNotFoundError (no record) or BadInputError (a record without a sha256)."""
    keys = AssetKeys(storage.root, asset_id)
    uri = keys.technical_metadata()
    try:
        data = json.loads(await storage.read_bytes(uri))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"ingest record {uri} is not JSON: {exc}") from exc
    sha = str(data.get("sha256", "")).lower() if isinstance(data, dict) else ""
    if len(sha) != 64:
        raise BadInputError(f"ingest record {uri} has no sha256")
    original = str(data.get("original_uri", "")) or keys.original(source_filename(str(data.get("source_uri", ""))))
    return IngestRecord(
        asset_id=asset_id,
        sha256=sha,
        size_bytes=int(data.get("size_bytes", 0) or 0),
        original_uri=original,
        collection=str(data.get("collection", "")),
        mime_type=str((data.get("detected") or {}).get("mime_type", "")),
    )


async def check_original(
    storage: Storage,
    record: IngestRecord,
    *,
    throttle: ByteThrottle | None = None,
    progress: Callable[[int], None] | None = None,
) -> fixity_pb2.FixityFinding:
    """Re-hash one stored original and compare it with the ingest record and object metadata.

    Transient storage errors are raised (the activity retries); anything else that stops
    the read is an ``UNREADABLE`` finding naming the cause.
    """
    finding = fixity_pb2.FixityFinding(
        asset_id=record.asset_id, uri=record.original_uri, expected_sha256=record.sha256, checked_at=time.time(),
        role="original",
    )
    try:
        info = await storage.stat(record.original_uri)
        finding.metadata_sha256 = info.sha256
        actual, size = await hash_object(storage.read(record.original_uri), throttle=throttle, progress=progress)
    except SourceNotFoundError:
        finding.status = fixity_pb2.FIXITY_MISSING
        finding.detail = "the stored original is gone"
        return finding
    except TransientError:
        raise
    except (BadInputError, ConfigurationError, OSError) as exc:
        finding.status = fixity_pb2.FIXITY_UNREADABLE
        finding.detail = f"cannot read the original: {exc}"
        return finding
    finding.actual_sha256, finding.size_bytes = actual, size
    problems = []
    if actual != record.sha256:
        problems.append(f"content hashes to {actual}, ingest recorded {record.sha256}")
    if info.sha256 and info.sha256 != record.sha256:
        problems.append(f"object metadata records sha256 {info.sha256}")
    if record.size_bytes and size != record.size_bytes:
        problems.append(f"{size} bytes, ingest recorded {record.size_bytes}")
    finding.status = fixity_pb2.FIXITY_MISMATCH if problems else fixity_pb2.FIXITY_OK
    finding.detail = "; ".join(problems)
    return finding


async def check_rendition(
    storage: Storage, asset_id: str, uri: str, *, throttle: ByteThrottle | None = None,
) -> fixity_pb2.FixityFinding:
    """Re-hash one rendition file against the sha256 its writer recorded in the object's
    metadata (S3). Without one (file://) the read only proves it is readable: ``OK`` with
    no ``expected_sha256``."""
    finding = fixity_pb2.FixityFinding(asset_id=asset_id, uri=uri, role="rendition", checked_at=time.time())
    try:
        info = await storage.stat(uri)
        finding.expected_sha256 = finding.metadata_sha256 = info.sha256
        finding.actual_sha256, finding.size_bytes = await hash_object(storage.read(uri), throttle=throttle)
    except SourceNotFoundError:
        finding.status, finding.detail = fixity_pb2.FIXITY_MISSING, "the rendition vanished while it was audited"
        return finding
    except TransientError:
        raise
    except (BadInputError, ConfigurationError, OSError) as exc:
        finding.status, finding.detail = fixity_pb2.FIXITY_UNREADABLE, f"cannot read the rendition: {exc}"
        return finding
    if finding.expected_sha256 and finding.actual_sha256 != finding.expected_sha256:
        finding.status = fixity_pb2.FIXITY_MISMATCH
        finding.detail = (f"content hashes to {finding.actual_sha256}, its metadata records {finding.expected_sha256}; "
                          "re-run transcode to render it again")
    else:
        finding.status = fixity_pb2.FIXITY_OK
        if not finding.expected_sha256:
            finding.detail = "no recorded sha256: read back only"
    return finding


# ---- repair sources ----------------------------------------------------------------------


class CopySource(Protocol):
    """Somewhere a second copy of an original may be: a replica root or a delivery target."""

    name: str

    def locate(self, record: IngestRecord) -> str:
        """Where this source would hold the asset's original (for the report)."""

    def read(self, record: IngestRecord) -> AsyncIterator[bytes]:
        """Its bytes; raises SourceNotFoundError when the source has no copy."""


@dataclass
class ReplicaSource:
    """A second storage root configured as a replica: the same keys under another root."""

    storage: Storage
    replica_root: str

    @property
    def name(self) -> str:
        return f"replica {self.replica_root}"

    def locate(self, record: IngestRecord) -> str:
        root = self.storage.root
        if not record.original_uri.startswith(root + "/"):
            raise BadInputError(f"{record.original_uri} is not under the storage root {root}")
        return self.replica_root.rstrip("/") + record.original_uri[len(root):]

    def read(self, record: IngestRecord) -> AsyncIterator[bytes]:
        return self.storage.read(self.locate(record))


class DeliveredCopySource:
    """A delivery target (s3 or local) that received the original: its key is the one the
    distribution stage uses (``<prefix>/<asset id>/<file>``), so no receipt lookup is needed,
    and the bytes are trusted only once they hash to the recorded sha256."""

    def __init__(self, config: Any, storage: Storage) -> None:
        self.config = config
        self.name = f"delivery target {config.name!r}"
        self._storage = storage
        self._client: Any = None

    def _item(self, record: IngestRecord) -> Any:
        from damfleet.delivery import delivery_item

        return delivery_item(asset_id=record.asset_id, role="original", source_uri=record.original_uri,
                             size_bytes=record.size_bytes, sha256=record.sha256, mime_type=record.mime_type,
                             idempotency_key="fixity")

    def locate(self, record: IngestRecord) -> str:
        from damfleet.delivery import S3TargetConfig
        from damfleet.delivery.local import local_destination
        from damfleet.delivery.s3 import object_key

        item = self._item(record)
        if isinstance(self.config, S3TargetConfig):
            return f"s3://{self.config.bucket}/{object_key(self.config, item)}"
        return local_destination(self.config, item).as_uri()

    async def read(self, record: IngestRecord) -> AsyncIterator[bytes]:  # type: ignore[override]
        from damfleet.delivery import S3TargetConfig
        from damfleet.storage.s3 import split_s3_uri

        where = self.locate(record)
        if not isinstance(self.config, S3TargetConfig):
            async for chunk in self._storage.read(where):
                yield chunk
            return
        from damfleet.delivery.s3 import S3TargetClient
        from damfleet.storage.s3_io import STORAGE_WORDS, S3ErrorMap, read_object

        if self._client is None:
            self._client = S3TargetClient(self.config, max_pool_connections=4)
        client = await self._client.get()
        bucket, key = split_s3_uri(where)
        # A copy the target lacks is SourceNotFoundError (the next source is tried); an
        # outage or refusal is noted and the next source tried as well.
        errors = S3ErrorMap(STORAGE_WORDS, {"where": f"{where} on {self.name}"})
        async for chunk in read_object(client, bucket, key, errors=errors):
            yield chunk

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def repair_sources(settings: Settings, storage: Storage) -> list[CopySource]:
    """Replica roots first (same keys, cheapest), then delivery targets that can hold files.

    ``DAMFLEET_FIXITY_REPAIR_TARGETS`` names the targets to search; by default every
    configured s3 and local target is. A target that cannot be used is logged and skipped.
    """
    sources: list[CopySource] = [ReplicaSource(storage, root) for root in settings.fixity.replica_roots]
    from damfleet.delivery import LocalTargetConfig, S3TargetConfig, TargetRegistry

    registry = TargetRegistry.from_settings(settings)
    for name in settings.fixity.repair_targets or registry.names():
        try:
            config = registry.get(name)
        except ConfigurationError as exc:
            log.warning("fixity: delivery target %s not searched for copies: %s", name, exc)
            continue
        if isinstance(config, (S3TargetConfig, LocalTargetConfig)):
            sources.append(DeliveredCopySource(config, storage))
    return sources


async def close_sources(sources: Sequence[CopySource]) -> None:
    for source in sources:
        closer = getattr(source, "aclose", None)
        if closer is not None:
            await closer()


# ---- repair, quarantine, marking ---------------------------------------------------------


def marker_uri(storage: Storage, asset_id: str) -> str:
    """The asset's fixity mark (``metadata/fixity.json``): set when damage was found."""
    return join_uri(AssetKeys(storage.root, asset_id).prefix, "metadata", "fixity.json")


async def read_marker(storage: Storage, asset_id: str) -> dict[str, Any] | None:
    """The asset's fixity mark, or None when no audit ever found it damaged."""
    try:
        return json.loads(await storage.read_bytes(marker_uri(storage, asset_id)))
    except SourceNotFoundError:
        return None


async def _mark(storage: Storage, finding: fixity_pb2.FixityFinding, state: str) -> None:
    body = {"state": state, "at": time.time(), "finding": finding_dict(finding)}
    await storage.write_bytes(marker_uri(storage, finding.asset_id), json.dumps(body, indent=1).encode(),
                              content_type="application/json")


async def repair(
    storage: Storage,
    record: IngestRecord,
    finding: fixity_pb2.FixityFinding,
    *,
    sources: Sequence[CopySource],
    scratch: Path,
    throttle: ByteThrottle | None = None,
) -> None:
    """Restore a damaged or missing original from the first copy that hashes to the recorded
    sha256 and re-verify it; otherwise quarantine the damaged bytes and mark the asset.

    Updates ``finding`` (repair, repaired_from, quarantine_uri, detail). Idempotent: a retry
    after a restore finds the original OK; after a quarantine it finds it missing and marked.
    """
    notes: list[str] = []
    local = scratch / f"repair-{record.asset_id}.bin"
    for source in sources:
        try:
            where = source.locate(record)
            digest = hashlib.sha256()
            loop = asyncio.get_running_loop()
            fh = await loop.run_in_executor(None, open, local, "wb")
            try:
                async for chunk in source.read(record):
                    if throttle is not None:
                        await throttle.consume(len(chunk))
                    digest.update(chunk)
                    await loop.run_in_executor(None, fh.write, chunk)
            finally:
                fh.close()
        except SourceNotFoundError:
            continue
        except (BadInputError, ConfigurationError, TransientError, OSError) as exc:
            notes.append(f"{source.name}: {exc}")
            continue
        if digest.hexdigest() != record.sha256:
            notes.append(f"{source.name} copy {where} hashes to {digest.hexdigest()}")
            continue
        if finding.status == fixity_pb2.FIXITY_MISMATCH:
            finding.quarantine_uri = await _quarantine(storage, finding, delete=False)
        await storage.upload_file(local, record.original_uri, content_type=record.mime_type,
                                  metadata={"asset-id": record.asset_id})
        local.unlink(missing_ok=True)
        again = await check_original(storage, record, throttle=throttle)
        if again.status != fixity_pb2.FIXITY_OK:
            notes.append(f"restored from {where} but re-verification found {status_name(again.status)}")
            continue
        finding.repair = fixity_pb2.FIXITY_REPAIR_REPAIRED
        finding.repaired_from = where
        finding.detail = "; ".join([finding.detail, f"restored from {source.name} ({where}) and re-verified"]
                                   + notes).strip("; ")
        await _mark(storage, finding, "REPAIRED")
        return
    local.unlink(missing_ok=True)
    previous = await read_marker(storage, record.asset_id)
    if finding.status == fixity_pb2.FIXITY_MISMATCH:
        finding.quarantine_uri = await _quarantine(storage, finding, delete=True)
        finding.repair = fixity_pb2.FIXITY_REPAIR_QUARANTINED
    else:
        finding.repair = fixity_pb2.FIXITY_REPAIR_MARKED
        if previous and previous.get("finding", {}).get("quarantine_uri"):
            finding.quarantine_uri = previous["finding"]["quarantine_uri"]
            notes.insert(0, "quarantined by an earlier audit")
    notes.insert(0, "no verified copy found" if sources else "no repair source configured")
    finding.detail = "; ".join([finding.detail, *notes]).strip("; ")
    await _mark(storage, finding, "DAMAGED")


async def _quarantine(storage: Storage, finding: fixity_pb2.FixityFinding, *, delete: bool) -> str:
    """Copy the damaged bytes out of service (kept as evidence); optionally remove them."""
    name = finding.uri.rsplit("/", 1)[-1]
    target = join_uri(storage.root, "quarantine", finding.asset_id, f"{int(finding.checked_at)}-{name}")
    await storage.write(target, storage.read(finding.uri), metadata={"asset-id": finding.asset_id})
    if delete:
        await storage.delete(finding.uri)
    return target


# ---- one page ----------------------------------------------------------------------------


def _count(counts: fixity_pb2.FixityCounts, finding: fixity_pb2.FixityFinding) -> None:
    """Originals count in ``checked``/``ok``; every damaged object (original or rendition)
    counts in ``mismatch``/``missing``/``unreadable``, so alerts see rendition damage too."""
    counts.bytes_read += finding.size_bytes
    if finding.role == "rendition":
        counts.renditions_checked += 1
        if not finding.expected_sha256 and finding.status == fixity_pb2.FIXITY_OK:
            counts.renditions_unverified += 1
        if finding.status == fixity_pb2.FIXITY_OK:
            return
    else:
        counts.checked += 1
    field = {
        fixity_pb2.FIXITY_OK: "ok", fixity_pb2.FIXITY_MISMATCH: "mismatch",
        fixity_pb2.FIXITY_MISSING: "missing", fixity_pb2.FIXITY_UNREADABLE: "unreadable",
    }[finding.status]
    setattr(counts, field, getattr(counts, field) + 1)
    if finding.repair == fixity_pb2.FIXITY_REPAIR_REPAIRED:
        counts.repaired += 1
    elif finding.repair in (fixity_pb2.FIXITY_REPAIR_QUARANTINED, fixity_pb2.FIXITY_REPAIR_MARKED):
        counts.quarantined += 1


def _asset_progress(progress: Progress | None, index: int, size: int) -> Callable[[int], None] | None:
    if progress is None:
        return None
    return lambda done: progress(index, done, size)


async def verify_page(
    request: fixity_pb2.FixityPageInput,
    *,
    storage: Storage,
    throttle: ByteThrottle | None = None,
    sources: Sequence[CopySource] = (),
    scratch: Path,
    progress: Progress | None = None,
    on_failure: Callable[[fixity_pb2.FixityFinding], None] | None = None,
    checkpoint_seconds: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
) -> fixity_pb2.FixityPageResult:
    """Check every asset of one stored page and store its findings; repair when asked.

    Assets are checked one after another: the throttle, not parallelism, sets the pace,
    and parallelism across pages comes from the workflow's window. Every
    ``checkpoint_seconds`` the findings so far are stored beside the page's findings, so
    a retried page (a lost worker, a restart) resumes after the last checkpoint instead of
    re-reading hours of originals.
    """
    page = await read_page(request.pages_prefix, request.page, storage=storage)
    findings_uri = join_uri(request.findings_prefix, f"{request.page:06d}.json")
    partial_uri = findings_uri + ".partial"
    result, findings, start = await _resume(storage, partial_uri, request.page)
    if start:
        log.info("fixity %s page %d: resuming at asset %d of %d", request.audit_id, request.page, start,
                 len(page.asset_ids))
    last_checkpoint = clock()
    for index, asset_id in enumerate(page.asset_ids):
        if index < start:
            continue
        if clock() - last_checkpoint >= checkpoint_seconds:
            await _checkpoint(storage, partial_uri, index, result, findings)
            last_checkpoint = clock()
        try:
            record = await read_ingest_record(storage, asset_id)
        except SourceNotFoundError:
            finding = fixity_pb2.FixityFinding(asset_id=asset_id, status=fixity_pb2.FIXITY_UNREADABLE,
                                               detail="the ingest record (technical.json) is gone",
                                               checked_at=time.time(), role="original")
            record = None
        except BadInputError as exc:
            finding = fixity_pb2.FixityFinding(asset_id=asset_id, status=fixity_pb2.FIXITY_UNREADABLE,
                                               detail=str(exc), checked_at=time.time(), role="original")
            record = None
        asset_findings = [finding] if record is None else []
        if record is not None:
            if request.collection and record.collection != request.collection:
                result.counts.skipped += 1
                continue
            finding = await check_original(storage, record, throttle=throttle,
                                           progress=_asset_progress(progress, index, record.size_bytes))
            if request.repair and finding.status in (fixity_pb2.FIXITY_MISMATCH, fixity_pb2.FIXITY_MISSING):
                await repair(storage, record, finding, sources=sources, scratch=scratch, throttle=throttle)
            asset_findings.append(finding)
            if request.include_renditions:
                async for info in storage.list(AssetKeys(storage.root, asset_id).rendition_prefix()):
                    asset_findings.append(await check_rendition(storage, asset_id, info.uri, throttle=throttle))
        for finding in asset_findings:
            if finding.status != fixity_pb2.FIXITY_OK:
                if request.repair and finding.repair == fixity_pb2.FIXITY_REPAIR_NONE and finding.role != "rendition":
                    finding.repair = fixity_pb2.FIXITY_REPAIR_MARKED
                    await _mark(storage, finding, "DAMAGED")
                result.failures.append(finding)
                if on_failure is not None:
                    on_failure(finding)
                log.warning("fixity %s: %s %s %s %s", request.audit_id, status_name(finding.status), asset_id,
                            finding.role, finding.detail)
            _count(result.counts, finding)
            findings.append(finding_dict(finding))
    result.findings_uri = findings_uri
    await storage.write_bytes(findings_uri, json.dumps(findings).encode(), content_type="application/json")
    await storage.delete(partial_uri)
    return result


async def _checkpoint(storage: Storage, uri: str, next_index: int, result: fixity_pb2.FixityPageResult,
                      findings: list[dict[str, Any]]) -> None:
    body = {"next_index": next_index, "result": json_format.MessageToDict(result), "findings": findings}
    await storage.write_bytes(uri, json.dumps(body).encode(), content_type="application/json")


async def _resume(storage: Storage, uri: str, page: int
                  ) -> tuple[fixity_pb2.FixityPageResult, list[dict[str, Any]], int]:
    """The page's state at its last checkpoint, or a fresh start."""
    try:
        body = json.loads(await storage.read_bytes(uri))
        result = json_format.ParseDict(body["result"], fixity_pb2.FixityPageResult())
        return result, list(body["findings"]), int(body["next_index"])
    except SourceNotFoundError:
        pass
    except (ValueError, KeyError, TypeError, json_format.ParseError) as exc:
        log.warning("fixity checkpoint %s unusable (%s); verifying the page from its start", uri, exc)
    return fixity_pb2.FixityPageResult(page=page), [], 0


# ---- the report --------------------------------------------------------------------------


async def write_report(request: fixity_pb2.FixityReportInput, *, storage: Storage) -> str:
    """Merge every page's findings into ``report.json`` (failures listed, OKs counted) and
    advance the scope's sampling cycle to the next bucket."""
    plan = request.plan
    failures: list[dict[str, Any]] = []
    findings_prefix = join_uri(plan.audit_prefix, "findings") + "/"
    for page in range(plan.page_count):
        uri = join_uri(findings_prefix, f"{page:06d}.json")
        try:
            entries = json.loads(await storage.read_bytes(uri))
        except SourceNotFoundError:
            continue
        failures.extend(e for e in entries if e.get("status") != "OK")
    asked = json_format.MessageToDict(request.request, preserving_proto_field_name=True)
    asked.pop("state", None)
    counts = counts_dict(request.counts)
    report = {
        "audit_id": request.audit_id,
        "started_at": request.started_at,
        "finished_at": time.time(),
        "request": asked,
        "bucket": plan.bucket,
        "buckets": plan.buckets,
        "listed_assets": plan.listed_assets,
        "total_assets": plan.total_assets,
        "runs": request.runs,
        "counts": counts,
        "failures": failures,
        "findings_prefix": findings_prefix,
    }
    uri = join_uri(plan.audit_prefix, "report.json")
    await storage.write_bytes(uri, json.dumps(report, indent=1).encode(), content_type="application/json")
    if plan.cycle_uri:
        cycle = {"next_bucket": (plan.bucket + 1) % plan.buckets, "buckets": plan.buckets,
                 "last_audit": request.audit_id, "at": time.time()}
        await storage.write_bytes(plan.cycle_uri, json.dumps(cycle).encode(), content_type="application/json")
    return uri


async def read_report(storage: Storage, audit_id: str) -> dict[str, Any]:
    """The stored report of a finished audit; SourceNotFoundError names the audit."""
    uri = join_uri(audit_prefix_for(storage, audit_id), "report.json")
    try:
        return json.loads(await storage.read_bytes(uri))
    except SourceNotFoundError:
        raise SourceNotFoundError(f"no fixity report for audit {audit_id!r} (looked at {uri})") from None
