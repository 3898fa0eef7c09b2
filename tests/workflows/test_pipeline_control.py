"""Job control of AssetPipeline on a real dev server: pause, resume, cancel, states, priorities.

Ingest is real (real files, real storage) where outputs matter; transcode is a stand-in
under the real activity name that holds its slot or runs a real ffmpeg subprocess.
"""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from temporalio.client import Client

from damfleet import search_attributes as sa
from damfleet.client import JobControlError, JobNotFoundError
from damfleet.policies import transcode_queue
from damfleet.v1 import common_pb2
from tests.jobs_support import eventually, run_fleet


async def _stage_running(fleet, workflow_id: str, stage: str) -> bool:
    status = await fleet.fleet.status(workflow_id)
    return status.current_stage == stage and status.stages[stage].status == common_pb2.STAGE_STATUS_RUNNING


async def test_pause_during_transcode_finishes_it_then_holds_until_resume(temporal_env, tmp_path: Path,
                                                                           media_dir: Path) -> None:
    client: Client = temporal_env.client
    async with run_fleet(client, tmp_path, real_ingest=True,
                         stand_ins_options={"hold_when": lambda uri: True}) as fleet:
        handle = await fleet.fleet.submit(str(media_dir / "small.png"), collection="control", dedup=False)
        states_seen = [common_pb2.JobState.Name((await handle.status()).state)]
        await eventually(lambda: fleet.stand_ins.transcode_started)
        await eventually(lambda: _stage_running(fleet, handle.workflow_id, "transcode"))
        states_seen.append(common_pb2.JobState.Name((await handle.status()).state))

        # The running stage's live progress comes from its last heartbeat, through the server.
        live = await eventually(lambda: _has_percent(fleet, handle.workflow_id))
        assert (live.stages["transcode"].percent, live.stages["transcode"].detail) == (40.0, "proxy 80%")
        assert live.stages["transcode"].attempts == 1
        assert live.stages["transcode"].seconds < 600, "a running stage shows its time so far, not 0.00 s"

        # Pause while transcode runs: the transcode is allowed to finish, and until it does
        # the run says so (PAUSE_PENDING), not RUNNING as if the pause had been ignored ...
        assert await fleet.fleet.pause(handle.workflow_id) == "PAUSE_PENDING"
        assert (await handle.status()).state == common_pb2.PAUSE_PENDING
        states_seen.append("PAUSE_PENDING")
        assert await eventually(lambda: _search_attribute_is(client, handle.workflow_id, "PAUSE_PENDING"))
        fleet.stand_ins.gate.set()

        # ... and then nothing new starts: the run shows PAUSED, distribution stays pending,
        # and the stage it names is the one that starts on resume, not the one that ended.
        paused = await eventually(lambda: _state_is(handle, common_pb2.PAUSED))
        states_seen.append("PAUSED")
        assert paused.stages["transcode"].status == common_pb2.STAGE_STATUS_COMPLETED
        assert paused.stages["distribution"].status == common_pb2.STAGE_STATUS_PENDING
        assert paused.current_stage == "distribution"
        assert fleet.stand_ins.delivered == []
        description = await eventually(lambda: _search_attribute_is(client, handle.workflow_id, "PAUSED"))
        assert description

        await fleet.fleet.resume(handle.workflow_id)
        result = await handle.wait()
        states_seen.append(common_pb2.JobState.Name(result.state))
        assert result.state == common_pb2.COMPLETED, result.error
        assert result.stages["distribution"].status == common_pb2.STAGE_STATUS_COMPLETED
        assert fleet.stand_ins.delivered, "distribution ran after resume"
        assert states_seen[0] in ("PENDING", "VALIDATING", "RUNNING")
        assert states_seen[1:] == ["RUNNING", "PAUSE_PENDING", "PAUSED", "COMPLETED"]


async def _has_percent(fleet, workflow_id: str):
    status = await fleet.fleet.status(workflow_id)
    transcode = status.stages["transcode"]
    return status if transcode.percent and transcode.seconds >= 0.5 else None


