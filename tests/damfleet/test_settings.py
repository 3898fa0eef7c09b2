"""Settings: one DAMFLEET_ prefix, typed groups, clear errors, secrets redacted."""

from __future__ import annotations

import pytest

from damfleet.settings import SettingsError, load_settings


def test_defaults_and_grouped_variables() -> None:
    settings = load_settings({
        "DAMFLEET_STATE_DIR": "/srv/damfleet",
        "DAMFLEET_TEMPORAL_ADDRESS": "temporal.prod:7233",
        "DAMFLEET_TEMPORAL_NAMESPACE": "media",
        "DAMFLEET_WORKER_CONCURRENCY": "4",
        "DAMFLEET_TRANSCODE_STALL_SECONDS": "45.5",
        "DAMFLEET_DISTRIBUTION_ALLOW_PRIVATE_NETWORKS": "10.0.0.0/8, minio.internal",
        "DAMFLEET_DISTRIBUTION_VERIFY_TLS": "false",
    })
    assert settings.temporal.address == "temporal.prod:7233"
    assert settings.temporal.namespace == "media"
    assert settings.worker.concurrency == 4
    assert settings.transcode.stall_seconds == 45.5
    assert settings.distribution.allow_private_networks == ("10.0.0.0/8", "minio.internal")
    assert settings.distribution.verify_tls is False
    assert settings.storage_root == "file:///srv/damfleet/storage"


def test_aws_variables_are_honoured_but_ours_win() -> None:
    settings = load_settings({
        "AWS_ACCESS_KEY_ID": "aws-key", "AWS_SECRET_ACCESS_KEY": "aws-secret",
        "DAMFLEET_STORAGE_S3_ACCESS_KEY_ID": "ours",
        "DAMFLEET_STORAGE_ROOT": "s3://bucket/prefix",
    })
    assert settings.storage.s3_access_key_id == "ours"
    assert settings.storage.s3_secret_access_key == "aws-secret"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DAMFLEET_WORKER_CONCURRENCY": "many"}, "DAMFLEET_WORKER_CONCURRENCY"),
        ({"DAMFLEET_DISTRIBUTION_VERIFY_TLS": "perhaps"}, "DAMFLEET_DISTRIBUTION_VERIFY_TLS"),
        ({"DAMFLEET_STORAGE_ROOT": "/plain/path"}, "file:// or s3://"),
        ({"DAMFLEET_TRANSCODE_HWACCEL": "cuda-magic"}, "none, nvenc, vaapi or qsv"),
        ({"DAMFLEET_TEMPORAL_TLS_CERT_PATH": "/c.pem"}, "go together"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_redacted_view_hides_secrets() -> None:
    settings = load_settings({
        "DAMFLEET_TEMPORAL_API_KEY": "tk-123", "DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY": "s3-secret",
        "DAMFLEET_TEMPORAL_TLS_KEY_PATH": "/k.pem", "DAMFLEET_TEMPORAL_TLS_CERT_PATH": "/c.pem",
    })
    view = settings.redacted()
    assert view["temporal"]["api_key"] == "***"
    assert view["storage"]["s3_secret_access_key"] == "***"
    assert view["temporal"]["tls_key_path"] == "/k.pem"  # a path is not a secret
    assert "tk-123" not in repr(view) and "s3-secret" not in repr(view)
