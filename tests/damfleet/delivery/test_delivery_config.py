"""Target definitions, Retry-After parsing, webhook signature verification, redelivery plans."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from damfleet.delivery import (
    HttpTargetConfig,
    S3TargetConfig,
    TargetRegistry,
    WebhookVerificationError,
    parse_retry_after,
    parse_target,
    plan_redelivery,
    redact_url,
    sign,
    verify_signature,
)
from damfleet.errors import ConfigurationError
from damfleet.v1 import common_pb2, pipeline_pb2, stages_pb2
from tests.conftest import make_settings


def test_builtin_local_target_needs_no_configuration(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    local = TargetRegistry.from_settings(settings).get("local")
    assert local.type == "local" and Path(local.path) == settings.state_path / "delivered"  # type: ignore[attr-defined]


def test_file_and_inline_definitions_merge_inline_winning(tmp_path: Path) -> None:
    targets_file = tmp_path / "targets.json"
    targets_file.write_text(json.dumps({
        "cdn": {"type": "s3", "bucket": "from-file"},
        "hook": {"type": "webhook", "url": "https://hooks.example.com/x"},
    }))
    settings = make_settings(
        tmp_path, DAMFLEET_DISTRIBUTION_TARGETS_FILE=str(targets_file),
        DAMFLEET_DISTRIBUTION_TARGETS_JSON=json.dumps({"cdn": {"type": "s3", "bucket": "inline"}}),
    )
    registry = TargetRegistry.from_settings(settings)
    assert registry.names() == ["cdn", "hook", "local"]
    cdn = registry.get("cdn")
    assert isinstance(cdn, S3TargetConfig) and cdn.bucket == "inline"


def test_secrets_come_from_env_and_never_show_in_repr() -> None:
    config = parse_target("p", {"type": "http", "url": "https://x.example.com/{filename}",
                                "bearer_token_env": "PARTNER_TOKEN"}, env={"PARTNER_TOKEN": "tok-123"})
    assert isinstance(config, HttpTargetConfig) and config.bearer_token.get_secret_value() == "tok-123"
    assert "tok-123" not in repr(config)
    s3 = parse_target("c", {"type": "s3", "bucket": "b", "secret_access_key": "very-secret"})
    assert "very-secret" not in repr(s3)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"type": "gopher", "url": "gopher://x"}, "unknown target type 'gopher'"),
        ({"url": "https://x.example.com"}, "unknown target type None"),
        ({"type": "http", "url": "not a url"}, "absolute http"),
        ({"type": "http", "url": "https://x.example.com/{nope}"}, "unknown placeholder"),
        ({"type": "http", "url": "https://user:pw@x.example.com/"}, "credentials in the URL"),
        ({"type": "http", "url": "https://x.example.com:99999/"}, "malformed URL"),
        ({"type": "http", "url": "https://x.example.com/", "method": "GET"}, "PUT or POST"),
        ({"type": "s3"}, "missing required setting"),
        ({"type": "s3", "bucket": " "}, "bucket must not be empty"),
        ({"type": "s3", "bucket": "b", "buckett": "typo"}, "unknown setting 'buckett'"),
        ({"type": "s3", "bucket": "b", "part_size_bytes": 1024}, "5 MiB"),
        ({"type": "webhook", "url": "https://h.example.com", "secret_env": "UNSET_VAR_X"}, "not set"),
        ({"type": "local", "concurrency": "many"}, "non-negative integer"),
        ("just a string", "JSON object"),
    ],
)
def test_bad_definitions_fail_naming_the_target(raw: object, words: str) -> None:
    with pytest.raises(ConfigurationError, match="'bad'") as caught:
        parse_target("bad", raw, env={})
    assert words in str(caught.value)


def test_unknown_target_and_broken_json_are_clear(tmp_path: Path) -> None:
    registry = TargetRegistry.from_settings(make_settings(tmp_path))
    with pytest.raises(ConfigurationError, match="unknown delivery target 'cdn'; configured targets: local"):
        registry.get("cdn")
    broken = TargetRegistry.from_settings(make_settings(tmp_path, DAMFLEET_DISTRIBUTION_TARGETS_JSON="{oops"))
    with pytest.raises(ConfigurationError, match="'local'.*not valid JSON"):
        broken.get("local")


def test_one_bad_target_does_not_break_the_others(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, DAMFLEET_DISTRIBUTION_TARGETS_JSON=json.dumps({
        "good": {"type": "s3", "bucket": "b"}, "bad": {"type": "carrier-pigeon"}}))
    registry = TargetRegistry.from_settings(settings)
    assert registry.get("good").type == "s3"
    with pytest.raises(ConfigurationError, match="'bad': unknown target type 'carrier-pigeon'"):
        registry.get("bad")
    assert registry.get("good").type == "s3" and registry.names() == ["bad", "good", "local"]


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("120", cap_seconds=3600) == 120.0
    assert parse_retry_after("999999", cap_seconds=3600) == 3600.0
    assert parse_retry_after(None, cap_seconds=10) is None
    assert parse_retry_after("soon", cap_seconds=10) is None
    now = 1_700_000_000.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:12:20 GMT", cap_seconds=3600, now=now) == 0.0   # in the past
    assert parse_retry_after("Tue, 14 Nov 2023 22:14:20 GMT", cap_seconds=3600, now=now) == pytest.approx(60.0)


def test_redact_url_drops_userinfo_and_query() -> None:
    assert redact_url("https://u:p@h.example.com:8443/a/b?sig=secret") == "https://h.example.com:8443/a/b"


def test_signature_verification() -> None:
    body = b'{"asset_id":"a"}'
    now = time.time()
    ts = int(now)
    good = sign("s3cret", ts, body)
    verify_signature("s3cret", body, str(ts), f"v1={good}", now=now)
    verify_signature("s3cret", body, str(ts), f"v1={'0' * 64}, v1={good}", now=now)      # rotation
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_signature("s3cret", body + b" ", str(ts), f"v1={good}", now=now)
    with pytest.raises(WebhookVerificationError, match="does not match"):
        verify_signature("other", body, str(ts), f"v1={good}", now=now)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_signature("s3cret", body, str(ts), f"v1={good}", now=now + 3600)
    with pytest.raises(WebhookVerificationError, match="no v1"):
        verify_signature("s3cret", body, str(ts), good, now=now)


def test_redelivery_plan_keeps_keys_and_only_failed_items() -> None:
    proxy = common_pb2.Output(uri="file:///s/proxy.mp4", role="proxy", size_bytes=5, sha256="a" * 64)
    poster = common_pb2.Output(uri="file:///s/poster.jpg", role="poster", size_bytes=5, sha256="b" * 64)
    result = pipeline_pb2.PipelineResult(
        asset_id="asset0001", workflow_id="wf", state=common_pb2.COMPLETED_WITH_ERRORS, outputs=[proxy, poster],
        receipts=[
            stages_pb2.DeliveryReceipt(target="cdn", role="proxy", ok=True, source_uri=proxy.uri, idempotency_key="k1"),
            stages_pb2.DeliveryReceipt(target="cdn", role="poster", ok=False, source_uri=poster.uri,
                                       idempotency_key="k2"),
            stages_pb2.DeliveryReceipt(target="partner", role="proxy", ok=False, source_uri=proxy.uri,
                                       idempotency_key="k3"),
            stages_pb2.DeliveryReceipt(target="hook", role="webhook", target_type="webhook", ok=False,
                                       idempotency_key="k4"),
        ],
    )
    plan = plan_redelivery(result)
    assert [(d.target, d.output.role, d.idempotency_key) for d in plan.deliveries] == [
        ("cdn", "poster", "k2"), ("partner", "proxy", "k3")]
    assert [(n.target, n.idempotency_key, len(n.receipts)) for n in plan.notifications] == [("hook", "k4", 3)]
    only_cdn = plan_redelivery(result, ["cdn"])
    assert [d.target for d in only_cdn.deliveries] == ["cdn"] and not only_cdn.notifications


def test_public_surface_is_pinned() -> None:
    """The package's exported names change only on purpose."""
    from damfleet import delivery

    assert sorted(delivery.__all__) == [
        "BUILTIN_LOCAL_TARGET", "DeliveryItem", "DeliveryResult", "Distributor", "HttpTargetConfig",
        "LocalTargetConfig", "OutboundBlockedError", "OutboundPolicy", "S3TargetConfig", "SIGNATURE_HEADER",
        "TARGET_TYPES", "TIMESTAMP_HEADER", "TargetConfig", "TargetRegistry", "TargetType", "WebhookTargetConfig",
        "WebhookVerificationError", "build_notification", "delivery_item", "parse_retry_after", "parse_target",
        "plan_redelivery", "receipt", "redact_url", "sign", "verify_request", "verify_signature",
    ]
    assert all(hasattr(delivery, name) for name in delivery.__all__)