async def test_cancel_during_transcode_kills_ffmpeg_and_discards_outputs(temporal_env, tmp_path: Path,
                                                                         media_dir: Path) -> None:
    client: Client = temporal_env.client
    async with run_fleet(client, tmp_path, real_ingest=True, stand_ins_options={"ffmpeg_seconds": 600}) as fleet:
        handle = await fleet.fleet.submit(str(media_dir / "small.png"), collection="control", dedup=False)
        await eventually(lambda: fleet.stand_ins.ffmpeg_pids, timeout=60)
        pid = fleet.stand_ins.ffmpeg_pids[0]
        assert psutil.pid_exists(pid)
        asset_id = (await handle.status()).asset_id
        prefix = fleet.storage.keys(asset_id).prefix
        assert [info async for info in fleet.storage.list(prefix)], "ingest stored the original"

        await fleet.fleet.cancel(handle.workflow_id)
        result = await handle.wait()

        assert result.state == common_pb2.CANCELLED
        assert result.stages["transcode"].status == common_pb2.STAGE_STATUS_CANCELLED
        assert fleet.stand_ins.transcode_cancelled == [result.asset.source_uri]
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        marker = fleet.stand_ins.ffmpeg_marker
        left = [p.pid for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])]
        assert left == [], "no ffmpeg of this run is left running"
        assert [info async for info in fleet.storage.list(prefix)] == [], "the asset's outputs were discarded"
        with pytest.raises(JobControlError, match="already finished"):
            await fleet.fleet.cancel(handle.workflow_id)


async def test_cancel_while_paused_between_stages(temporal_env, tmp_path: Path, media_dir: Path) -> None:
    client: Client = temporal_env.client
    async with run_fleet(client, tmp_path, real_ingest=True,
                         stand_ins_options={"hold_when": lambda uri: True}) as fleet:
        handle = await fleet.fleet.submit(str(media_dir / "small.png"), collection="control", dedup=False)
        await eventually(lambda: fleet.stand_ins.transcode_started)
        await fleet.fleet.pause(handle.workflow_id)
        fleet.stand_ins.gate.set()
        paused = await eventually(lambda: _state_is(handle, common_pb2.PAUSED))
        prefix = fleet.storage.keys(paused.asset_id).prefix

        await fleet.fleet.cancel(handle.workflow_id)
        result = await handle.wait()

        assert result.state == common_pb2.CANCELLED
        assert result.stages["transcode"].status == common_pb2.STAGE_STATUS_COMPLETED, "it had finished"
        assert result.stages["distribution"].status == common_pb2.STAGE_STATUS_PENDING
        assert fleet.stand_ins.delivered == []
        assert [info async for info in fleet.storage.list(prefix)] == [], "the asset's outputs were discarded"


async def test_control_of_unknown_or_finished_runs_is_a_clear_error(temporal_env, tmp_path: Path,
                                                                    media_dir: Path) -> None:
    async with run_fleet(temporal_env.client, tmp_path) as fleet:
        with pytest.raises(JobNotFoundError, match="no job with workflow id 'asset-does-not-exist'"):
            await fleet.fleet.pause("asset-does-not-exist")
        with pytest.raises(JobNotFoundError):
            await fleet.fleet.status("asset-does-not-exist")
        handle = await fleet.fleet.submit(str(media_dir / "small.png"), profile="archive", dedup=False)
        assert (await handle.wait()).state == common_pb2.COMPLETED
        for action in (fleet.fleet.pause, fleet.fleet.resume):
            with pytest.raises(JobControlError, match=r"already finished \(COMPLETED\)"):
                await action(handle.workflow_id)
        # A failed run keeps its state and error in the status, and wait() returns it.
        failing = await fleet.fleet.submit(str(tmp_path / "fail-me.png"), profile="archive", dedup=False)
        failed = await failing.wait()
        assert failed.state == common_pb2.FAILED
        assert "corrupt media" in failed.error


