"""Live layouts at 80 columns: whole columns are dropped, never letters of a state name."""

from __future__ import annotations

import io

from rich.console import Console

from damfleet.cli.live import demo_table, fit_table, run_line
from damfleet.progress import LiveProgress, apply_live_progress, progress_from_details
from damfleet.summaries import pipeline_summary
from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2

STATES = ("COMPLETED_WITH_ERRORS", "PAUSE_PENDING", "RUNNING", "COMPLETED", "FAILED")


def _console(width: int) -> Console:
    return Console(width=width, file=io.StringIO(), record=True, color_system=None, legacy_windows=False)


def _result(state: int, running: str = "", percent: float = 0.0, detail: str = "") -> pipeline_pb2.PipelineResult:
    result = pipeline_pb2.PipelineResult(workflow_id="asset-" + "f" * 32, state=state, current_stage=running)
    for i, stage in enumerate(("ingest", "transcode", "ai_enrich", "distribution")):
        entry = result.stages[stage]
        entry.stage = stage
        entry.status = common_pb2.STAGE_STATUS_PENDING
        if running and stage == running:
            entry.status = common_pb2.STAGE_STATUS_RUNNING
            entry.percent, entry.detail, entry.started_at = percent, detail, 1.0
        elif not running or i < ("ingest", "transcode", "ai_enrich", "distribution").index(running):
            entry.status = common_pb2.STAGE_STATUS_COMPLETED
            entry.seconds = 12.34 * (i + 1)
    return result


def _snapshot() -> list[tuple[str, dict | None]]:
    return [
        ("/srv/media/harbour-clip.mp4", pipeline_summary(_result(common_pb2.RUNNING, "transcode", 42.0, "proxy 80%"))),
        ("/srv/media/still.jpg", pipeline_summary(_result(common_pb2.COMPLETED_WITH_ERRORS))),
        ("/srv/media/voice.m4a", pipeline_summary(_result(common_pb2.PAUSE_PENDING, "ai_enrich", 10.0, "transcribe"))),
        ("/srv/media/next.mov", None),
    ]


def test_demo_table_fits_80_columns_by_dropping_stage_columns() -> None:
    console = _console(80)
    console.print(demo_table(console, _snapshot()))
    text = console.export_text()
    print(text)
    assert max(len(line) for line in text.splitlines()) <= 80
    for word in ("COMPLETED_WITH_ERRORS", "PAUSE_PENDING", "RUNNING", "PENDING", "harbour-clip.mp4",
                 "transcode 42% proxy 80%"):
        assert word in text, word
    assert "…" not in text, "no cell is cut"

    wide = _console(160)
    wide.print(demo_table(wide, _snapshot()))
    assert "deliver" in wide.export_text(), "a wide terminal keeps the per-stage columns"


def test_fit_table_drops_optional_columns_in_order() -> None:
    console = _console(80)
    headers = ["queue", "kind", "backlog", "oldest (s)", "pollers", "add/s", "dispatch/s"]
    rows = [[f"q-distribution-{'x' * 16}", "activity", "12", "3.0", "4", "1.00", "0.50"]]
    console.print(fit_table(console, headers, rows, optional=["dispatch/s", "add/s", "kind"]))
    text = console.export_text()
    print(text)
    assert f"q-distribution-{'x' * 16}" in text and "…" not in text
    assert "dispatch/s" not in text and "pollers" in text


def test_submit_wait_line_keeps_the_state_whole() -> None:
    long_name = "a-very-long-file-name-from-a-camera-card-0001234567890.mov"
    for state in (common_pb2.RUNNING, common_pb2.COMPLETED_WITH_ERRORS):
        line = run_line(long_name, pipeline_summary(_result(state, "transcode" if state == common_pb2.RUNNING else "",
                                                             42.0, "hls_720 55%")), 80)
        assert len(line) <= 80
        assert common_pb2.JobState.Name(state) in line
    running = run_line("clip.mov", pipeline_summary(_result(common_pb2.RUNNING, "transcode", 42.0, "proxy 80%")))
    assert running.split() == ["clip.mov", "RUNNING", "35.5%", "transcode", "42%", "proxy", "80%"]


def test_progress_from_heartbeat_records() -> None:
    transcode = stages_pb2.TranscodeHeartbeat(percent=42.5, current="proxy", rendition_percent=80)
    assert progress_from_details(transcode) == LiveProgress(42.5, "proxy 80%")
    # the dict a transcode worker heartbeated before the message existed reads the same
    assert progress_from_details({"percent": 42.5, "current": "proxy", "rendition_percent": 80}) == LiveProgress(
        42.5, "proxy 80%")
    assert progress_from_details({"phase": "transcribe", "transcribed_seconds": 3.0, "total_seconds": 12.0}) == (
        LiveProgress(25.0, "transcribe"))
    assert progress_from_details({"phase": "detect"}) == LiveProgress(None, "detect")
    assert progress_from_details("held") == LiveProgress()
    result = _result(common_pb2.RUNNING, "transcode")
    result.stages["transcode"].percent = 0.0
    apply_live_progress(result, "transcode", LiveProgress(42.0, "proxy"), attempt=2, now=31.0)
    entry = result.stages["transcode"]
    assert (entry.percent, entry.detail, entry.attempts, entry.seconds) == (42.0, "proxy", 2, 30.0)


def test_two_stages_running_side_by_side_both_show_and_count() -> None:
    """Transcode and AI enrichment run at once: the line names the current (earliest) stage
    with its progress, then the other running one; the overall percent counts both."""
    result = _result(common_pb2.RUNNING, "transcode", 40.0, "proxy 80%")
    ai = result.stages["ai_enrich"]
    ai.status, ai.percent, ai.started_at = common_pb2.STAGE_STATUS_RUNNING, 30.0, 1.0
    line = run_line("talk.mov", pipeline_summary(result))
    assert line.split() == ["talk.mov", "RUNNING", "42.5%", "transcode", "40%", "proxy", "80%,", "ai_enrich", "30%"]
