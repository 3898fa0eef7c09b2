"""Checks on a request before a run starts, shared by the client and the workflows.

A bad request should be refused at the edge, with one line naming what is wrong, instead
of becoming a FAILED run an operator has to open to understand. The client (and so the
CLI) runs every check here before it starts a workflow; the workflows run the pure ones
again on their input, because a run can also be started from the Temporal CLI or UI,
which bypass the client. Both raise the same :class:`~damfleet.errors.BadInputError`
with the same words, so "unknown profile 'x'" reads the same whichever way it came.

The pure checks (:func:`request_problem`, :func:`batch_problem`) only look at the
message, so they are deterministic and safe inside a workflow. The filesystem checks
(:func:`check_local_source`, :func:`check_local_manifest`) touch the disk and belong to
the client only; in a workflow the ingest activity reports a missing file with the same
``no such file: <path>`` words (:mod:`damfleet.storage.local`).

``dedup`` is an ``optional bool`` in the protos: a request that does not say (a run
started from the Temporal UI with just a source URI) gets the same default as the CLI
and the SDK, :data:`DEDUP_DEFAULT`, instead of proto3's silent ``false``.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from damfleet.errors import BadInputError, SourceNotFoundError
from damfleet.profiles import PROFILES

__all__ = [
    "DEDUP_DEFAULT",
    "MAX_PRIORITY",
    "batch_problem",
    "check_local_manifest",
    "check_local_prefix",
    "check_local_source",
    "check_priority",
    "check_profile",
    "dedup_enabled",
    "request_problem",
    "validate_batch_request",
    "validate_pipeline_request",
]

#: Temporal task priorities run 1 (highest) to 5 (lowest); 0 means "the default".
MAX_PRIORITY = 5

#: What an AssetPipeline or BatchIngest request without an explicit ``dedup`` gets; the
#: client and CLI default to ``DAMFLEET_JOBS_DEDUP`` (also true) and always set it.
DEDUP_DEFAULT = True


def dedup_enabled(request: Any) -> bool:
    """The request's ``dedup``, or :data:`DEDUP_DEFAULT` when the request does not say."""
    return bool(request.dedup) if request.HasField("dedup") else DEDUP_DEFAULT


def check_priority(priority: int) -> None:
    """Refuse a priority outside 0 (default) .. 5."""
    if not 0 <= priority <= MAX_PRIORITY:
        raise BadInputError(f"priority {priority} is out of range: use 1 (highest) to {MAX_PRIORITY} (lowest)")


def check_profile(name: str) -> None:
    """Refuse a profile name that is not defined ("" means the default profile)."""
    if name and name not in PROFILES:
        raise BadInputError(f"unknown profile {name!r}: known profiles are {', '.join(sorted(PROFILES))}")


def _check_uri(uri: str, what: str) -> None:
    if not uri:
        raise BadInputError(f"no {what} given")
    if not uri.startswith(("file://", "s3://", "/")):
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        hint = f"unsupported URI scheme {scheme!r}" if scheme else "not a URI"
        raise BadInputError(f"{what} {uri!r}: {hint}; use file://, s3:// or an absolute path")


def request_problem(request: Any) -> str:
    """What is wrong with a ``PipelineRequest`` (empty string when nothing is).

    Pure: safe in a workflow. The client calls :func:`validate_pipeline_request` instead.
    """
    try:
        _check_uri(request.source_uri, "source")
        check_profile(request.profile)
        check_priority(request.priority)
        sha = request.expected_sha256
        if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
            raise BadInputError(f"expected sha256 {sha!r} is not 64 lowercase hex digits")
    except BadInputError as exc:
        return str(exc)
    return ""


def batch_problem(request: Any) -> str:
    """What is wrong with a ``BatchRequest`` (empty string when nothing is). Pure."""
    try:
        sources = [s for s in (request.manifest_uri, request.source_prefix) if s]
        if len(sources) + bool(request.rows) + request.HasField("prepared") == 0:
            raise BadInputError("a batch needs a manifest, a source prefix or rows")
        for source in sources:
            _check_uri(source, "manifest" if source == request.manifest_uri else "source prefix")
        check_profile(request.profile)
        check_priority(request.priority)
        if request.max_in_flight < 0:
            raise BadInputError(f"max in flight {request.max_in_flight} must be positive")
    except BadInputError as exc:
        return str(exc)
    return ""


def validate_pipeline_request(request: Any) -> None:
    """Raise ``BadInputError`` for a request the workflow would refuse (pure checks)."""
    problem = request_problem(request)
    if problem:
        raise BadInputError(problem)


def validate_batch_request(request: Any) -> None:
    """Raise ``BadInputError`` for a batch request the workflow would refuse (pure checks)."""
    problem = batch_problem(request)
    if problem:
        raise BadInputError(problem)


def _local_path(uri: str) -> str | None:
    if uri.startswith(("file://", "/")):
        from damfleet.storage.local import path_from_uri

        return str(path_from_uri(uri))
    return None


def check_local_source(uri: str) -> None:
    """For a ``file://`` source: it exists, is a file and is readable by this user.

    The failure is built by :func:`damfleet.sources.classify_os_error`, the function the
    ingest activity uses for the same problem, so a run started around the client fails in
    the same words. ``s3://`` sources are not checked here: the client may hold no storage
    credentials; ingest reports them.
    """
    path = _local_path(uri)
    if path is None:
        return
    from damfleet.sources import classify_os_error

    if "\0" in path:
        from damfleet.sources import local_path_bytes

        local_path_bytes(uri)  # refuses the NUL byte in the words ingest uses (os.open would raise ValueError)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise classify_os_error(exc, uri) from None
    try:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise classify_os_error(IsADirectoryError(errno.EISDIR, "is a directory"), uri)
    finally:
        os.close(fd)


def check_local_manifest(uri: str) -> None:
    """For a ``file://`` manifest: it exists and is readable (the words ingest and the
    manifest reader use for the same problem)."""
    check_local_source(uri)


def check_local_prefix(uri: str) -> None:
    """For a ``file://`` folder to batch: it exists and is a folder. An empty or missing
    folder would otherwise become a batch of zero assets that looks finished."""
    path = _local_path(uri)
    if path is None:
        return
    if not os.path.exists(path):
        raise SourceNotFoundError(f"no such folder: {path}")
    if not os.path.isdir(path):
        raise BadInputError(f"not a folder: {path} (give a .csv or .xlsx manifest, or a folder)")