async def test_high_priority_submission_overtakes_low_priority_backlog(temporal_env, tmp_path: Path) -> None:
    """One transcode slot, held; a backlog of priority-5 work; a priority-1 upload starts next."""
    client: Client = temporal_env.client
    options = {"hold_when": lambda uri: uri.endswith("/blocker.mov")}
    async with run_fleet(client, tmp_path, transcode_slots=1, stand_ins_options=options) as fleet:
        submit = fleet.fleet.submit
        blocker = await submit("/inbox/blocker.mov", profile="archive", dedup=False)
        await eventually(lambda: fleet.stand_ins.transcode_started)
        low = [await submit(f"/inbox/backfill-{i}.mov", profile="archive", priority=5, dedup=False)
               for i in range(4)]
        for handle in low:
            await eventually(lambda h=handle: _transcode_scheduled(client, h.workflow_id))
        high = await submit("/inbox/urgent.mov", profile="archive", priority=1, dedup=False)
        await eventually(lambda: _transcode_scheduled(client, high.workflow_id))
        # "Scheduled" in the run's history is not yet "queued": history hands the task to
        # matching asynchronously. Release the slot only once all five wait in the backlog.
        await eventually(lambda: _transcode_backlog_at_least(fleet, 5), timeout=60, interval=0.5)

        fleet.stand_ins.gate.set()
        for handle in [blocker, high, *low]:
            assert (await handle.wait()).state == common_pb2.COMPLETED

        order = [uri.rsplit("/", 1)[-1] for uri in fleet.stand_ins.transcode_started]
        assert order[:2] == ["blocker.mov", "urgent.mov"], order
        assert sorted(order[2:]) == [f"backfill-{i}.mov" for i in range(4)]


async def _transcode_backlog_at_least(fleet, count: int) -> bool:
    (transcode,) = await fleet.fleet.queues([transcode_queue("image")])  # the stand-in ingest's assets are images
    return transcode.backlog >= count


async def _state_is(handle, state: int):
    status = await handle.status()
    return status if status.state == state else None


