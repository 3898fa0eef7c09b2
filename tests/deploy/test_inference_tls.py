"""The Helm chart's inference security (components.inference.security): rendered offline, and
the rendered exec probe run for real against ``damfleet inference serve`` over TLS.

Certificates are generated with ``cryptography`` (tests/damfleet/ai/test_inference_security.py):
a CA, a server certificate for the Service name, a client certificate, and an unrelated CA.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.damfleet.ai.test_inference_security import _issue
from tests.deploy.deploy_checks import (
    CHART,
    Render,
    by_kind,
    check_settings_env,
    container,
    plain_env,
    secret_env,
    validate_objects,
)
from tests.deploy.deploy_checks import release_config as config
from tests.deploy.deploy_checks import release_name as name

TOKEN = "probe-token-for-tests"
SECURE = {
    "components": {
        "inference": {
            "enabled": True,
            "security": {
                "tls": {"existingSecret": "inference-tls", "requireClientCert": True, "clientSecret": "inference-client"},
                "tokenSecret": {"name": "inference-token"},
            },
        }
    }
}


def volumes(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}


def mounts(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in container(deployment)["volumeMounts"]}


def test_tls_and_token_reach_the_service_and_its_callers_only_by_secret(render: Render) -> None:
    objects = render(SECURE)
    validate_objects(objects)
    assert not by_kind(objects, "Secret"), "the chart references Secrets, never creates them"
    deployments = by_kind(objects, "Deployment")
    server, client = deployments[name("inference")], deployments[name("ai_enrich")]
    for d in (server, client):
        assert secret_env(d)["DAMFLEET_AI_INFERENCE_TOKEN"] == {"name": "inference-token", "key": "token"}
        assert all(m["readOnly"] for n, m in mounts(d).items() if n.startswith("inference-"))
        check_settings_env(config(objects), d)  # loads, and no secret given as a plain value
    # The server gets its key; a caller gets only the CA (and its own client pair).
    assert [i["key"] for i in volumes(server)["inference-tls"]["secret"]["items"]] == ["tls.crt", "tls.key", "ca.crt"]
    assert [i["key"] for i in volumes(client)["inference-tls"]["secret"]["items"]] == ["ca.crt"]
    assert [i["key"] for i in volumes(client)["inference-client-tls"]["secret"]["items"]] == ["tls.crt", "tls.key"]
    env = plain_env(server)
    assert env["DAMFLEET_AI_INFERENCE_TLS_CERT_PATH"] == "/etc/damfleet/inference-tls/tls.crt"
    assert env["DAMFLEET_AI_INFERENCE_TLS_CLIENT_CA_PATH"] == "/etc/damfleet/inference-client-tls/ca.crt"
    assert env["DAMFLEET_AI_INFERENCE_TLS_SERVER_NAME"] == name("inference"), "the probe dials 127.0.0.1"
    client_env = plain_env(client)
    assert client_env["DAMFLEET_AI_INFERENCE_TLS_CA_PATH"] == "/etc/damfleet/inference-tls/ca.crt"
    assert client_env["DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH"] == "/etc/damfleet/inference-client-tls/tls.key"
    # Nothing secret, and nothing inference-security at all, in the shared ConfigMap; other pools untouched.
    data = config(objects)["data"]
    assert not any("INFERENCE_T" in k for k in data), data
    for pool in ("pipeline", "ingest", "transcode", "distribution"):
        d = deployments[name(pool)]
        assert not any("INFERENCE" in e["name"] for e in container(d).get("env", []))
        assert not any(n.startswith("inference-") for n in volumes(d))


def test_probes_switch_to_exec_over_tls_and_stay_grpc_without(render: Render) -> None:
    secure = container(by_kind(render(SECURE), "Deployment")[name("inference")])
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert "grpc" not in secure[kind]
        command = secure[kind]["exec"]["command"]
        assert command[:3] == ["python", "-m", "damfleet.ai.probe"]
        assert float(command[command.index("--timeout") + 1]) < secure[kind]["timeoutSeconds"]
        assert ("--liveness" in command) == (kind == "livenessProbe")
    token_only = {"components": {"inference": {"enabled": True, "security": {"tokenSecret": {"name": "t"}}}}}
    plain = container(by_kind(render(token_only), "Deployment")[name("inference")])
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert plain[kind]["grpc"] == {"port": 50051} and "exec" not in plain[kind]
    assert not any(e["name"].startswith("DAMFLEET_AI_INFERENCE_TLS") for e in plain["env"])


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"requireClientCert": True}, "requireClientCert needs tls.existingSecret"),
        ({"existingSecret": "s", "requireClientCert": True}, "requireClientCert needs tls.clientSecret"),
    ],
)
def test_incomplete_mutual_tls_fails_with_a_message(render: Render, tls: dict[str, Any], message: str) -> None:
    import helm_python as helm

    with pytest.raises(helm.HelmError, match=message):
        render({"components": {"inference": {"enabled": True, "security": {"tls": tls}}}})


# --- the rendered probe against a real service ------------------------------------------------


@pytest.fixture(scope="module")
def secrets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each Secret's files as Kubernetes would mount them: {mount path: folder}, plus an unrelated CA."""
    root = tmp_path_factory.mktemp("secrets")
    server_tls, client_tls, other = root / "inference-tls", root / "inference-client-tls", root / "other"
    for folder in (server_tls, client_tls, other):
        folder.mkdir()
    ca = _issue(server_tls, "ca", "damfleet test CA", issuer=None)
    _issue(server_tls, "tls", "inference", issuer=ca, server=True, dns_names=("fleet-damfleet-inference",))
    _issue(client_tls, "tls", "ai-worker", issuer=ca, client=True)
    (client_tls / "ca.crt").write_bytes((server_tls / "ca.crt").read_bytes())
    _issue(other, "ca", "someone else's CA", issuer=None)
    for folder in (server_tls, other):
        (folder / "ca.key").unlink()
    return {"/etc/damfleet/inference-tls": server_tls, "/etc/damfleet/inference-client-tls": client_tls,
            "other-ca": other / "ca.crt"}


