"""The one error tree: every class decides its own retry, and the policies agree with it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import damfleet
from activities.common import to_application_error
from damfleet import errors
from damfleet.errors import (
    PERMANENT_ERROR_TYPES,
    UNEXPECTED_ERROR_MAX_ATTEMPTS,
    BadInputError,
    DamfleetError,
    StorageUnavailableError,
    ToolCrashedError,
    UnavailableError,
    all_error_classes,
)
from damfleet.policies import ACTIVITY_POLICIES


def _import_every_module() -> None:
    """Load the whole package so a subclass defined anywhere would be found by the walk."""
    for module in pkgutil.walk_packages(damfleet.__path__, "damfleet."):
        if module.name.startswith(("damfleet.v1", "damfleet.cli.__main__")):
            continue
        try:
            importlib.import_module(module.name)
        except ImportError:  # an optional extra (torch, grpc server) missing on this machine
            continue


def test_every_error_class_lives_in_the_one_module_and_states_its_retry() -> None:
    _import_every_module()
    classes = list(all_error_classes())
    assert len(classes) >= 25
    for cls in classes:
        assert cls.__module__ == "damfleet.errors", f"{cls.__qualname__} is defined outside damfleet/errors.py"
        assert cls.__name__ in errors.__all__
        assert isinstance(cls.retryable, bool) and cls.error_type and cls.waiting_reason
        if cls.retryable:
            assert cls.max_attempts is None or cls.max_attempts > 1, cls
            assert cls.error_type not in PERMANENT_ERROR_TYPES, cls
        else:
            assert cls.error_type in PERMANENT_ERROR_TYPES, cls
            assert cls.max_attempts == 1, cls


def test_permanent_types_are_derived_and_in_every_policy() -> None:
    assert {"NoAudioStream", "OutboundBlocked", "BadInput", "ConfigurationError"} <= set(PERMANENT_ERROR_TYPES)
    for policy in ACTIVITY_POLICIES.values():
        assert set(policy.retry.non_retryable_error_types or []) == set(PERMANENT_ERROR_TYPES)


def test_old_import_locations_still_name_the_same_classes() -> None:
    from damfleet.ai.detect import DetectionCancelled
    from damfleet.ai.transcribe import Cancelled, NoAudioStreamError
    from damfleet.delivery.netguard import OutboundBlockedError
    from damfleet.media.tools import ToolTimeoutError
    from damfleet.transcode import errors as transcode_errors

    assert DetectionCancelled is Cancelled is errors.Cancelled
    assert NoAudioStreamError is errors.NoAudioStreamError and OutboundBlockedError is errors.OutboundBlockedError
    assert ToolTimeoutError is errors.ToolTimeoutError
    for name in transcode_errors.__all__:
        assert getattr(transcode_errors, name) is getattr(errors, name)


@pytest.mark.parametrize("cls", [c for c in all_error_classes() if inspect.isclass(c)], ids=lambda c: c.__name__)
def test_each_class_translates_by_its_budget(cls: type[DamfleetError]) -> None:
    first = to_application_error(cls("boom"), attempt=1)
    assert first.type == cls.error_type
    assert first.non_retryable == (not cls.retryable)
    late = to_application_error(cls("boom"), attempt=1000)
    assert late.non_retryable == (not cls.retryable or cls.max_attempts is not None)


def test_outages_never_run_out_of_attempts_but_crashes_and_bugs_do() -> None:
    outage = to_application_error(StorageUnavailableError("S3 endpoint unreachable"), attempt=500)
    assert not outage.non_retryable and outage.type == "StorageUnavailable"
    assert issubclass(StorageUnavailableError, UnavailableError)
    crash = to_application_error(ToolCrashedError("ffmpeg killed by signal 9"), attempt=ToolCrashedError.max_attempts)
    assert crash.non_retryable and "gave up after" in crash.message
    assert not to_application_error(ToolCrashedError("x"), attempt=1).non_retryable
    bug = to_application_error(KeyError("oops"), attempt=UNEXPECTED_ERROR_MAX_ATTEMPTS)
    assert bug.non_retryable and bug.type == "KeyError"
    assert not to_application_error(KeyError("oops"), attempt=1).non_retryable
    bad = to_application_error(BadInputError("not media"), attempt=1)
    assert bad.non_retryable and bad.message == "not media"


def test_s3_connection_failures_are_outages_not_bad_input() -> None:
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError

    from damfleet.storage.s3 import S3Backend

    for exc in (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
                ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), ConnectionRefusedError(111, "refused")):
        mapped = S3Backend._translate(exc, "s3://bucket/key")
        assert isinstance(mapped, StorageUnavailableError), exc