async def _search_attribute_is(client: Client, workflow_id: str, value: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    return description.typed_search_attributes.get(sa.STATE) == value


async def _transcode_scheduled(client: Client, workflow_id: str) -> bool:
    description = await client.get_workflow_handle(workflow_id).describe()
    pending = description.raw_description.pending_activities
    return any(a.activity_type.name == "transcode_asset" for a in pending)



# ---- transcode and AI enrichment side by side (issue 11) ------------------------------------

#: A stand-in video with speech whose transcode and enrichment both hold until released.
_BOTH_HOLD = {"kind_of": lambda uri: common_pb2.MEDIA_KIND_VIDEO, "audio_when": lambda uri: True,
              "hold_when": lambda uri: True, "enrich_hold_when": lambda uri: True}


def _pair_events(events) -> dict[str, dict[str, int]]:
    """Per activity type (transcode, enrich, deliver): the event ids of its scheduling workflow
    task, its ACTIVITY_TASK_SCHEDULED and its close (0 until it closes)."""
    from temporalio.api.enums.v1 import EventType

    found: dict[str, dict[str, int]] = {}
    by_id: dict[int, str] = {}
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            name = attrs.activity_type.name
            by_id[event.event_id] = name
            found[name] = {"task": attrs.workflow_task_completed_event_id, "scheduled": event.event_id, "closed": 0}
        for field in ("activity_task_completed_event_attributes", "activity_task_failed_event_attributes",
                      "activity_task_canceled_event_attributes"):
            if event.HasField(field):
                found[by_id[getattr(event, field).scheduled_event_id]]["closed"] = event.event_id
    return found


async def _both_running(fleet, workflow_id: str):
    status = await fleet.fleet.status(workflow_id)
    running = [s for s in status.stages if status.stages[s].status == common_pb2.STAGE_STATUS_RUNNING]
    return status if sorted(running) == ["ai_enrich", "transcode"] else None


async def test_enrichment_runs_beside_transcode_and_distribution_waits_for_both(temporal_env, tmp_path: Path) -> None:
    """Both activities are scheduled in one workflow task and run at once (each holds until the
    test releases it, so run one after the other this never finishes); enrichment ends first,
    yet transcode's outputs come first and nothing is delivered until transcode ends too."""
    from damfleet.policies import ActivityName
    from damfleet.summaries import asset_percent, pipeline_summary

    client: Client = temporal_env.client
    async with run_fleet(client, tmp_path, stand_ins_options=_BOTH_HOLD) as fleet:
        handle = await fleet.fleet.submit("/inbox/talk.mov", dedup=False)
        await eventually(lambda: fleet.stand_ins.transcode_started and fleet.stand_ins.enrich_started)
        await eventually(lambda: _both_running(fleet, handle.workflow_id))
        # Live progress of both running stages comes from their own heartbeats.
        live = await eventually(lambda: _percent_of_both(fleet, handle.workflow_id))
        assert live.current_stage == "transcode", "the earliest running stage in stage order"
        assert (live.stages["transcode"].percent, live.stages["ai_enrich"].percent) == (40.0, 30.0)
        summary = pipeline_summary(live)
        assert asset_percent(summary) == round(100 * (1 + 0.4 + 0.3) / 4, 1), "both running stages count"

        fleet.stand_ins.enrich_gate.set()
        after_ai = await eventually(lambda: _stage_is(handle, "ai_enrich", common_pb2.STAGE_STATUS_COMPLETED))
        assert after_ai.stages["transcode"].status == common_pb2.STAGE_STATUS_RUNNING
        assert after_ai.current_stage == "transcode"
        assert fleet.stand_ins.delivered == [], "distribution waits for transcode"

        fleet.stand_ins.gate.set()
        result = await handle.wait()
        assert result.state == common_pb2.COMPLETED, result.error
        assert [o.role for o in result.outputs] == ["proxy", "transcript_vtt"], "transcode's outputs, then AI's"
        assert sorted(r.role for r in result.receipts) == ["proxy", "transcript_vtt"]
        transcode, ai = result.stages["transcode"], result.stages["ai_enrich"]
        assert transcode.started_at == ai.started_at, "begun in the same workflow task"
        assert 0 <= ai.seconds <= transcode.seconds, "each stage's time is its own"

        events = (await client.get_workflow_handle(handle.workflow_id).fetch_history()).events
        pair = _pair_events(events)
        t, e, d = pair[ActivityName.TRANSCODE], pair[ActivityName.ENRICH], pair[ActivityName.DELIVER_BATCH]
        assert t["task"] == e["task"], "both scheduled by the same workflow task"
        assert max(t["scheduled"], e["scheduled"]) < min(t["closed"], e["closed"])
        assert e["closed"] < t["closed"] < d["scheduled"]


async def test_pause_beside_transcode_lets_both_finish_then_holds(temporal_env, tmp_path: Path) -> None:
    client: Client = temporal_env.client
    async with run_fleet(client, tmp_path, stand_ins_options=_BOTH_HOLD) as fleet:
        handle = await fleet.fleet.submit("/inbox/talk.mov", dedup=False)
        await eventually(lambda: _both_running(fleet, handle.workflow_id))
        assert await fleet.fleet.pause(handle.workflow_id) == "PAUSE_PENDING"

        fleet.stand_ins.gate.set()
        after_transcode = await eventually(lambda: _stage_is(handle, "transcode", common_pb2.STAGE_STATUS_COMPLETED))
        assert after_transcode.state == common_pb2.PAUSE_PENDING, "enrichment still runs"
        assert after_transcode.current_stage == "ai_enrich"
        assert after_transcode.stages["ai_enrich"].status == common_pb2.STAGE_STATUS_RUNNING

        fleet.stand_ins.enrich_gate.set()
        paused = await eventually(lambda: _state_is(handle, common_pb2.PAUSED))
        assert paused.stages["ai_enrich"].status == common_pb2.STAGE_STATUS_COMPLETED
        assert paused.current_stage == "distribution"
        assert fleet.stand_ins.delivered == []

        await fleet.fleet.resume(handle.workflow_id)
        result = await handle.wait()
        assert result.state == common_pb2.COMPLETED, result.error
        assert fleet.stand_ins.delivered, "distribution ran after resume"


async def test_transcode_failure_cancels_the_running_enrichment_and_fails_the_run(
    temporal_env, tmp_path: Path, media_dir: Path
) -> None:
    client: Client = temporal_env.client
    options = {"hold_when": lambda uri: True, "enrich_hold_when": lambda uri: True,
               "transcode_fails_when": lambda uri: True}
    async with run_fleet(client, tmp_path, real_ingest=True, stand_ins_options=options) as fleet:
        handle = await fleet.fleet.submit(str(media_dir / "speech.wav"), collection="control", dedup=False)
        running = await eventually(lambda: _both_running(fleet, handle.workflow_id))
        prefix = fleet.storage.keys(running.asset_id).prefix
        assert [info async for info in fleet.storage.list(prefix)], "ingest stored the original"

        fleet.stand_ins.gate.set()  # transcode goes on, and fails
        result = await handle.wait()

        assert result.state == common_pb2.FAILED
        assert result.error == "transcode failed: stand-in encoder crashed"
        assert result.stages["transcode"].status == common_pb2.STAGE_STATUS_FAILED
        ai = result.stages["ai_enrich"]
        assert ai.status == common_pb2.STAGE_STATUS_CANCELLED and "transcode failed" in ai.reason
        assert fleet.stand_ins.enrich_cancelled == [result.asset.source_uri], "enrichment acknowledged the cancel"
        assert result.stages["distribution"].status == common_pb2.STAGE_STATUS_PENDING
        assert [info async for info in fleet.storage.list(prefix)] == [], "the asset's outputs were discarded"
        assert list(result.outputs) == []


@pytest.mark.parametrize("transcode_done", [False, True], ids=["both-running", "enrichment-running"])
async def test_cancel_beside_transcode_cancels_what_runs_and_discards(temporal_env, tmp_path: Path,
                                                                      media_dir: Path, transcode_done: bool) -> None:
    client: Client = temporal_env.client
    options = {"hold_when": lambda uri: True, "enrich_hold_when": lambda uri: True}
    async with run_fleet(client, tmp_path, real_ingest=True, stand_ins_options=options) as fleet:
        handle = await fleet.fleet.submit(str(media_dir / "speech.wav"), collection="control", dedup=False)
        running = await eventually(lambda: _both_running(fleet, handle.workflow_id))
        prefix = fleet.storage.keys(running.asset_id).prefix
        if transcode_done:
            fleet.stand_ins.gate.set()
            await eventually(lambda: _stage_is(handle, "transcode", common_pb2.STAGE_STATUS_COMPLETED))

        await fleet.fleet.cancel(handle.workflow_id)
        result = await handle.wait()

        assert result.state == common_pb2.CANCELLED
        source = result.asset.source_uri
        if transcode_done:
            assert result.stages["transcode"].status == common_pb2.STAGE_STATUS_COMPLETED, "it had finished"
            assert fleet.stand_ins.transcode_cancelled == []
        else:
            assert result.stages["transcode"].status == common_pb2.STAGE_STATUS_CANCELLED
            assert fleet.stand_ins.transcode_cancelled == [source]
        assert result.stages["ai_enrich"].status == common_pb2.STAGE_STATUS_CANCELLED
        assert fleet.stand_ins.enrich_cancelled == [source], "enrichment acknowledged the cancel"
        assert result.stages["distribution"].status == common_pb2.STAGE_STATUS_PENDING
        assert [info async for info in fleet.storage.list(prefix)] == [], "the asset's outputs were discarded"


async def _percent_of_both(fleet, workflow_id: str):
    status = await fleet.fleet.status(workflow_id)
    return status if status.stages["transcode"].percent and status.stages["ai_enrich"].percent else None


async def _stage_is(handle, stage: str, stage_status: int):
    status = await handle.status()
    return status if status.stages[stage].status == stage_status else None
