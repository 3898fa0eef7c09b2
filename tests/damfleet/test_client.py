"""The client SDK on a real dev server: the documented example, dedup, duplicate submissions,
workflow ids derived from requests, and queue descriptions."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import shutil
from pathlib import Path

from temporalio.service import RPCError

from damfleet.client import batch_workflow_id, request_workflow_id
from damfleet.v1 import common_pb2, jobs_pb2, pipeline_pb2
from tests.jobs_support import eventually, run_fleet, write_manifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "docs" / "examples" / "sdk_example.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("sdk_example", EXAMPLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_documented_sdk_example_runs(temporal_env, tmp_path: Path, media_dir: Path) -> None:
    manifest = write_manifest(tmp_path / "batch.csv", [
        {"source_uri": "media/one.jpg", "title": "one"},
        {"source_uri": "media/fail-two.jpg", "title": "two"},
    ])
    example = _load_example()
    async with run_fleet(temporal_env.client, tmp_path, real_ingest=True) as fleet:
        # The batch rows point at files that do not exist: real ingest fails them cleanly.
        summary = await example.main(str(media_dir / "small.png"), str(manifest), settings=fleet.settings)
        assert summary["state"] == "COMPLETED"
        assert summary["batch"] == {"workflow_id": summary["batch"]["workflow_id"], "total": 2, "completed": 0,
                                    "failed": 2}
        retry = await eventually(lambda: _exists(fleet, f"{summary['batch']['workflow_id']}-retry-1"))
        assert retry


async def _exists(fleet, workflow_id: str) -> bool:
    try:
        await fleet.client.get_workflow_handle(workflow_id).describe()
    except RPCError:
        return False
    return True


def test_docs_show_the_example_that_the_test_runs() -> None:
    docs = (REPO / "docs" / "jobs.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", docs, flags=re.DOTALL)
    example = EXAMPLE.read_text()
    assert any(block.strip() and block.strip() in example for block in blocks)
    body = example[example.index("async def main"):example.index('if __name__')].strip()
    assert any(body in block for block in blocks), "docs/jobs.md shows docs/examples/sdk_example.py's main()"


async def test_same_content_in_the_same_collection_is_linked_not_reprocessed(temporal_env, tmp_path: Path,
                                                                            media_dir: Path) -> None:
    copy = tmp_path / "copy-of-small.png"
    shutil.copy(media_dir / "small.png", copy)
    async with run_fleet(temporal_env.client, tmp_path, real_ingest=True) as fleet:
        first = await (await fleet.fleet.submit(str(media_dir / "small.png"), collection="news", profile="archive")).wait()
        assert first.state == common_pb2.COMPLETED and not first.duplicate_of

        second_handle = await fleet.fleet.submit(str(copy), collection="news", profile="archive")
        assert second_handle.workflow_id != fleet.fleet.get(first.workflow_id).workflow_id
        second = await second_handle.wait()
        assert second.state == common_pb2.COMPLETED
        assert second.duplicate_of == first.asset_id
        assert second.asset.asset_id == first.asset_id and second.asset.sha256 == first.asset.sha256
        assert second.stages["transcode"].status == common_pb2.STAGE_STATUS_SKIPPED
        assert f"duplicate of asset {first.asset_id}" in second.stages["transcode"].reason
        assert len(fleet.stand_ins.transcode_started) == 1, "the duplicate was not transcoded"
        own_prefix = fleet.storage.keys(second.asset_id).prefix
        assert [i async for i in fleet.storage.list(own_prefix)] == [], "the duplicate's stored copy was discarded"

        other = await (await fleet.fleet.submit(str(copy), collection="sport", profile="archive")).wait()
        assert not other.duplicate_of, "another collection processes its own copy"
        off = await (await fleet.fleet.submit(str(copy), collection="news", profile="archive", dedup=False)).wait()
        assert not off.duplicate_of, "dedup is configurable per request"
        assert len(fleet.stand_ins.transcode_started) == 3


async def test_duplicate_submissions_do_not_start_duplicate_runs(temporal_env, tmp_path: Path) -> None:
    options = {"hold_when": lambda uri: True}
    async with run_fleet(temporal_env.client, tmp_path, stand_ins_options=options) as fleet:
        first = await fleet.fleet.submit("/inbox/a.mov", collection="news", profile="archive")
        joined = await fleet.fleet.submit("/inbox/a.mov", collection="news", profile="archive")
        assert joined.workflow_id == first.workflow_id
        assert joined.run_id == first.run_id, "a running duplicate joins the existing run"
        fleet.stand_ins.gate.set()
        await first.wait()
        after = await fleet.fleet.submit("/inbox/a.mov", collection="news", profile="archive")
        assert after.existing and after.workflow_id == first.workflow_id
        assert len(fleet.stand_ins.transcode_started) == 1
        # Content identity: the same checksum under another URI maps to the same run id.
        sha = hashlib.sha256(b"content").hexdigest()
        a = pipeline_pb2.PipelineRequest(source_uri="file:///a.mov", expected_sha256=sha,
                                         metadata=common_pb2.AssetMetadata(collection="news"))
        b = pipeline_pb2.PipelineRequest(source_uri="s3://bucket/b.mov", expected_sha256=sha,
                                         metadata=common_pb2.AssetMetadata(collection="news"))
        c = pipeline_pb2.PipelineRequest(source_uri="s3://bucket/b.mov", expected_sha256=sha,
                                         metadata=common_pb2.AssetMetadata(collection="sport"))
        assert request_workflow_id(a) == request_workflow_id(b) != request_workflow_id(c)
        assert batch_workflow_id(jobs_pb2.BatchRequest(manifest_uri="file:///m.csv")) == batch_workflow_id(
            jobs_pb2.BatchRequest(manifest_uri="file:///m.csv"))
        # A failed run may be submitted again (ALLOW_DUPLICATE_FAILED_ONLY).
        failed = await (await fleet.fleet.submit("/inbox/fail.mov", profile="archive")).wait()
        assert failed.state == common_pb2.FAILED
        fleet.stand_ins.fail_when = lambda uri: False
        retried = await fleet.fleet.submit("/inbox/fail.mov", profile="archive")
        assert not retried.existing and (await retried.wait()).state == common_pb2.COMPLETED


async def test_batch_runs_below_interactive_priority_by_default(temporal_env, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [{"source_uri": "media/a.jpg"}])
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        batch = await fleet.fleet.batch(manifest=str(manifest), profile="archive")
        await batch.wait()
        description = await batch.handle.describe()
        child = (await batch.progress()).batch_id + "/000002"
        child_description = await fleet.client.get_workflow_handle(child).describe()
        assert child_description.raw_description.workflow_execution_info.priority.priority_key == 4
        assert description.raw_description.workflow_execution_info.priority.priority_key == 4
