"""Workflow ids: random, or derived from the request so a duplicate submission names the same run."""

from __future__ import annotations

import hashlib
import uuid

from damfleet.v1 import jobs_pb2, pipeline_pb2

__all__ = ["batch_workflow_id", "new_workflow_id", "request_workflow_id"]


def new_workflow_id(prefix: str = "asset") -> str:
    """A random workflow id: every submission starts its own run."""
    return f"{prefix}-{uuid.uuid4().hex}"


def request_workflow_id(request: pipeline_pb2.PipelineRequest, source_version: str = "") -> str:
    """A workflow id derived from what is submitted, so a duplicate submission maps to the same run.

    The expected checksum, when given, identifies the content (the same bytes under two
    URIs are one asset); otherwise the source URI and its ``source_version`` (size and
    modification time) do, so a file overwritten in place is new work, never the earlier
    run's result. Collection, profile and targets are part of the key: the same file in
    another collection, with another profile or for other targets, is new work.
    """
    if request.expected_sha256:
        what = f"sha256:{request.expected_sha256}"
    else:
        what = f"uri:{request.source_uri}" + (f"@{source_version}" if source_version else "")
    key = "\n".join((request.metadata.collection, request.profile or "default", what, ",".join(request.targets)))
    return f"asset-{hashlib.sha256(key.encode()).hexdigest()[:32]}"


def batch_workflow_id(request: jobs_pb2.BatchRequest) -> str:
    """A batch id derived from its source, so submitting the same manifest twice is one batch."""
    if request.rows:
        return new_workflow_id("batch")
    source = request.manifest_uri or request.source_prefix
    key = "\n".join((request.metadata.collection, request.profile or "default", source))
    return f"batch-{hashlib.sha256(key.encode()).hexdigest()[:24]}"

