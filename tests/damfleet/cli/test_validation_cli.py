"""Bad requests are refused at the edge: the CLI exits 2 with one line and starts nothing;
runs started around the client (Temporal CLI/UI) fail with the same words.

The CLI cases run against an address where nothing listens: every request check happens
before the client connects, so a typo is reported as itself even when the fleet is down.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from damfleet.policies import WorkflowName
from damfleet.profiles import PROFILES
from damfleet.v1 import common_pb2, jobs_pb2, pipeline_pb2
from tests.conftest import free_port
from tests.jobs_support import REPO, run_damfleet, run_fleet

KNOWN = ", ".join(sorted(PROFILES))


async def _cli(root: Path, *args: str, columns: int = 80) -> tuple[int, str, str]:
    return await run_damfleet({
        "DAMFLEET_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",  # nothing listens there
        "DAMFLEET_TEMPORAL_CONNECT_TIMEOUT_SECONDS": "1",  # the client's connection retry, kept short
        "DAMFLEET_STATE_DIR": str(root / "state"),
        "COLUMNS": str(columns),
    }, *args)


def _cases(tmp: Path) -> list[tuple[list[str], str]]:
    clip = tmp / "clip.mov"
    clip.write_bytes(b"not read before the run starts")
    manifest = tmp / "batch.csv"
    manifest.write_text("source_uri\nclip.mov\n")
    return [
        (["submit", str(tmp / "missing.mov")], f"error: no such file: {(tmp / 'missing.mov').as_uri()}"),
        (["submit", str(tmp)], f"error: cannot read source {tmp.as_uri()}: is a folder, not a file"),
        (["submit", str(clip), "--profile", "nope"],
         f"error: unknown profile 'nope': known profiles are {KNOWN}"),
        (["submit", str(clip), "--priority", "9"], "error: priority 9 is out of range: use 1 (highest) to 5 (lowest)"),
        (["submit", "http://example.com/x.mov"],
         "error: unsupported URI scheme 'http' in 'http://example.com/x.mov': use file:// or s3://"),
        (["submit", str(clip), str(clip), "--title", "Harbour"], "error: --title applies to a single source"),
        (["batch", str(tmp / "missing.csv")], f"error: no such file: {(tmp / 'missing.csv').as_uri()}"),
        (["batch", str(tmp / "no-such-folder")], f"error: no such folder: {tmp / 'no-such-folder'}"),
        (["batch", str(manifest), "--priority", "6"], "error: priority 6 is out of range: use 1 (highest) to 5 (lowest)"),
    ]


async def test_bad_requests_exit_2_with_one_line_before_connecting(tmp_path: Path) -> None:
    cases = _cases(tmp_path)
    results = await asyncio.gather(*(_cli(tmp_path, *args) for args, _ in cases))
    table = ["| request | exit | printed |", "|---|---|---|"]
    for (args, expected), (code, out, err) in zip(cases, results, strict=True):
        lines = [line for line in err.splitlines() if line.strip()]
        table.append(f"| `damfleet {' '.join(a.replace(str(tmp_path), '$TMP') for a in args)}` | {code} | "
                     f"`{' '.join(lines).replace(str(tmp_path), '$TMP')}` |")
        assert (code, out, lines) == (2, "", [expected]), (args, code, out, err)
    print("\n".join(table))


async def test_fleet_down_is_one_actionable_line(tmp_path: Path) -> None:
    code, out, err = await _cli(tmp_path, "status", "asset-x")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and out == ""
    assert len(lines) == 1, err
    assert "cannot reach Temporal at 127.0.0.1:" in lines[0] and "(connection refused" in lines[0]
    assert "DAMFLEET_TEMPORAL_ADDRESS" in lines[0] and "tonic" not in lines[0]


async def test_help_is_plain_and_imports_no_temporal_sdk(tmp_path: Path) -> None:
    """``--help`` shows click's words (no ``<bool>``/``<list[str]>``) and loads no SDK: the
    Temporal client takes most of a second to import, help needs none of it."""
    code, out, _ = await _cli(tmp_path, "submit", "--help", columns=100)
    assert code == 0
    assert "<bool>" not in out and "<list[str]>" not in out and "<str>" not in out
    assert "SOURCES..." in out and "--skip-ai" in out and "--title" in out
    probe = ("import sys; sys.argv = ['damfleet', '--help']\n"
             "from damfleet.cli import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('temporalio', 'google', 'pydantic')))")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", probe, cwd=REPO,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out_bytes, _ = await proc.communicate()
    assert out_bytes.decode().strip().splitlines()[-1] == "[]"


async def test_runs_started_around_the_client_fail_with_the_same_words(temporal_env, tmp_path: Path) -> None:
    """What the Temporal CLI or UI starts is checked by the workflow itself, in the same words,
    and no stage is blamed (no ingest failure, no epoch-sized duration)."""
    client = temporal_env.client
    async with run_fleet(client, tmp_path, real_ingest=True) as fleet:
        async def start(request: pipeline_pb2.PipelineRequest) -> pipeline_pb2.PipelineResult:
            handle = await client.start_workflow(
                WorkflowName.ASSET_PIPELINE, request, id=f"asset-raw-{uuid.uuid4().hex[:8]}",
                task_queue=fleet.pipeline_queue, result_type=pipeline_pb2.PipelineResult,
            )
            with pytest.raises(WorkflowFailureError) as failure:
                await handle.result()
            status = await fleet.fleet.status(handle.id)
            assert status.state == common_pb2.FAILED
            assert status.error == str(failure.value.cause.message)
            assert all(s.seconds < 3600 for s in status.stages.values()), "no epoch-sized durations"
            return status

        bad_profile = await start(pipeline_pb2.PipelineRequest(source_uri="file:///x.mov", profile="nope"))
        assert bad_profile.error == f"invalid request: unknown profile 'nope': known profiles are {KNOWN}"
        assert bad_profile.stages["ingest"].status == common_pb2.STAGE_STATUS_PENDING, "ingest never ran"
        assert bad_profile.current_stage == ""

        bad_priority = await start(pipeline_pb2.PipelineRequest(source_uri="file:///x.mov", priority=9))
        assert bad_priority.error.endswith("priority 9 is out of range: use 1 (highest) to 5 (lowest)")

        missing = tmp_path / "missing.mov"
        no_file = await start(pipeline_pb2.PipelineRequest(source_uri=missing.as_uri()))
        assert no_file.error == f"ingest failed: no such file: {missing.as_uri()}", "the words the CLI prints"

        # A failed batch says why, in its progress and in `status`.
        handle = await client.start_workflow(
            WorkflowName.BATCH_INGEST, jobs_pb2.BatchRequest(manifest_uri=(tmp_path / "none.csv").as_uri()),
            id=f"batch-raw-{uuid.uuid4().hex[:8]}", task_queue=fleet.pipeline_queue,
            result_type=jobs_pb2.BatchProgress,
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        progress = await fleet.fleet.batch_progress(handle.id)
        assert progress.state == common_pb2.FAILED
        assert progress.error.startswith("batch source unusable: ") and "none.csv" in progress.error