def _pod_env(objects: list[dict[str, Any]], deployment: dict[str, Any], secrets: dict[str, Path], tmp_path: Path,
             port: int) -> dict[str, str]:
    """The container's environment as the kubelet would build it, with this machine's paths and port."""
    env = dict(os.environ) | config(objects)["data"] | plain_env(deployment)
    for key, value in list(env.items()):
        for mount, folder in secrets.items():
            if value.startswith(mount + "/"):
                env[key] = str(folder / value.removeprefix(mount + "/"))
    refs = secret_env(deployment)
    assert refs["DAMFLEET_AI_INFERENCE_TOKEN"] == {"name": "inference-token", "key": "token"}
    env["DAMFLEET_AI_INFERENCE_TOKEN"] = TOKEN  # the Secret's value
    env |= {"DAMFLEET_STATE_DIR": str(tmp_path / "state"), "DAMFLEET_STORAGE_ROOT": (tmp_path / "storage").as_uri(),
            "DAMFLEET_AI_INFERENCE_LISTEN": f"127.0.0.1:{port}", "DAMFLEET_AI_INFERENCE_METRICS_PORT": "0"}
    return env


def _probe(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable if command[0] == "python" else command[0], *command[1:]]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def served(render: Render, secrets: dict[str, Path], tmp_path: Path) -> Iterator[tuple[dict[str, Any], dict[str, str]]]:
    """The inference pod's container, run as rendered (command, env, mounted Secrets); yields (container, env)."""
    objects = render(SECURE)
    deployment = by_kind(objects, "Deployment")[name("inference")]
    c = container(deployment)
    env = _pod_env(objects, deployment, secrets, tmp_path, free_port())
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "damfleet.cli", *c["command"][1:]], env=env,
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180  # the startup probe's job: wait for the models to load
        while (result := _probe(c["startupProbe"]["exec"]["command"], env)).returncode != 0:
            assert server.poll() is None and time.monotonic() < deadline, result.stderr + log.read_text()[-3000:]
            time.sleep(0.5)
        yield c, env
    finally:
        server.terminate()
        server.wait(60)


def test_rendered_probe_passes_over_tls_and_fails_without_the_ca_token_or_client_cert(
    served: tuple[dict[str, Any], dict[str, str]], secrets: dict[str, Path]
) -> None:
    c, env = served
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        result = _probe(c[kind]["exec"]["command"], env)
        assert result.returncode == 0, (kind, result.stderr)
    readiness = c["readinessProbe"]["exec"]["command"]
    wrong = {
        "no token": {"DAMFLEET_AI_INFERENCE_TOKEN": ""},
        "wrong token": {"DAMFLEET_AI_INFERENCE_TOKEN": "guess"},
        "wrong CA": {"DAMFLEET_AI_INFERENCE_TLS_CA_PATH": str(secrets["other-ca"])},
        "no client certificate": {"DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH": "",
                                  "DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH": ""},
        "plaintext": {"DAMFLEET_AI_INFERENCE_TLS_CA_PATH": "", "DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH": "",
                      "DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH": ""},
    }
    for what, change in wrong.items():
        result = _probe(readiness, env | change)
        assert result.returncode == 1, (what, result.stdout, result.stderr)
        assert result.stderr.splitlines()[-1].startswith("inference probe: "), (what, result.stderr)  # gRPC logs first
    assert "UNAUTHENTICATED" in _probe(readiness, env | wrong["no token"]).stderr


def test_lint_is_clean_with_the_service_secured() -> None:
    import helm_python as helm

    report = helm.lint(CHART, SECURE, strict=True, kube_version="v1.27.0")
    assert not report["errors"] and not [m for m in report["messages"] if m["severity"] >= 2], report
