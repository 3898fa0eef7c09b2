"""The policy table: every activity routed and bounded, permanent errors never retried."""

from __future__ import annotations

from datetime import timedelta

from damfleet.errors import PERMANENT_ERROR_TYPES, TransientError
from damfleet.policies import (
    ACTIVITY_POLICIES,
    ALL_QUEUES,
    ActivityName,
    Queue,
    default_concurrency,
    lane_of,
    policy_for,
)


def test_every_activity_name_has_a_policy_on_a_known_queue() -> None:
    names = {v for k, v in vars(ActivityName).items() if not k.startswith("_")}
    assert names == set(ACTIVITY_POLICIES)
    for policy in ACTIVITY_POLICIES.values():
        assert policy.task_queue in ALL_QUEUES and policy.task_queue != Queue.PIPELINE
        assert set(PERMANENT_ERROR_TYPES) <= set(policy.retry.non_retryable_error_types or [])
        assert TransientError.error_type not in (policy.retry.non_retryable_error_types or [])


def test_queue_policies_follow_their_load_profiles() -> None:
    ingest, transcode = policy_for(ActivityName.INGEST), policy_for(ActivityName.TRANSCODE)
    enrich, deliver = policy_for(ActivityName.ENRICH), policy_for(ActivityName.DELIVER)
    assert ingest.retry.maximum_attempts <= 3, "ingest retries little"
    assert transcode.heartbeat is not None and transcode.heartbeat <= timedelta(seconds=60)
    assert transcode.retry.backoff_coefficient > 1 and transcode.retry.maximum_interval is not None
    assert enrich.retry.backoff_coefficient > 1 and enrich.heartbeat is not None
    assert deliver.retry.maximum_attempts == 0 and deliver.schedule_to_close >= timedelta(hours=6), \
        "distribution keeps retrying for hours, bounded overall"
    assert default_concurrency(Queue.TRANSCODE) == 1 and default_concurrency(Queue.AI_ENRICH) == 1
    assert default_concurrency(Queue.DISTRIBUTION) >= 100
    assert 20 <= default_concurrency(Queue.INGEST) <= 50


def test_lanes_route_to_the_same_suffix() -> None:
    assert lane_of("q-pipeline") == ""
    assert lane_of("q-pipeline-eu1") == "-eu1"
    assert lane_of("custom-queue") == ""
    assert policy_for(ActivityName.TRANSCODE).options("-eu1")["task_queue"] == "q-transcode-eu1"
