"""The job-control CLI as scripts use it: a real ``python -m damfleet.cli`` process against a
real dev server, with this test's workers serving the lane it names."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

from damfleet.v1 import common_pb2
from tests.jobs_support import Fleet, eventually, run_cli, run_fleet, write_manifest


async def _cli_json(fleet: Fleet, root: Path, *args: str) -> dict:
    code, out, err = await run_cli(fleet, root, *args, "--json")
    assert code == 0, (code, out, err)
    return json.loads(out)


async def test_status_json_and_clear_errors(temporal_env, tmp_path: Path) -> None:
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        handle = await fleet.fleet.submit("/inbox/clip.mov", profile="archive", dedup=False)
        await handle.wait()

        status = await _cli_json(fleet, tmp_path, "status", handle.workflow_id)
        assert status["state"] == "COMPLETED"
        assert status["stage"] == ""
        assert status["progress"] == {"stages_done": 4, "stages_total": 4, "percent": 100.0}
        assert status["stages"]["transcode"]["status"] == "COMPLETED"
        assert status["stages"]["distribution"]["status"] == "SKIPPED"

        code, out, err = await run_cli(fleet, tmp_path, "status", handle.workflow_id)
        assert code == 0 and "COMPLETED" in out and "transcode" in out, (out, err)
        code, out, err = await run_cli(fleet, tmp_path, "watch", handle.workflow_id)
        assert code == 0 and "COMPLETED" in out + err, (out, err)
        # An 80-column terminal: bar, count and state all stay, no line is longer.
        code, out, err = await run_cli(fleet, tmp_path, "watch", handle.workflow_id, columns=80)
        print(err + out)
        assert code == 0
        assert all(len(line) <= 80 for line in (err + out).splitlines())
        bar_line = next(line for line in err.splitlines() if "4/4" in line)
        assert "COMPLETED" in bar_line and "━" in bar_line and "…" not in bar_line

        code, out, err = await run_cli(fleet, tmp_path, "status", "asset-no-such-run", "--json")
        assert code == 1 and out == ""
        assert "not found: no job with workflow id 'asset-no-such-run'" in " ".join(err.split())
        assert "Traceback" not in err

        code, _, err = await run_cli(fleet, tmp_path, "pause", handle.workflow_id)
        assert code == 1
        assert "already finished (COMPLETED); nothing to pause" in " ".join(err.split())
        assert "Traceback" not in err


async def test_pause_resume_cancel_and_watch_a_running_asset(temporal_env, tmp_path: Path) -> None:
    async with run_fleet(temporal_env.client, tmp_path, stand_ins_options={"hold_when": lambda uri: True}) as fleet:
        handle = await fleet.fleet.submit("/inbox/long.mov", profile="archive", dedup=False)
        await eventually(lambda: fleet.stand_ins.transcode_started)

        paused = await _cli_json(fleet, tmp_path, "pause", handle.workflow_id)
        assert paused == {"workflow_id": handle.workflow_id, "action": "pause", "state": "PAUSE_PENDING"}
        running = await _cli_json(fleet, tmp_path, "status", handle.workflow_id)
        assert (running["state"], running["stage"]) == ("PAUSE_PENDING", "transcode")
        assert running["progress"]["stages_done"] == 1
        # 1 of 4 stages done plus the running transcode's 40% (its last heartbeat).
        assert running["progress"]["percent"] == 35.0
        assert (running["stages"]["transcode"]["percent"], running["stages"]["transcode"]["detail"]) == (
            40.0, "proxy 80%")

        await _cli_json(fleet, tmp_path, "resume", handle.workflow_id)
        cancelled = await _cli_json(fleet, tmp_path, "cancel", handle.workflow_id)
        assert cancelled["state"] == "CANCEL_REQUESTED"
        assert (await handle.wait()).state == common_pb2.CANCELLED

        code, out, _ = await run_cli(fleet, tmp_path, "watch", handle.workflow_id, "--json", "--interval", "0.2")
        assert code == 1, "watch exits non-zero for a run that did not complete"
        assert json.loads(out)["state"] == "CANCELLED"


async def test_batch_status_retry_failed_and_queues(temporal_env, tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.csv", [
        {"source_uri": "media/a.jpg", "title": "A"},
        {"source_uri": "media/fail-b.jpg", "title": "B"},
        {"source_uri": "media/a.jpg", "title": "duplicate"},
    ])
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        started = await _cli_json(fleet, tmp_path, "batch", str(manifest), "--profile", "archive")
        batch_id = started["workflow_id"]
        assert batch_id.startswith("batch-") and started["existing"] is False

        code, out, err = await run_cli(fleet, tmp_path, "watch", batch_id, "--json", "--interval", "0.2")
        assert code == 0, err
        final = json.loads(out)
        assert final["state"] == "COMPLETED_WITH_ERRORS"
        progress = final["progress"]
        assert (progress["total"], progress["completed"], progress["failed"], progress["percent"]) == (2, 1, 1, 100.0)
        assert final["bad_rows"] == [{"line": 4, "reason": "duplicate row: 'media/a.jpg' already listed on line 2"}]
        assert [a["line"] for a in final["failed_assets"]] == [3]

        fleet.stand_ins.fail_when = lambda uri: False
        retry = await _cli_json(fleet, tmp_path, "retry-failed", batch_id)
        assert retry == {"workflow_id": f"{batch_id}-retry-1", "retry_of": batch_id, "assets": 1}
        rerun = await fleet.fleet.get_batch(retry["workflow_id"]).wait()
        assert (rerun.completed, rerun.failed) == (1, 0)

        code, out, err = await run_cli(fleet, tmp_path, "queues")
        assert code == 0 and f"q-transcode{fleet.lane}" in out, (out, err)
        queues = (await _cli_json(fleet, tmp_path, "queues"))["queues"]
        by_name = {(q["name"], q["kind"]): q for q in queues}
        assert set(by_name) == {
            (f"q-pipeline{fleet.lane}", "workflow"), (f"q-ingest{fleet.lane}", "activity"),
            (f"q-transcode{fleet.lane}", "activity"), (f"q-transcode-light{fleet.lane}", "activity"),
            (f"q-ai-enrich{fleet.lane}", "activity"), (f"q-distribution{fleet.lane}", "activity"),
        }
        assert all(q["pollers"] >= 1 for q in queues), queues
        assert all(q["backlog"] >= 0 for q in queues)


async def test_schedule_create_list_pause_delete(temporal_env, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        schedule_id = f"cli-inbox{fleet.lane}"
        created = await _cli_json(fleet, tmp_path, "schedule", "create", schedule_id, str(inbox),
                                  "--every", "10m", "--profile", "archive")
        assert created == {"schedule_id": schedule_id, "every_seconds": 600.0, "paused": False}
        try:
            listed = await eventually(lambda: _listed(fleet, tmp_path, schedule_id))
            assert listed["paused"] is False
            await _cli_json(fleet, tmp_path, "schedule", "pause", schedule_id)
            description = await fleet.client.get_schedule_handle(schedule_id).describe()
            assert description.schedule.state.paused
            assert description.schedule.spec.intervals[0].every == timedelta(minutes=10)
        finally:
            deleted = await _cli_json(fleet, tmp_path, "schedule", "delete", schedule_id)
        assert deleted["deleted"] is True
        code, _, err = await run_cli(fleet, tmp_path, "schedule", "delete", schedule_id)
        assert code == 1 and "no schedule" in err and "Traceback" not in err


async def _listed(fleet: Fleet, root: Path, schedule_id: str) -> dict | None:
    schedules = (await _cli_json(fleet, root, "schedule", "list"))["schedules"]
    return next((s for s in schedules if s["schedule_id"] == schedule_id), None)


async def _temporal(fleet: Fleet, *args: str) -> tuple[int, str, str]:
    from damfleet.binaries import temporal_cli

    proc = await asyncio.create_subprocess_exec(
        str(temporal_cli()), *args, "--address", fleet.client.service_client.config.target_host,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_temporal_cli_equivalents_from_the_docs(temporal_env, tmp_path: Path) -> None:
    """The `temporal` commands docs/jobs.md shows: start with JSON input, query, list with a query."""
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        workflow_id = f"asset-cli{fleet.lane}"
        request = {"sourceUri": "file:///srv/inbox/harbour.mov", "profile": "archive", "priority": 2,
                   "metadata": {"title": "Harbour", "collection": "news"}}
        code, out, err = await _temporal(
            fleet, "workflow", "start", "--task-queue", fleet.pipeline_queue, "--type", "AssetPipeline",
            "--workflow-id", workflow_id, "--priority-key", "2", "--id-conflict-policy", "UseExisting",
            "--input", json.dumps(request),
            "--input-meta", "encoding=json/protobuf", "--input-meta", "messageType=damfleet.v1.PipelineRequest",
        )
        assert code == 0, err
        result = await fleet.fleet.wait(workflow_id)
        assert result.state == common_pb2.COMPLETED and result.asset.metadata.title == "Harbour"
        info = (await fleet.client.get_workflow_handle(workflow_id).describe()).raw_description
        assert info.workflow_execution_info.priority.priority_key == 2

        code, out, err = await _temporal(fleet, "workflow", "query", "--workflow-id", workflow_id, "--name", "status",
                                         "-o", "json")
        assert code == 0 and '"COMPLETED"' in out, (out, err)

        query = f'DamfleetState="COMPLETED" AND DamfleetCollection="news" AND TaskQueue="{fleet.pipeline_queue}"'

        async def listed() -> bool:
            code, out, _ = await _temporal(fleet, "workflow", "list", "--query", query, "-o", "json")
            return code == 0 and workflow_id in out

        assert await eventually(listed, timeout=30, interval=0.5)
