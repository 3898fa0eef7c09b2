"""Settings: one DAMFLEET_ prefix, typed groups, clear errors, secrets redacted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from damfleet.settings import SettingsError, load_settings, read_setting_file, setting_names


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
    assert settings.storage.s3_access_key_id.get_secret_value() == "ours"
    assert settings.storage.s3_secret_access_key.get_secret_value() == "aws-secret"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DAMFLEET_WORKER_CONCURRENCY": "many"}, "DAMFLEET_WORKER_CONCURRENCY must be a whole number, got 'many'"),
        ({"DAMFLEET_DISTRIBUTION_VERIFY_TLS": "perhaps"}, "DAMFLEET_DISTRIBUTION_VERIFY_TLS must be true or false"),
        ({"DAMFLEET_STORAGE_ROOT": "/plain/path"}, "DAMFLEET_STORAGE_ROOT must be a file:// or s3:// URI"),
        ({"DAMFLEET_TRANSCODE_HWACCEL": "cuda-magic"}, "DAMFLEET_TRANSCODE_HWACCEL must be none, nvenc, vaapi or qsv"),
        ({"DAMFLEET_STORAGE_S3_ADDRESSING_STYLE": "dns"}, "DAMFLEET_STORAGE_S3_ADDRESSING_STYLE must be path, virtual"),
        ({"DAMFLEET_AI_WHISPER_MIN_COVERAGE": "1.5"}, "DAMFLEET_AI_WHISPER_MIN_COVERAGE must be between 0 and 1"),
        ({"DAMFLEET_FIXITY_REPLICA_ROOTS": "[oops"}, "DAMFLEET_FIXITY_REPLICA_ROOTS is not a valid JSON list"),
        ({"DAMFLEET_TEMPORAL_TLS_CERT_PATH": "/c.pem"}, "go together"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)) as caught:
        load_settings(env)
    assert "\n" not in str(caught.value), "one line, as the CLI prints it after 'error: '"


def test_every_bad_value_is_named_on_one_line() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"DAMFLEET_LOG_FORMAT": "xml", "DAMFLEET_JOBS_DEDUP": "maybe"})
    assert "DAMFLEET_LOG_FORMAT" in str(caught.value) and "DAMFLEET_JOBS_DEDUP" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_list_settings_take_json_or_commas_and_switches_take_words() -> None:
    settings = load_settings({
        "DAMFLEET_INGEST_SOURCE_ROOTS": '["file:///a,b", "s3://bucket"]',
        "DAMFLEET_FIXITY_REPAIR_TARGETS": " cdn, ,nas ",
        "DAMFLEET_TEMPORAL_TLS": "on", "DAMFLEET_JOBS_DEDUP": "", "DAMFLEET_INGEST_FOLLOW_SYMLINKS": "No",
    })
    assert settings.ingest.source_roots == ("file:///a,b", "s3://bucket")
    assert settings.fixity.repair_targets == ("cdn", "nas")
    assert settings.temporal.tls is True
    assert settings.jobs.dedup is False            # an empty switch is off, as it always was
    assert settings.ingest.follow_symlinks is False


def test_only_exact_capitalised_names_are_read() -> None:
    """Lower-case spellings and a bare group name were never settings; unknown names are ignored."""
    settings = load_settings({
        "damfleet_worker_identity": "lower", "DAMFLEET_AI": "{not json", "DAMFLEET_WORKER_NO_SUCH_KNOB": "1",
    })
    assert settings.worker.identity == ""
    assert settings.ai == load_settings({}).ai


def test_variable_names_are_the_documented_ones() -> None:
    names = setting_names()
    assert {"DAMFLEET_STATE_DIR", "DAMFLEET_LOG_FILE_MAX_BYTES", "DAMFLEET_WORKER_QUEUE_SUFFIX",
            "DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH", "DAMFLEET_DISTRIBUTION_TARGETS_JSON",
            "DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY", "DAMFLEET_TRANSCODE_LIGHT_QUEUE",
            "DAMFLEET_TRANSCODE_LIGHT_CONCURRENCY", "DAMFLEET_TRANSCODE_LIGHT_VIPS_THREADS"} <= names
    assert len(names) == 132
    assert all(name == name.upper() and name.startswith("DAMFLEET_") for name in names)


def test_secrets_stay_out_of_repr_logs_and_dumps() -> None:
    settings = load_settings({
        "DAMFLEET_TEMPORAL_API_KEY": "tk-123", "DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY": "s3-secret",
        "DAMFLEET_AI_INFERENCE_TOKEN": "inf-tok", "DAMFLEET_DISTRIBUTION_WEBHOOK_SECRET": "whsec",
        "DAMFLEET_TEMPORAL_CODEC_KEYS": "k1=abc", "DAMFLEET_TEMPORAL_CODEC_SERVER_TOKEN": "cst",
        "DAMFLEET_TEMPORAL_TLS_KEY_PATH": "/k.pem", "DAMFLEET_TEMPORAL_TLS_CERT_PATH": "/c.pem",
    })
    secrets = ("tk-123", "s3-secret", "inf-tok", "whsec", "k1=abc", "cst")
    for view in (repr(settings), str(settings), settings.model_dump_json(), f"{settings.temporal}"):
        assert not [s for s in secrets if s in view], view
    assert settings.temporal.tls_key_path == "/k.pem"  # a path is not a secret
    assert settings.temporal.api_key.get_secret_value() == "tk-123"
    assert settings.distribution.webhook_secret.get_secret_value() == "whsec"



def test_a_tls_file_a_setting_names_is_read_or_refused_naming_the_setting(tmp_path: Path) -> None:
    """Temporal's and the inference service's TLS files go through one reader: an unreadable
    one fails where the process starts, with the variable and the path in the message."""
    from damfleet.ai.security import channel_credentials
    from damfleet.errors import ConfigurationError
    from damfleet.temporal import tls_config

    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    assert read_setting_file(str(ca), "a CA") == ca.read_bytes()
    assert read_setting_file("", "a CA") is None
    missing = str(tmp_path / "nope.pem")
    settings = load_settings({"DAMFLEET_TEMPORAL_TLS": "true", "DAMFLEET_TEMPORAL_TLS_CA_PATH": missing,
                              "DAMFLEET_AI_INFERENCE_TLS_CA_PATH": missing})
    with pytest.raises(ConfigurationError, match=f"Temporal CA certificate \\(DAMFLEET_TEMPORAL_TLS_CA_PATH\\) {missing}: "
                                                 "No such file"):
        tls_config(settings.temporal)
    with pytest.raises(ConfigurationError, match=f"inference service's CA certificate "
                                                 f"\\(DAMFLEET_AI_INFERENCE_TLS_CA_PATH\\) {missing}: No such file"):
        channel_credentials(settings.ai)
