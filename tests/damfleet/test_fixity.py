"""Fixity core functions on file:// and s3:// (moto) storage, with originals stored by the real ingest.

Damage is injected the way it happens: a byte flipped in place (on S3 the object is
rewritten with its old metadata, as bit rot or an operator would leave it), an object
deleted. Repair copies come from a real S3 delivery of the original, or a replica root.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from damfleet import fixity, ingest
from damfleet.delivery import Distributor, delivery_item
from damfleet.errors import BadInputError, TransientError
from damfleet.settings import Settings
from damfleet.storage import Storage, path_from_uri
from damfleet.storage.s3 import split_s3_uri
from damfleet.v1 import common_pb2, fixity_pb2, stages_pb2
from tests.conftest import make_settings


def _boto(s3: dict[str, str]) -> Any:
    return boto3.client("s3", endpoint_url=s3["endpoint"], aws_access_key_id=s3["access_key"],
                        aws_secret_access_key=s3["secret_key"], region_name=s3["region"])


class World:
    """One storage root (file or s3) with helpers to ingest, damage and audit originals."""

    def __init__(self, kind: str, tmp_path: Path, s3: dict[str, str] | None, bucket: str, env: dict[str, str]) -> None:
        self.kind, self.tmp_path, self.s3, self.bucket = kind, tmp_path, s3, bucket
        self.env = dict(env)
        if kind == "s3":
            assert s3 is not None
            self.env.update(DAMFLEET_STORAGE_ROOT=f"s3://{bucket}/fleet",
                            DAMFLEET_STORAGE_S3_ENDPOINT_URL=s3["endpoint"],
                            DAMFLEET_STORAGE_S3_ACCESS_KEY_ID=s3["access_key"],
                            DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY=s3["secret_key"])
        self.settings: Settings = make_settings(tmp_path, **self.env)
        self.storage = Storage.from_settings(self.settings)
        self.page = 0

    async def ingest(self, source: Path, asset_id: str, collection: str = "") -> common_pb2.AssetRecord:
        scratch = self.settings.scratch_path / asset_id
        scratch.mkdir(parents=True, exist_ok=True)
        request = stages_pb2.IngestInput(asset_id=asset_id, source_uri=str(source), profile="archive",
                                         metadata=common_pb2.AssetMetadata(collection=collection))
        out = await ingest.ingest_asset(request, storage=self.storage, settings=self.settings, scratch=scratch)
        return out.asset

    def read_raw(self, uri: str) -> bytes:
        if self.kind == "file":
            return path_from_uri(uri).read_bytes()
        bucket, key = split_s3_uri(uri)
        return _boto(self.s3).get_object(Bucket=bucket, Key=key)["Body"].read()

    def flip_byte(self, uri: str, offset: int = 100) -> bytes:
        """Flip one bit in place, keeping the object's metadata (its recorded sha256) as it was."""
        if self.kind == "file":
            path = path_from_uri(uri)
            data = bytearray(path.read_bytes())
            data[offset] ^= 0x01
            path.write_bytes(bytes(data))
            return bytes(data)
        bucket, key = split_s3_uri(uri)
        client = _boto(self.s3)
        head = client.head_object(Bucket=bucket, Key=key)
        data = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        data[offset] ^= 0x01
        client.put_object(Bucket=bucket, Key=key, Body=bytes(data), Metadata=head["Metadata"])
        return bytes(data)

    async def audit(self, asset_ids: list[str], *, repair: bool = False, collection: str = "",
                    sources: list[fixity.CopySource] | None = None,
                    renditions: bool = False) -> fixity_pb2.FixityPageResult:
        """Verify these assets as one stored page, like the page activity does."""
        self.page += 1
        prefix = fixity.audit_prefix_for(self.storage, f"test-{self.page}")
        await self.storage.write_bytes(f"{prefix}pages/000000.json",
                                       json.dumps({"assetIds": asset_ids}).encode())
        request = fixity_pb2.FixityPageInput(audit_id=f"test-{self.page}", pages_prefix=f"{prefix}pages/", page=0,
                                             findings_prefix=f"{prefix}findings/", repair=repair,
                                             collection=collection, include_renditions=renditions)
        scratch = self.tmp_path / "repair-scratch"
        scratch.mkdir(exist_ok=True)
        return await fixity.verify_page(request, storage=self.storage, scratch=scratch,
                                        sources=sources if sources is not None else
                                        fixity.repair_sources(self.settings, self.storage))


