"""activities.common: what every activity wrapper adds to the plain function it wraps."""

from __future__ import annotations

import dataclasses

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.common import translate_errors
from damfleet.errors import BadInputError
from damfleet.v1 import jobs_pb2, stages_pb2


@translate_errors
async def _transcode(fail: bool) -> stages_pb2.TranscodeOutput:
    if fail:
        raise BadInputError("not a video")
    return stages_pb2.TranscodeOutput(renditions=["proxy"])


@translate_errors
async def _release() -> bool:
    return True


@pytest.mark.parametrize("attempt", [1, 3])
async def test_outputs_report_the_attempt_that_made_them(attempt: int) -> None:
    """The workflow learns from the output whether anything was retried
    (PipelineResult.first_attempts_only), so the activity stamps its attempt in."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, attempt=attempt)
    output = await env.run(_transcode, False)
    assert output.attempt == attempt and list(output.renditions) == ["proxy"]
    assert await env.run(_release) is True  # outputs without an attempt field pass unchanged


async def test_outside_an_activity_nothing_is_stamped() -> None:
    output = await _transcode(False)
    assert output.attempt == 0
    assert jobs_pb2.ClaimContentOutput().attempt == 0


async def test_errors_still_leave_as_application_errors() -> None:
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(_transcode, True)
    assert caught.value.non_retryable and "not a video" in caught.value.message
