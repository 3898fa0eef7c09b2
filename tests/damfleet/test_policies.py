"""The policy table: every activity routed and bounded, permanent errors never retried."""

from __future__ import annotations

from datetime import timedelta

import pytest

from damfleet import policies
from damfleet.errors import PERMANENT_ERROR_TYPES, TransientError
from damfleet.policies import (
    ACTIVITY_POLICIES,
    ALL_QUEUES,
    ActivityName,
    Queue,
    default_concurrency,
    lane_of,
    policy_for,
    retry_window,
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
    assert transcode.heartbeat is not None and transcode.heartbeat <= timedelta(seconds=60)
    assert transcode.retry.backoff_coefficient > 1 and transcode.retry.maximum_interval is not None
    assert enrich.retry.backoff_coefficient > 1 and enrich.heartbeat is not None
    assert deliver.schedule_to_close is not None and deliver.schedule_to_close >= timedelta(hours=6), \
        "distribution keeps retrying for hours, bounded overall"
    assert default_concurrency(Queue.TRANSCODE) == 1 and default_concurrency(Queue.AI_ENRICH) == 1
    assert default_concurrency(Queue.DISTRIBUTION) >= 100
    assert 20 <= default_concurrency(Queue.INGEST) <= 50
    assert ingest.heartbeat is not None and ingest.heartbeat <= timedelta(seconds=60)


def test_no_policy_counts_attempts_and_every_one_is_bounded_by_a_retry_window() -> None:
    """Temporal counts timeouts as attempts: a limit here would let worker deaths fail a
    good asset. Attempt budgets belong to the errors; the window bounds the rest."""
    for name, policy in ACTIVITY_POLICIES.items():
        assert policy.retry.maximum_attempts == 0, name
        assert policy.schedule_to_close is not None and policy.schedule_to_close >= timedelta(hours=1), name
        assert policy.retry.maximum_interval is not None and policy.retry.maximum_interval <= timedelta(minutes=15)


def test_an_ingest_outage_is_waited_out_for_hours_and_resumes_within_30s() -> None:
    ingest = policy_for(ActivityName.INGEST)
    assert ingest.schedule_to_close is not None and ingest.schedule_to_close >= timedelta(hours=2)
    assert ingest.retry.maximum_interval is not None and ingest.retry.maximum_interval <= timedelta(seconds=30)


def test_bookkeeping_activities_time_out_in_seconds_or_heartbeat() -> None:
    claim = policy_for(ActivityName.CLAIM_CONTENT)
    assert claim.start_to_close <= timedelta(seconds=60), "a claim lost with its worker is retried at once"
    for name in (ActivityName.DISCARD_ASSET, ActivityName.READ_MANIFEST, ActivityName.LIST_NEW_SOURCES,
                 ActivityName.READ_MANIFEST_PAGE):
        policy = policy_for(name)
        assert policy.heartbeat is not None and policy.heartbeat <= timedelta(seconds=30), name


def test_retry_window_is_a_setting_per_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DAMFLEET_RETRY_WINDOW_INGEST_HOURS", "12")
    assert retry_window("INGEST", 6) == timedelta(hours=12)
    monkeypatch.delenv("DAMFLEET_RETRY_WINDOW_INGEST_HOURS")
    assert retry_window("INGEST", 6) == timedelta(hours=6)
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv("DAMFLEET_RETRY_WINDOW_INGEST_HOURS", bad)
        with pytest.raises(ValueError, match="DAMFLEET_RETRY_WINDOW_INGEST_HOURS"):
            retry_window("INGEST", 6)


def test_lanes_route_to_the_same_suffix() -> None:
    assert lane_of("q-pipeline") == ""
    assert lane_of("q-pipeline-eu1") == "-eu1"
    assert lane_of("custom-queue") == ""
    assert policy_for(ActivityName.TRANSCODE).options("-eu1")["task_queue"] == "q-transcode-eu1"


def test_batched_deliveries_count_as_the_distribution_stage() -> None:
    """Attempts and waiting reasons of deliver_outputs show on the distribution stage, like deliver_output's."""
    from damfleet.retries import STAGE_OF_ACTIVITY

    assert STAGE_OF_ACTIVITY[ActivityName.DELIVER_BATCH] == STAGE_OF_ACTIVITY[ActivityName.DELIVER] == "distribution"
    assert policy_for(ActivityName.DELIVER_BATCH) == policy_for(ActivityName.DELIVER)


def test_images_transcode_on_the_light_queue_unless_it_is_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policies, "TRANSCODE_LIGHT_QUEUE", True)
    assert policies.transcode_queue("image") == Queue.TRANSCODE_LIGHT
    assert policies.transcode_queue("video") == policies.transcode_queue("audio") == Queue.TRANSCODE
    options = policy_for(ActivityName.TRANSCODE).options("-eu1", queue=policies.transcode_queue("image"))
    assert options["task_queue"] == "q-transcode-light-eu1"
    monkeypatch.setattr(policies, "TRANSCODE_LIGHT_QUEUE", False)
    assert policies.transcode_queue("image") == Queue.TRANSCODE

    monkeypatch.delenv("DAMFLEET_TRANSCODE_LIGHT_QUEUE", raising=False)
    assert policies._light_queue_setting() is True
    monkeypatch.setenv("DAMFLEET_TRANSCODE_LIGHT_QUEUE", "off")
    assert policies._light_queue_setting() is False
    monkeypatch.setenv("DAMFLEET_TRANSCODE_LIGHT_QUEUE", "sometimes")
    with pytest.raises(ValueError, match="DAMFLEET_TRANSCODE_LIGHT_QUEUE='sometimes' must be true or false"):
        policies._light_queue_setting()
