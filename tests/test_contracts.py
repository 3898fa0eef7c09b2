"""Contracts in proto/: the committed generated code is current, and the shapes users rely on hold."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf.json_format import MessageToDict, ParseDict
from temporalio.converter import DataConverter

from damfleet.v1 import common_pb2, pipeline_pb2

REPO = Path(__file__).resolve().parent.parent


def test_generated_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_proto.py", "--check"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_job_states_are_the_celery_era_set() -> None:
    names = [v.name for v in common_pb2.JobState.DESCRIPTOR.values if v.number]
    assert names == [
        "PENDING", "VALIDATING", "RUNNING", "PAUSED", "CANCELLED", "COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED",
        "PAUSE_PENDING",  # pause asked, the running activity not yet ended (added last: numbers stay stable)
    ]


def test_request_travels_as_readable_protobuf_json() -> None:
    request = pipeline_pb2.PipelineRequest(
        source_uri="s3://uploads/clip.mov", expected_sha256="ab" * 32, profile="web", priority=1,
        metadata=common_pb2.AssetMetadata(title="Harbour", collection="news", tenant="acme"),
    )
    payload = DataConverter.default.payload_converter.to_payloads([request])[0]
    assert payload.metadata["encoding"] == b"json/protobuf"
    assert payload.metadata["messageType"] == b"damfleet.v1.PipelineRequest"
    assert b'"sourceUri":"s3://uploads/clip.mov"' in payload.data
    back = DataConverter.default.payload_converter.from_payloads([payload], [pipeline_pb2.PipelineRequest])[0]
    assert back == request
    assert ParseDict(MessageToDict(request), pipeline_pb2.PipelineRequest()) == request
