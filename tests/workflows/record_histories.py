"""Record the event histories that ``tests/workflows/test_replay.py`` replays (issue 12).

One command re-records every history, on a fresh dev server, with the current workflow code::

    PYTHONPATH=$PWD .venv/bin/python -m tests.workflows.record_histories

Re-record only on purpose: after a workflow change that is meant to be incompatible with runs
in flight (a new workflow type or a versioned change, see the README's "Changing workflows"),
and commit the new files with the change. Replaying the *old* files against changed code is
the check that a change is safe for runs already in flight, so do not re-record to make a
failing replay pass.

Scenarios run the real workflows (AssetPipeline, BatchIngest) and the real catalog activities
against stand-in stage activities (:mod:`tests.jobs_support`), so recording takes seconds and
needs no media tools: a success, a failed ingest, a retried transcode, deliveries that failed
(COMPLETED_WITH_ERRORS), pause then resume, cancel during a stage, a batch that
continues-as-new (every run of it, and one of its children), a video with speech whose
enrichment runs beside its transcode (completed, and cancelled while both run), and runs of
the second generation (one marker): a deduplicated video whose ingest claimed its content and
an image transcoded on the light pool.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path

from temporalio.client import Client, WorkflowHandle

from damfleet.v1 import common_pb2
from tests.conftest import start_dev_server
from tests.jobs_support import eventually, run_fleet, write_manifest

HISTORIES = Path(__file__).resolve().parent / "histories"


#: name -> workflow id (a history's events do not carry their own workflow id, and replay needs it)
INDEX = HISTORIES / "workflow_ids.json"
_recorded: dict[str, str] = {}


async def _save(handle: WorkflowHandle, name: str) -> None:
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json() + "\n")
    _recorded[name] = handle.id
    print(f"recorded {name}: {len(history.events)} events")


async def _runs(client: Client, workflow_id: str, count: int) -> list[str]:
    """Run ids of a workflow that continued-as-new, oldest first."""

    async def listed() -> list[str] | None:
        runs = [(e.start_time, e.run_id) async for e in client.list_workflows(f"WorkflowId = '{workflow_id}'")]
        return [run for _, run in sorted(runs)] if len(runs) >= count else None

    return await eventually(listed, timeout=60, interval=0.5)


async def record(client: Client, root: Path) -> None:
    HISTORIES.mkdir(exist_ok=True)
    # Histories kept aside by hand (an older branch of a patched change) stay, with their index entries.
    _recorded.clear()
    if INDEX.exists():
        _recorded.update(json.loads(INDEX.read_text()))
    options = {
        "hold_when": lambda uri: "hold" in uri, "enrich_hold_when": lambda uri: "hold" in uri,
        # "speech" sources are videos with audio: the default profile transcribes them, beside transcode
        "kind_of": lambda uri: common_pb2.MEDIA_KIND_VIDEO if "speech" in uri else common_pb2.MEDIA_KIND_IMAGE,
        "audio_when": lambda uri: "speech" in uri,
    }
    async with run_fleet(client, root / "a", stand_ins_options=options) as fleet:
        submit = fleet.fleet.submit
        success = await submit("/inbox/success.mov", profile="archive", dedup=False, workflow_id="success")
        await success.wait()
        await _save(fleet.client.get_workflow_handle("success"), "pipeline_success")

        await (await submit("/inbox/fail-ingest.mov", profile="archive", dedup=False, workflow_id="failed")).wait()
        await _save(fleet.client.get_workflow_handle("failed"), "pipeline_failed_ingest")

        await (await submit("/inbox/cwe.mov", title="cwe", dedup=False, workflow_id="cwe")).wait()
        await _save(fleet.client.get_workflow_handle("cwe"), "pipeline_completed_with_errors")

        cancelled = await submit("/inbox/hold-cancel.mov", profile="archive", dedup=False, workflow_id="cancel")
        await eventually(lambda: "file:///inbox/hold-cancel.mov" in fleet.stand_ins.transcode_started)
        await fleet.fleet.cancel(cancelled.workflow_id)
        await cancelled.wait()
        await _save(fleet.client.get_workflow_handle("cancel"), "pipeline_cancel")

        beside = await submit("/inbox/speech.mov", dedup=False, workflow_id="beside")
        await beside.wait()
        await _save(fleet.client.get_workflow_handle("beside"), "pipeline_enrich_beside_transcode")

        both = await submit("/inbox/hold-speech.mov", dedup=False, workflow_id="cancel-beside")
        await eventually(lambda: "file:///inbox/hold-speech.mov" in fleet.stand_ins.enrich_started)
        await eventually(lambda: "file:///inbox/hold-speech.mov" in fleet.stand_ins.transcode_started)
        await fleet.fleet.cancel(both.workflow_id)
        await both.wait()
        await _save(fleet.client.get_workflow_handle("cancel-beside"), "pipeline_cancel_beside_transcode")

        # Dedup on (the default): ingest claims the content itself, no claim activity (issue 11).
        claims = await submit("/inbox/speech-claims.mov", workflow_id="claims")
        await claims.wait()
        await _save(fleet.client.get_workflow_handle("claims"), "pipeline_ingest_claims_content")
        light = await submit("/inbox/photo-light.jpg", workflow_id="light")  # an image: the light pool
        await light.wait()
        await _save(fleet.client.get_workflow_handle("light"), "pipeline_image_light_queue")

        paused = await submit("/inbox/hold-pause.mov", dedup=False, workflow_id="pause")  # default: delivers
        await eventually(lambda: "file:///inbox/hold-pause.mov" in fleet.stand_ins.transcode_started)
        await fleet.fleet.pause(paused.workflow_id)
        fleet.stand_ins.gate.set()
        await eventually(lambda: _state_is(paused, "PAUSED"))
        await fleet.fleet.resume(paused.workflow_id)
        await paused.wait()
        await _save(fleet.client.get_workflow_handle("pause"), "pipeline_pause_resume")

        (root / "a").mkdir(parents=True, exist_ok=True)
        manifest = write_manifest(root / "a" / "batch.csv", [{"source_uri": f"media/{i}.jpg"} for i in range(5)])
        batch = await fleet.fleet.batch(manifest=str(manifest), max_in_flight=2, continue_as_new_after=2,
                                        page_size=2, skip_ai=True, workflow_id="batch")
        progress = await batch.wait()
        assert progress.runs >= 2, "the batch continued-as-new"
        for index, run_id in enumerate(await _runs(fleet.client, "batch", progress.runs + 1)):
            await _save(fleet.client.get_workflow_handle("batch", run_id=run_id), f"batch_run{index}")
        await _save(fleet.client.get_workflow_handle("batch/000002"), "batch_child")

    async with run_fleet(client, root / "b", stand_ins_options={"transcode_transient_failures": 1}) as fleet:
        retried = await fleet.fleet.submit("/inbox/retry.mov", profile="archive", dedup=False, workflow_id="retry")
        await retried.wait()
        await _save(fleet.client.get_workflow_handle("retry"), "pipeline_retry")
    INDEX.write_text(json.dumps(dict(sorted(_recorded.items())), indent=1) + "\n")


async def _state_is(handle, state: str) -> bool:
    from damfleet.v1 import common_pb2

    return common_pb2.JobState.Name((await handle.status()).state) == state


async def main() -> int:
    env = await start_dev_server()
    try:
        with tempfile.TemporaryDirectory(prefix="damfleet-histories-") as folder:
            await record(env.client, Path(folder))  # type: ignore[attr-defined]
    finally:
        await env.shutdown()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