@pytest.fixture(params=["file", "s3"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    s3 = bucket = None
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_server")
        bucket = request.getfixturevalue("s3_bucket")
    w = World(request.param, tmp_path, s3, bucket or "", {})
    yield w
    await w.storage.aclose()


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from damfleet import samples

    folder = tmp_path_factory.mktemp("fixity-media")
    return [samples.make_image(folder / f"img{i}.png", 160 + 16 * i, 120) for i in range(2)]


def _by_asset(result: fixity_pb2.FixityPageResult) -> dict[str, fixity_pb2.FixityFinding]:
    return {f.asset_id: f for f in result.failures}


async def test_flipped_byte_is_a_mismatch_with_both_hashes_and_a_deleted_original_is_missing(
    world: World, images: list[Path]
) -> None:
    good = await world.ingest(images[0], "asset-flip")
    gone = await world.ingest(images[1], "asset-gone")
    clean = await world.audit(["asset-flip", "asset-gone"])
    assert (clean.counts.checked, clean.counts.ok, len(clean.failures)) == (2, 2, 0)
    assert clean.counts.bytes_read == good.size_bytes + gone.size_bytes

    flipped = world.flip_byte(good.original_uri)
    await world.storage.delete(gone.original_uri)
    result = await world.audit(["asset-flip", "asset-gone"])

    found = _by_asset(result)
    mismatch = found["asset-flip"]
    assert mismatch.status == fixity_pb2.FIXITY_MISMATCH
    assert mismatch.expected_sha256 == good.sha256
    assert mismatch.actual_sha256 == hashlib.sha256(flipped).hexdigest() != good.sha256
    assert good.sha256 in mismatch.detail and mismatch.actual_sha256 in mismatch.detail
    if world.kind == "s3":
        assert mismatch.metadata_sha256 == good.sha256, "the object's own metadata still records the ingest hash"
    assert found["asset-gone"].status == fixity_pb2.FIXITY_MISSING
    assert found["asset-gone"].uri == gone.original_uri
    assert (result.counts.mismatch, result.counts.missing, result.counts.ok) == (1, 1, 0)
    assert mismatch.repair == fixity_pb2.FIXITY_REPAIR_NONE, "report-only audits change nothing"
    assert world.read_raw(good.original_uri) == flipped
    stored = json.loads(await world.storage.read_bytes(result.findings_uri))
    assert sorted(f["status"] for f in stored) == ["MISMATCH", "MISSING"]


async def test_without_a_copy_the_damaged_original_is_quarantined_and_the_asset_marked(
    world: World, images: list[Path]
) -> None:
    good = await world.ingest(images[0], "asset-rot")
    flipped = world.flip_byte(good.original_uri)

    result = await world.audit(["asset-rot"], repair=True, sources=[])
    finding = result.failures[0]
    assert (finding.status, finding.repair) == (fixity_pb2.FIXITY_MISMATCH, fixity_pb2.FIXITY_REPAIR_QUARANTINED)
    assert "no repair source configured" in finding.detail
    assert finding.quarantine_uri.startswith(world.storage.root + "/quarantine/asset-rot/")
    assert world.read_raw(finding.quarantine_uri) == flipped, "the damaged bytes are kept as evidence"
    assert not await world.storage.exists(good.original_uri), "nobody can download the damaged bytes as good"
    marker = await fixity.read_marker(world.storage, "asset-rot")
    assert marker is not None and marker["state"] == "DAMAGED"
    assert marker["finding"]["actual_sha256"] == hashlib.sha256(flipped).hexdigest()

    again = await world.audit(["asset-rot"], repair=True, sources=[])
    assert (again.failures[0].status, again.failures[0].repair) == (fixity_pb2.FIXITY_MISSING,
                                                                   fixity_pb2.FIXITY_REPAIR_MARKED)
    assert again.failures[0].quarantine_uri == finding.quarantine_uri
    assert again.counts.quarantined == 1


async def test_damaged_original_is_repaired_from_its_s3_delivery_copy_and_the_next_audit_is_ok(
    world: World, images: list[Path], s3_server: dict[str, str]
) -> None:
    delivery_bucket = f"deliveries-{world.kind}-{world.tmp_path.name[-8:]}".lower().replace("_", "-")
    _boto(s3_server).create_bucket(Bucket=delivery_bucket)
    targets = {"cdn": {"type": "s3", "bucket": delivery_bucket, "prefix": "archive",
                       "endpoint_url": s3_server["endpoint"], "access_key_id": s3_server["access_key"],
                       "secret_access_key": s3_server["secret_key"], "region": s3_server["region"]}}
    world.settings = make_settings(world.tmp_path, **world.env, DAMFLEET_DISTRIBUTION_TARGETS_JSON=json.dumps(targets),
                                   DAMFLEET_FIXITY_REPAIR_TARGETS="cdn")
    flip = await world.ingest(images[0], "asset-heal")
    lost = await world.ingest(images[1], "asset-lost")
    distributor = Distributor(world.settings, world.storage)
    try:
        for asset in (flip, lost):  # the real distribution stage delivering the original
            item = delivery_item(asset_id=asset.asset_id, role="original", source_uri=asset.original_uri,
                                 size_bytes=asset.size_bytes, sha256=asset.sha256, mime_type=asset.media.mime_type,
                                 idempotency_key=f"{asset.asset_id}:cdn:original")
            _, receipt = await distributor.deliver("cdn", item)
            assert receipt.sha256 == asset.sha256
    finally:
        await distributor.aclose()
    original_bytes = world.read_raw(flip.original_uri)
    world.flip_byte(flip.original_uri)
    await world.storage.delete(lost.original_uri)
    sources = fixity.repair_sources(world.settings, world.storage)
    try:
        result = await world.audit(["asset-heal", "asset-lost"], repair=True, sources=sources)
    finally:
        await fixity.close_sources(sources)

    found = _by_asset(result)
    healed = found["asset-heal"]
    assert (healed.status, healed.repair) == (fixity_pb2.FIXITY_MISMATCH, fixity_pb2.FIXITY_REPAIR_REPAIRED)
    assert healed.repaired_from.startswith(f"s3://{delivery_bucket}/archive/asset-heal/")
    assert healed.quarantine_uri, "the damaged bytes were kept before the restore"
    assert (found["asset-lost"].status, found["asset-lost"].repair) == (fixity_pb2.FIXITY_MISSING,
                                                                       fixity_pb2.FIXITY_REPAIR_REPAIRED)
    assert result.counts.repaired == 2
    assert world.read_raw(flip.original_uri) == original_bytes
    marker = await fixity.read_marker(world.storage, "asset-heal")
    assert marker is not None and marker["state"] == "REPAIRED"

    after = await world.audit(["asset-heal", "asset-lost"])
    assert (after.counts.ok, len(after.failures)) == (2, 0)


async def test_a_retried_page_resumes_after_its_last_checkpoint(tmp_path: Path, images: list[Path]) -> None:
    w = World("file", tmp_path, None, "", {})
    try:
        assets = [await w.ingest(images[i % 2], f"asset-resume{i}") for i in range(3)]
        prefix = fixity.audit_prefix_for(w.storage, "resume")
        await w.storage.write_bytes(f"{prefix}pages/000000.json",
                                    json.dumps({"assetIds": [a.asset_id for a in assets]}).encode())
        request = fixity_pb2.FixityPageInput(audit_id="resume", pages_prefix=f"{prefix}pages/", page=0,
                                             findings_prefix=f"{prefix}findings/")

        def lost_worker(index: int, done: int, total: int) -> None:
            if index == 2:
                raise RuntimeError("worker lost")

        with pytest.raises(RuntimeError, match="worker lost"):
            await fixity.verify_page(request, storage=w.storage, scratch=tmp_path, progress=lost_worker,
                                     checkpoint_seconds=0)
        # Damage asset 0 after it was checked: the resumed attempt must not read it again.
        w.flip_byte(assets[0].original_uri)
        resumed = await fixity.verify_page(request, storage=w.storage, scratch=tmp_path, checkpoint_seconds=0)
        assert (resumed.counts.checked, resumed.counts.ok, resumed.counts.mismatch) == (3, 3, 0)
        stored = json.loads(await w.storage.read_bytes(resumed.findings_uri))
        assert [f["asset_id"] for f in stored] == [a.asset_id for a in assets]
        assert not await w.storage.exists(resumed.findings_uri + ".partial"), "the checkpoint is removed"
        assert (await w.audit([assets[0].asset_id])).counts.mismatch == 1, "a new audit sees the damage"
    finally:
        await w.storage.aclose()


async def test_renditions_are_rehashed_by_setting_against_their_recorded_sha256(
    world: World, images: list[Path]
) -> None:
    asset = await world.ingest(images[0], "asset-rend")
    rendition = world.storage.keys("asset-rend").rendition("thumbnail", "webp")
    await world.storage.write_bytes(rendition, b"rendered bytes " * 1000, content_type="image/webp")
    clean = await world.audit(["asset-rend"], renditions=True)
    assert (clean.counts.checked, clean.counts.ok, clean.counts.renditions_checked) == (1, 1, 1)
    assert clean.counts.bytes_read == asset.size_bytes + 15_000
    # file:// keeps no per-object hash: the rendition is only proven readable.
    assert clean.counts.renditions_unverified == (1 if world.kind == "file" else 0)
    assert (await world.audit(["asset-rend"])).counts.renditions_checked == 0, "off unless asked"

    world.flip_byte(rendition, offset=3)
    result = await world.audit(["asset-rend"], renditions=True, repair=True, sources=[])
    if world.kind == "file":
        assert not result.failures, "without a recorded hash a changed rendition cannot be told apart"
        return
    (finding,) = result.failures
    assert (finding.role, finding.status, finding.repair) == ("rendition", fixity_pb2.FIXITY_MISMATCH,
                                                              fixity_pb2.FIXITY_REPAIR_NONE)
    assert finding.expected_sha256 == hashlib.sha256(b"rendered bytes " * 1000).hexdigest() != finding.actual_sha256
    assert "re-run transcode" in finding.detail
    assert (result.counts.ok, result.counts.mismatch) == (1, 1), "the original is fine; the rendition is not"
    assert await fixity.read_marker(world.storage, "asset-rend") is None, "renditions are reported, not repaired"


async def test_a_copy_that_does_not_hash_to_the_recorded_sha256_is_never_used(
    tmp_path: Path, images: list[Path]
) -> None:
    replica = tmp_path / "replica"
    w = World("file", tmp_path, None, "", {"DAMFLEET_FIXITY_REPLICA_ROOTS": replica.as_uri()})
    try:
        asset = await w.ingest(images[0], "asset-replica")
        copy = replica / path_from_uri(asset.original_uri).relative_to(path_from_uri(w.storage.root))
        copy.parent.mkdir(parents=True)
        copy.write_bytes(b"not the original")
        await w.storage.delete(asset.original_uri)
        bad = await w.audit(["asset-replica"], repair=True)
        assert bad.failures[0].repair == fixity_pb2.FIXITY_REPAIR_MARKED
        assert f"hashes to {hashlib.sha256(b'not the original').hexdigest()}" in bad.failures[0].detail

        copy.write_bytes(images[0].read_bytes())
        healed = await w.audit(["asset-replica"], repair=True)
        assert healed.failures[0].repair == fixity_pb2.FIXITY_REPAIR_REPAIRED
        assert healed.failures[0].repaired_from == copy.as_uri()
        assert (await w.audit(["asset-replica"])).counts.ok == 1
    finally:
        await w.storage.aclose()


async def test_collection_filter_and_unreadable_records(tmp_path: Path, images: list[Path]) -> None:
    w = World("file", tmp_path, None, "", {})
    try:
        await w.ingest(images[0], "asset-news", collection="news")
        await w.ingest(images[1], "asset-sport", collection="sport")
        record = w.storage.keys("asset-sport").technical_metadata()
        only_news = await w.audit(["asset-news", "asset-sport"], collection="news")
        assert (only_news.counts.checked, only_news.counts.ok, only_news.counts.skipped) == (1, 1, 1)
        await w.storage.write_bytes(record, b"{not json")
        broken = await w.audit(["asset-sport"])
        assert broken.failures[0].status == fixity_pb2.FIXITY_UNREADABLE
        assert "is not JSON" in broken.failures[0].detail
    finally:
        await w.storage.aclose()


async def test_an_unreachable_store_is_retried_not_reported_as_damage(tmp_path: Path) -> None:
    """A stopped S3 server is a transient failure of the audit (the activity retries), never
    an UNREADABLE finding that would mark healthy assets damaged."""
    from tests.conftest import free_port

    settings = make_settings(tmp_path, DAMFLEET_STORAGE_ROOT="s3://gone/fleet",
                             DAMFLEET_STORAGE_S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
                             DAMFLEET_STORAGE_S3_ACCESS_KEY_ID="x", DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY="x")
    storage = Storage.from_settings(settings)
    record = fixity.IngestRecord(asset_id="asset-x", sha256="0" * 64, size_bytes=1,
                                 original_uri="s3://gone/fleet/assets/as/asset-x/original/a.bin",
                                 collection="", mime_type="")
    try:
        with pytest.raises(TransientError, match="unreachable"):
            await fixity.check_original(storage, record)
    finally:
        await storage.aclose()


def test_buckets_are_stable_balanced_and_cover_every_asset() -> None:
    ids = [f"asset-{i:05d}" for i in range(5000)]
    sizes = Counter(fixity.bucket_of(a, 20) for a in ids)
    assert set(sizes) == set(range(20))
    assert max(sizes.values()) < 2 * 5000 / 20, sizes
    assert [fixity.bucket_of(a, 20) for a in ids] == [fixity.bucket_of(a, 20) for a in ids]
    assert fixity.buckets_for_percent(5) == 20 and fixity.buckets_for_percent(100) == 1
    with pytest.raises(BadInputError, match="percentage"):
        fixity.buckets_for_percent(0)


async def test_sampled_audits_check_every_asset_exactly_once_per_cycle(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    storage = Storage.from_settings(settings)
    ids = [f"asset-{i:04d}" for i in range(60)]
    for asset_id in ids:  # just the ingest records: planning reads nothing else
        await storage.write_bytes(storage.keys(asset_id).technical_metadata(), b"{}")
    seen: list[str] = []
    for cycle_position in range(4):
        request = fixity_pb2.FixityPlanInput(audit_id=f"audit-{cycle_position}", sample_buckets=4, page_size=7)
        plan = await fixity.plan_audit(request, storage=storage, settings=settings)
        assert (plan.bucket, plan.listed_assets) == (cycle_position, 60)
        pages = [await fixity.read_page(plan.pages_prefix, p, storage=storage) for p in range(plan.page_count)]
        chosen = [a for page in pages for a in page.asset_ids]
        assert len(chosen) == plan.total_assets and all(len(p.asset_ids) <= 7 for p in pages)
        seen += chosen
        # A retried plan (the report not yet written) picks the same bucket.
        assert (await fixity.plan_audit(request, storage=storage, settings=settings)).bucket == cycle_position
        await fixity.write_report(fixity_pb2.FixityReportInput(audit_id=request.audit_id, plan=plan), storage=storage)
    assert sorted(seen) == ids, "four audits of a 4-bucket cycle check every asset exactly once"
    wrapped = await fixity.plan_audit(fixity_pb2.FixityPlanInput(audit_id="audit-4", sample_buckets=4),
                                      storage=storage, settings=settings)
    assert wrapped.bucket == 0, "the cycle starts again"
    with pytest.raises(BadInputError, match="outside 0..3"):
        await fixity.plan_audit(fixity_pb2.FixityPlanInput(audit_id="x", sample_buckets=4, bucket=4),
                                storage=storage, settings=settings)
    with pytest.raises(BadInputError, match="outside the storage root"):
        await fixity.plan_audit(fixity_pb2.FixityPlanInput(audit_id="x", prefix="file:///elsewhere/"),
                                storage=storage, settings=settings)
    await storage.aclose()


async def test_throttle_holds_reads_to_the_byte_budget() -> None:
    now = [0.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    throttle = fixity.ByteThrottle(1_000_000, clock=lambda: now[0], sleep=sleep)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 500_000

    digest, size = await fixity.hash_object(chunks(), throttle=throttle)
    assert (digest, size) == (hashlib.sha256(b"x" * 5_000_000).hexdigest(), 5_000_000)
    # One second's burst is free, the other 4 MB wait their share: 4 s at 1 MB/s.
    assert sum(slept) == pytest.approx(4.0)
    assert throttle.waited_seconds == pytest.approx(4.0)
    unthrottled = fixity.ByteThrottle(0, clock=lambda: now[0], sleep=sleep)
    await unthrottled.consume(10**9)
    assert sum(slept) == pytest.approx(4.0)
