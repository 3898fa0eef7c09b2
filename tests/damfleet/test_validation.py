"""Request checks shared by the client and the workflows (:mod:`damfleet.validation`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from damfleet.errors import BadInputError, SourceNotFoundError
from damfleet.profiles import PROFILES
from damfleet.v1 import common_pb2, jobs_pb2, pipeline_pb2
from damfleet.validation import (
    batch_problem,
    check_local_prefix,
    check_local_source,
    dedup_enabled,
    request_problem,
)

KNOWN = ", ".join(sorted(PROFILES))


def _request(**fields: object) -> pipeline_pb2.PipelineRequest:
    base: dict[str, object] = {"source_uri": "file:///srv/clip.mov"}
    base.update(fields)
    return pipeline_pb2.PipelineRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"profile": "nope"}, f"unknown profile 'nope': known profiles are {KNOWN}"),
        ({"priority": 9}, "priority 9 is out of range: use 1 (highest) to 5 (lowest)"),
        ({"priority": -1}, "priority -1 is out of range"),
        ({"source_uri": ""}, "no source given"),
        ({"source_uri": "http://example.com/x.mov"}, "unsupported URI scheme 'http'"),
        ({"source_uri": "clip.mov"}, "source 'clip.mov': not a URI"),
        ({"expected_sha256": "abc"}, "expected sha256 'abc' is not 64 lowercase hex digits"),
    ],
)
def test_request_problems_name_what_is_wrong(fields: dict[str, object], words: str) -> None:
    assert words in request_problem(_request(**fields))


def test_a_good_request_has_no_problem() -> None:
    for priority in range(6):
        assert request_problem(_request(priority=priority, profile="web", expected_sha256="a" * 64)) == ""
    assert request_problem(_request(source_uri="s3://bucket/key.mov")) == ""


def test_batch_problems() -> None:
    assert "needs a manifest, a source prefix or rows" in batch_problem(jobs_pb2.BatchRequest())
    assert "priority 7" in batch_problem(jobs_pb2.BatchRequest(manifest_uri="file:///m.csv", priority=7))
    assert "unknown profile" in batch_problem(jobs_pb2.BatchRequest(source_prefix="s3://b/in/", profile="x"))
    rows = [jobs_pb2.ManifestRow(source_uri="file:///a")]
    assert batch_problem(jobs_pb2.BatchRequest(rows=rows)) == ""


def test_dedup_defaults_to_true_when_the_request_does_not_say() -> None:
    """proto3 would read an absent bool as false; a run started from the Temporal UI with
    only a source URI must get the same dedup as the CLI and the SDK."""
    assert dedup_enabled(pipeline_pb2.PipelineRequest()) is True
    assert dedup_enabled(pipeline_pb2.PipelineRequest(dedup=False)) is False
    assert dedup_enabled(jobs_pb2.BatchRequest()) is True
    assert dedup_enabled(jobs_pb2.BatchRequest(dedup=False)) is False
    from google.protobuf import json_format

    from_ui = json_format.Parse('{"sourceUri": "file:///x.mov"}', pipeline_pb2.PipelineRequest())
    assert dedup_enabled(from_ui) is True
    explicit = json_format.Parse('{"sourceUri": "file:///x.mov", "dedup": false}', pipeline_pb2.PipelineRequest())
    assert dedup_enabled(explicit) is False
    assert common_pb2.JobState.Name(common_pb2.PAUSE_PENDING) == "PAUSE_PENDING"


def test_local_source_checks(tmp_path: Path) -> None:
    # The words ingest uses (damfleet.sources.classify_os_error) for the same problems.
    with pytest.raises(SourceNotFoundError, match=f"no such file: {(tmp_path / 'missing.mov').as_uri()}"):
        check_local_source((tmp_path / "missing.mov").as_uri())
    with pytest.raises(BadInputError, match="is a folder, not a file"):
        check_local_source(tmp_path.as_uri())
    locked = tmp_path / "locked.mov"
    locked.write_bytes(b"x")
    locked.chmod(0)
    if not os.access(locked, os.R_OK):  # root reads anything
        with pytest.raises(BadInputError, match="permission denied"):
            check_local_source(locked.as_uri())
    check_local_source("s3://bucket/not-checked-here.mov")
    with pytest.raises(SourceNotFoundError, match="no such folder"):
        check_local_prefix((tmp_path / "nope").as_uri() + "/")
    check_local_prefix(tmp_path.as_uri() + "/")
