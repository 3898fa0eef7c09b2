"""The one botocore error map shared by storage and S3 delivery: each fault, each caller's reading."""

from __future__ import annotations

import aiohttp
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, ParamValidationError

from damfleet.errors import (
    BadInputError,
    ConfigurationError,
    DamfleetError,
    SourceNotFoundError,
    StorageUnavailableError,
    TargetRejectedError,
    TargetUnavailableError,
)
from damfleet.storage.s3_io import STORAGE_WORDS, TARGET_WORDS, S3ErrorMap, S3Fault, s3_fault


def _answer(status: int, code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


@pytest.mark.parametrize(
    ("exc", "fault", "storage", "target"),
    [
        (_answer(404, "NoSuchKey"), S3Fault.NOT_FOUND, SourceNotFoundError, TargetRejectedError),
        (_answer(404, "NoSuchBucket"), S3Fault.NO_BUCKET, ConfigurationError, ConfigurationError),
        (_answer(403, "SignatureDoesNotMatch"), S3Fault.BAD_CREDENTIALS, ConfigurationError, ConfigurationError),
        (_answer(403, "AccessDenied"), S3Fault.ACCESS_DENIED, ConfigurationError, TargetRejectedError),
        (_answer(503, "SlowDown"), S3Fault.UNAVAILABLE, StorageUnavailableError, TargetUnavailableError),
        (_answer(429, "TooManyRequests"), S3Fault.UNAVAILABLE, StorageUnavailableError, TargetUnavailableError),
        (_answer(400, "InvalidArgument", "bad part"), S3Fault.REFUSED, BadInputError, TargetRejectedError),
        (NoCredentialsError(), S3Fault.NO_CREDENTIALS, ConfigurationError, ConfigurationError),
        (ParamValidationError(report="Key is empty"), S3Fault.BAD_REQUEST, BadInputError, ConfigurationError),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), S3Fault.UNREACHABLE,
         StorageUnavailableError, TargetUnavailableError),
        (ConnectionResetError(104, "reset"), S3Fault.UNREACHABLE, StorageUnavailableError, TargetUnavailableError),
        (TimeoutError(), S3Fault.UNREACHABLE, StorageUnavailableError, TargetUnavailableError),
        (aiohttp.ServerDisconnectedError(), S3Fault.UNREACHABLE, StorageUnavailableError, TargetUnavailableError),
    ],
)
def test_one_table_two_readings(
    exc: Exception, fault: S3Fault, storage: type[DamfleetError], target: type[DamfleetError]
) -> None:
    assert s3_fault(exc).fault is fault
    on_storage = S3ErrorMap(STORAGE_WORDS, {"where": "s3://media/a/b"}).translate(exc)
    on_target = S3ErrorMap(TARGET_WORDS, {"name": "cdn", "bucket": "media"}).translate(exc, "upload to s3://media/k")
    assert type(on_storage) is storage and type(on_target) is target
    assert "'cdn'" in str(on_target)
    if storage is not ConfigurationError or fault is not S3Fault.NO_CREDENTIALS:
        assert "s3://media" in str(on_storage)
    # Outages are retryable, verdicts on credentials, buckets and requests final.
    assert on_storage.retryable == on_target.retryable == (fault in (S3Fault.UNAVAILABLE, S3Fault.UNREACHABLE))


def test_the_store_answer_is_named_and_unknown_errors_pass_through_storage() -> None:
    target = S3ErrorMap(TARGET_WORDS, {"name": "cdn", "bucket": "media"})
    assert "503 SlowDown" in str(target.translate(_answer(503, "SlowDown"), "upload"))
    storage = S3ErrorMap(STORAGE_WORDS, {"where": "s3://media/k"})
    bug = KeyError("oops")
    assert storage.translate(bug) is bug, "a bug stays a bug (a few attempts), not an outage"
    assert isinstance(target.translate(bug), TargetUnavailableError)
    with pytest.raises(StorageUnavailableError, match="unreachable for s3://media/k") as caught, storage.mapping():
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert isinstance(caught.value.__cause__, EndpointConnectionError)


def test_every_words_table_names_every_fault_it_must() -> None:
    for words in (STORAGE_WORDS, TARGET_WORDS):
        assert set(S3Fault) - {S3Fault.OTHER} <= set(words)
