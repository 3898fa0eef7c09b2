"""`damfleet status` says what a retrying stage waits for and on which attempt."""

from __future__ import annotations

from rich.console import Console

from damfleet.cli import render
from damfleet.summaries import pipeline_summary
from damfleet.v1 import common_pb2, pipeline_pb2


def test_status_shows_the_waiting_reason_and_attempt(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    result = pipeline_pb2.PipelineResult(workflow_id="asset-1", state=common_pb2.VALIDATING, current_stage="ingest")
    result.stages["ingest"].CopyFrom(pipeline_pb2.StageResult(
        stage="ingest", status=common_pb2.STAGE_STATUS_RUNNING, attempts=4, waiting="storage unreachable",
        last_error="S3 endpoint unreachable for s3://b/k: Could not connect to the endpoint URL"))
    summary = pipeline_summary(result)
    assert summary["stages"]["ingest"]["waiting"] == "storage unreachable"
    assert summary["stages"]["ingest"]["attempts"] == 4 and "unreachable" in summary["stages"]["ingest"]["last_error"]
    console = Console(record=True, width=200)
    monkeypatch.setattr(render, "Console", lambda *a, **k: console)
    render.print_status(summary)
    assert "waiting: storage unreachable (attempt 4)" in console.export_text()
