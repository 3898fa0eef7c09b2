"""The Helm chart (helm/damfleet), rendered and linted offline with helm-python-sdk (Helm's
own Go engine through a C ABI, no ``helm`` binary), every object validated against the
Kubernetes schemas, and the values cross-checked against the code they configure."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.conftest import free_port
from tests.deploy.deploy_checks import (
    CHART,
    RELEASE,
    REPO,
    Render,
    by_kind,
    check_settings_env,
    container,
    is_secret_setting,
    plain_env,
    pool_queues,
    secret_env,
    validate_objects,
)
from tests.deploy.deploy_checks import release_config as config
from tests.deploy.deploy_checks import release_name as name
from workers import POOLS


@pytest.fixture(scope="module")
def queues_by_pool() -> dict[str, str]:
    return pool_queues()


@pytest.mark.parametrize(
    "values",
    [
        {},
        {
            "keda": {"enabled": True},
            "metrics": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True},
                        "grafanaDashboard": {"enabled": True}},
            "components": {"inference": {"enabled": True}, "ai_enrich": {"gpu": {"enabled": True}}},
        },
    ],
    ids=["defaults", "everything-on"],
)
def test_lint_is_clean(values: dict[str, Any]) -> None:
    report = helm.lint(CHART, values, strict=True, kube_version="v1.27.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_default_render_has_one_of_each_per_worker_pool(render: Render, queues_by_pool: dict[str, str]) -> None:
    objects = render()
    validate_objects(objects)
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {name(p) for p in POOLS}, "inference is off by default, every pool on"
    assert set(by_kind(objects, "Service")) == set(deployments)
    assert set(by_kind(objects, "PodDisruptionBudget")) == set(deployments)
    assert not by_kind(objects, "ScaledObject") and not by_kind(objects, "ServiceMonitor")
    assert not by_kind(objects, "Secret"), "the chart never creates Secrets: credentials come from existing ones"
    for pool in POOLS:
        d = deployments[name(pool)]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == pool.replace("_", "-")
        assert labels["damfleet.io/task-queue"] == queues_by_pool[pool]
        assert container(d)["command"] == ["python", "-m", f"workers.{pool}"]


def test_values_queues_match_the_worker_entry_points(chart: helm.Chart, queues_by_pool: dict[str, str]) -> None:
    components = chart.values["components"]
    assert set(POOLS) <= set(components)
    for pool in POOLS:
        assert components[pool]["queue"] == queues_by_pool[pool], pool


def test_every_pod_environment_loads_into_settings(render: Render) -> None:
    objects = render({"components": {"inference": {"enabled": True}}})
    cm = config(objects)
    for d in by_kind(objects, "Deployment").values():
        settings = check_settings_env(cm, d)
        assert settings.storage_root == "s3://damfleet/assets"
        assert settings.worker.metrics_port == 9464
        assert settings.ai.inference_url == f"{name('inference')}:50051"
        assert settings.ingest.source_roots == ("s3://damfleet/uploads/",), "sources are deny-by-default"


def test_termination_grace_outlasts_worker_graceful_shutdown(render: Render) -> None:
    deployments = by_kind(render(), "Deployment")
    for d in deployments.values():
        grace = float(plain_env(d)["DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS"])
        assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace, d["metadata"]["name"]
    transcode = deployments[name("transcode")]
    assert float(plain_env(transcode)["DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS"]) >= 1800


def test_probes_and_metrics_port(render: Render) -> None:
    objects = render({"metrics": {"port": 9100}, "components": {"inference": {"enabled": True, "grpcPort": 50061}}})
    validate_objects(objects)
    assert config(objects)["data"]["DAMFLEET_WORKER_METRICS_PORT"] == "9100"
    for component, d in by_kind(objects, "Deployment").items():
        c = container(d)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        for probe in (c["livenessProbe"], c["readinessProbe"]):
            if component == name("inference"):
                assert probe["grpc"] == {"port": 50061} == c["startupProbe"]["grpc"]
                assert plain_env(d)["DAMFLEET_AI_INFERENCE_LISTEN"] == "0.0.0.0:50061"
            else:
                assert probe["httpGet"] == {"path": "/metrics", "port": "metrics"}
                assert ports["metrics"] == 9100


def test_resources_per_pool(render: Render) -> None:
    deployments = by_kind(render(), "Deployment")
    for d in deployments.values():
        resources = container(d)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
    cpu = {p: container(deployments[name(p)])["resources"]["requests"]["cpu"] for p in POOLS}
    assert cpu["transcode"] == "2" and cpu["pipeline"] == "100m"


def test_per_component_overrides_and_global_fallback(render: Render) -> None:
    objects = render(
        {
            "replicaCount": 7,
            "concurrency": 8,
            "image": {"tag": "1.2.3"},
            "components": {
                "ingest": {"replicaCount": None},  # null removes the key: falls back to the global 7
                "transcode": {"replicaCount": 3, "concurrency": 0, "image": {"repository": "reg.local/tc"}},
                "distribution": {"replicaCount": 0},  # 0 is honoured, not treated as "unset"
                "pipeline": {"podDisruptionBudget": {"enabled": False}},
            },
        }
    )
    validate_objects(objects)
    replicas = {n: d["spec"]["replicas"] for n, d in by_kind(objects, "Deployment").items()}
    assert replicas[name("ingest")] == 7 and replicas[name("transcode")] == 3
    assert replicas[name("distribution")] == 0 and replicas[name("pipeline")] == 2
    assert name("pipeline") not in by_kind(objects, "PodDisruptionBudget")
    deployments = by_kind(objects, "Deployment")
    assert container(deployments[name("ingest")])["image"] == "ghcr.io/damfleet/damfleet-ingest:1.2.3"
    assert container(deployments[name("transcode")])["image"] == "reg.local/tc:1.2.3"
    assert plain_env(deployments[name("ingest")])["DAMFLEET_WORKER_CONCURRENCY"] == "8"
    assert "DAMFLEET_WORKER_CONCURRENCY" not in plain_env(deployments[name("transcode")]), "0: the policy default"


def test_a_disabled_pool_leaves_nothing_behind(render: Render) -> None:
    objects = render(
        {
            "components": {"ingest": {"enabled": False}},
            "keda": {"enabled": True},
            "metrics": {"serviceMonitor": {"enabled": True}},
        }
    )
    validate_objects(objects)
    assert not [o for o in objects if o["metadata"]["name"] == name("ingest")]
    assert len(by_kind(objects, "Deployment")) == len(POOLS) - 1


def test_keda_scales_each_pool_on_its_own_queue(render: Render, queues_by_pool: dict[str, str]) -> None:
    objects = render({"keda": {"enabled": True}, "components": {"transcode": {"keda": {"maxReplicaCount": 20}}}})
    validate_objects(objects)
    scaled = by_kind(objects, "ScaledObject")
    assert set(scaled) == {name(p) for p in POOLS}
    for pool in POOLS:
        so = scaled[name(pool)]
        meta = so["spec"]["triggers"][0]["metadata"]
        assert so["spec"]["scaleTargetRef"]["name"] == name(pool)
        assert meta["taskQueue"] == queues_by_pool[pool]
        assert meta["endpoint"] == "temporal-frontend.temporal.svc.cluster.local:7233"
        assert meta["queueTypes"] == ("workflow" if pool == "pipeline" else "activity")
        assert "authenticationRef" not in so["spec"]["triggers"][0]
    assert scaled[name("transcode")]["spec"]["maxReplicaCount"] == 20
    assert scaled[name("transcode")]["spec"]["triggers"][0]["metadata"]["targetQueueSize"] == "1"
    for d in by_kind(objects, "Deployment").values():
        assert "replicas" not in d["spec"], "the HPA owns replicas"


def test_keda_for_one_pool_only(render: Render) -> None:
    objects = render({"components": {"transcode": {"keda": {"enabled": True}}}})
    validate_objects(objects)
    assert set(by_kind(objects, "ScaledObject")) == {name("transcode")}
    assert by_kind(objects, "Deployment")[name("ingest")]["spec"]["replicas"] == 2


def test_gpu_for_ai_enrich(render: Render) -> None:
    objects = render(
        {
            "nodeSelector": {"pool": "media"},
            "components": {"ai_enrich": {"gpu": {"enabled": True, "count": 2, "nodeSelector": {"gpu": "l4"}}}},
        }
    )
    validate_objects(objects)
    deployments = by_kind(objects, "Deployment")
    ai = deployments[name("ai_enrich")]
    pod = ai["spec"]["template"]["spec"]
    assert container(ai)["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert pod["nodeSelector"] == {"pool": "media", "gpu": "l4"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    for pool in set(POOLS) - {"ai_enrich"}:
        other = deployments[name(pool)]
        assert "nvidia.com/gpu" not in container(other)["resources"].get("limits", {})
        assert "tolerations" not in other["spec"]["template"]["spec"]


def test_transcode_scratch_volume(render: Render) -> None:
    def scratch(objects: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
        d = by_kind(objects, "Deployment")[name("transcode")]
        volume = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}["scratch"]
        mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
        assert plain_env(d)["DAMFLEET_WORKER_SCRATCH_DIR"] == mounts["scratch"]
        return volume, mounts["scratch"]

    volume, _ = scratch(render())
    assert volume["emptyDir"]["sizeLimit"] == "50Gi"
    objects = render({"components": {"transcode": {"scratch": {"type": "ephemeral", "storageClassName": "nvme"}}}})
    validate_objects(objects)
    volume, _ = scratch(objects)
    claim = volume["ephemeral"]["volumeClaimTemplate"]["spec"]
    assert claim["storageClassName"] == "nvme" and claim["resources"]["requests"]["storage"] == "100Gi"
    objects = render({"components": {"pipeline": {"scratch": {"enabled": False}}}})
    pipeline = by_kind(objects, "Deployment")[name("pipeline")]
    assert "DAMFLEET_WORKER_SCRATCH_DIR" not in plain_env(pipeline)
    assert "scratch" not in {v["name"] for v in pipeline["spec"]["template"]["spec"]["volumes"]}


def test_inference_service_and_ai_enrich_pointed_at_it(render: Render) -> None:
    objects = render({"components": {"inference": {"enabled": True, "gpu": {"enabled": True}}}})
    validate_objects(objects)
    service = by_kind(objects, "Service")[name("inference")]
    assert service["spec"]["ports"] == [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"}
    ]
    assert config(objects)["data"]["DAMFLEET_AI_INFERENCE_URL"] == f"{name('inference')}:50051"
    inference = by_kind(objects, "Deployment")[name("inference")]
    assert container(inference)["command"] == ["damfleet", "inference", "serve"]
    assert container(inference)["image"] == "ghcr.io/damfleet/damfleet-ai:0.1.0"
    assert "DAMFLEET_TEMPORAL_API_KEY" not in secret_env(inference)
    assert "DAMFLEET_AI_INFERENCE_URL" not in config(render())["data"]


def test_credentials_only_by_secret_reference(render: Render) -> None:
    values = {
        "keda": {"enabled": True},
        "temporal": {
            "tls": {
                "enabled": True,
                "existingSecret": "temporal-mtls",
                "caKey": "ca.crt",
                "serverName": "fleet.tmprl.cloud",
            },
            "apiKey": {"existingSecret": "temporal-api"},
        },
        "storage": {"s3": {"existingSecret": "s3-creds", "endpointUrl": "https://rgw.example:7480"}},
        "distribution": {"targetsSecret": {"name": "targets"}, "webhookSecret": {"name": "hooks"}},
        "secretEnv": [{"name": "DAMFLEET_AI_WHISPER_MODEL", "secretName": "models", "key": "whisper"}],
    }
    objects = render(values)
    validate_objects(objects)
    cm = config(objects)
    assert not [k for k in cm["data"] if is_secret_setting(k)]
    deployments = by_kind(objects, "Deployment")
    for pool in POOLS:
        d = deployments[name(pool)]
        settings = check_settings_env(cm, d)
        assert settings.temporal.tls and settings.temporal.tls_server_name == "fleet.tmprl.cloud"
        refs = secret_env(d)
        assert refs["DAMFLEET_TEMPORAL_API_KEY"] == {"name": "temporal-api", "key": "api-key"}
        assert refs["DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY"]["name"] == "s3-creds"
        mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        tls_files = {i["path"] for i in volumes["temporal-tls"]["secret"]["items"]}
        for path in (settings.temporal.tls_cert_path, settings.temporal.tls_key_path, settings.temporal.tls_ca_path):
            directory, _, file = path.rpartition("/")
            assert directory == mounts["temporal-tls"] and file in tls_files
    dist = deployments[name("distribution")]
    targets_file = plain_env(dist)["DAMFLEET_DISTRIBUTION_TARGETS_FILE"]
    assert targets_file.startswith(
        {m["name"]: m["mountPath"] for m in container(dist)["volumeMounts"]}["distribution-targets"]
    )
    assert secret_env(dist)["DAMFLEET_DISTRIBUTION_WEBHOOK_SECRET"]["name"] == "hooks"
    assert "DAMFLEET_DISTRIBUTION_WEBHOOK_SECRET" not in secret_env(deployments[name("ingest")])
    auth = by_kind(objects, "TriggerAuthentication")[f"{RELEASE}-damfleet-temporal"]
    assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"apiKey", "cert", "key", "ca"}
    trigger = by_kind(objects, "ScaledObject")[name("ingest")]["spec"]["triggers"][0]
    assert trigger["metadata"]["tlsServerName"] == "fleet.tmprl.cloud"
    assert trigger["metadata"]["enableTLS"] == "true"


def test_config_change_rolls_the_pods(render: Render) -> None:
    def checksums(values: dict[str, Any]) -> set[str]:
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in by_kind(render(values), "Deployment").values()
        }

    before = checksums({})
    assert len(before) == 1 and checksums({}) == before
    assert checksums({"config": {"DAMFLEET_INGEST_MAX_SOURCE_BYTES": "1000"}}).isdisjoint(before)
    assert checksums({"components": {"transcode": {"replicaCount": 5}}}) == before


def test_service_monitor_per_worker_pool(render: Render) -> None:
    objects = render(
        {
            "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
            "components": {"inference": {"enabled": True}},
        }
    )
    validate_objects(objects)
    monitors = by_kind(objects, "ServiceMonitor")
    assert set(monitors) == {name(p) for p in POOLS}
    assert all(m["metadata"]["labels"]["release"] == "prom" for m in monitors.values())


def test_alert_rules_and_dashboard_ship_in_the_chart(render: Render, tmp_path: Path) -> None:
    """The PrometheusRule carries exactly the plain rules file (which promtool accepts), and the
    dashboard ConfigMap carries the plain dashboard with the Grafana sidecar's label."""
    defaults = render()
    assert not by_kind(defaults, "PrometheusRule"), "off by default: it needs the operator's CRDs"
    assert f"{RELEASE}-damfleet-dashboard" not in by_kind(defaults, "ConfigMap")
    objects = render({"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "prom"}},
                                  "grafanaDashboard": {"enabled": True, "folder": "Media"}}})
    validate_objects(objects)
    (rule,) = by_kind(objects, "PrometheusRule").values()
    assert rule["metadata"]["labels"]["release"] == "prom"
    plain = yaml.safe_load((CHART / "files" / "damfleet-rules.yaml").read_text())
    assert rule["spec"] == plain
    rendered_rules = tmp_path / "rendered-rules.yaml"
    rendered_rules.write_text(yaml.safe_dump(rule["spec"]))
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with Debian's prometheus package (scripts/bootstrap.sh)"
    check = subprocess.run([promtool, "check", "rules", str(rendered_rules)], capture_output=True, text=True,
                           timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr

    dashboard = by_kind(objects, "ConfigMap")[f"{RELEASE}-damfleet-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"]["grafana_folder"] == "Media"
    assert json.loads(dashboard["data"]["damfleet.json"]) == json.loads(
        (CHART / "files" / "damfleet-dashboard.json").read_text())


def test_file_storage_needs_and_mounts_a_shared_claim(render: Render) -> None:
    with pytest.raises(helm.HelmError, match="existingClaim"):
        render({"storage": {"root": "file:///mnt/damfleet"}})
    objects = render({"storage": {"root": "file:///mnt/damfleet", "volume": {"existingClaim": "media-rwx"}}})
    validate_objects(objects)
    for d in by_kind(objects, "Deployment").values():
        mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
        assert mounts["storage"] == "/mnt/damfleet"
        assert check_settings_env(config(objects), d).storage_root == "file:///mnt/damfleet"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"storage": {"root": "http://bucket"}}, "storage.root must start with"),
        ({"config": {"LOG_LEVEL": "DEBUG"}}, "settings are DAMFLEET_"),
        ({"components": {"transcode": {"scratch": {"type": "hostPath"}}}}, "scratch.type must be"),
        ({"components": {"transcode": {"scratch": {"type": "persistentVolumeClaim"}}}}, "existingClaim is required"),
    ],
)
def test_bad_values_fail_with_a_message(render: Render, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)


def _get_until(url: str, deadline: float) -> tuple[int, str]:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status, response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


async def test_rendered_pipeline_pod_passes_its_probe_and_stops_within_its_grace(
    render: Render, temporal_env: Any, tmp_path: Path
) -> None:
    """Run the pipeline pod's container as the chart renders it, short of a kubelet: its
    command with the ConfigMap and env it would get, on a lane of its own (queueSuffix).
    Substituted for this machine: the Temporal address, the state/scratch paths, the port."""
    lane = f"-{uuid.uuid4().hex[:8]}"
    objects = render({"queueSuffix": lane, "keda": {"enabled": True}})
    deployment = by_kind(objects, "Deployment")[name("pipeline")]
    c = container(deployment)
    port = free_port()
    env = dict(os.environ) | config(objects)["data"] | plain_env(deployment)
    env |= {
        "DAMFLEET_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "DAMFLEET_STATE_DIR": str(tmp_path / "state"),
        "DAMFLEET_WORKER_SCRATCH_DIR": str(tmp_path / "scratch"),
        "DAMFLEET_WORKER_METRICS_PORT": str(port),
    }
    command = [sys.executable if c["command"][0] == "python" else c["command"][0], *c["command"][1:]]
    log = tmp_path / "pod.log"
    proc = _start(command, env, log)
    try:
        probe = c["readinessProbe"]["httpGet"]
        status, text = await asyncio.to_thread(
            _get_until, f"http://127.0.0.1:{port}{probe['path']}", time.monotonic() + 60
        )
        assert status == 200
        queue = by_kind(objects, "ScaledObject")[name("pipeline")]["spec"]["triggers"][0]["metadata"]["taskQueue"]
        assert queue == f"q-pipeline{lane}" == deployment["metadata"]["labels"]["damfleet.io/task-queue"]
        deadline = time.monotonic() + 60
        while f'damfleet_worker_up{{task_queue="{queue}"}} 1.0' not in text:
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.5)
            _, text = await asyncio.to_thread(_get_until, f"http://127.0.0.1:{port}{probe['path']}", deadline)
    finally:
        proc.send_signal(signal.SIGTERM)
        grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        try:
            code = await asyncio.to_thread(proc.wait, grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail(f"still running {grace}s after SIGTERM: Kubernetes would SIGKILL it\n{log.read_text()[-3000:]}")
    assert code == 0, log.read_text()[-3000:]


def test_tracing_is_off_by_default_and_sets_otel_variables_on_every_pool_when_on(render: Render) -> None:
    """``tracing.enabled`` turns DAMFLEET_TRACING on for every pool (all read the one ConfigMap) with
    the standard OTEL_* variables; an endpoint is required, the service name is left per pool."""
    data = config(render())["data"]
    assert data["DAMFLEET_TRACING"] == "off"
    assert not [k for k in data if k.startswith("OTEL_")]
    with pytest.raises(helm.HelmError, match="tracing.endpoint is required"):
        render({"tracing": {"enabled": True}})
    objects = render({"tracing": {"enabled": True, "endpoint": "http://tempo.monitoring:4318", "samplerArg": "0.25",
                                  "resourceAttributes": "deployment.environment=prod"}})
    validate_objects(objects)
    cm = config(objects)
    assert {k: v for k, v in cm["data"].items() if k.startswith(("OTEL_", "DAMFLEET_TRACING"))} == {
        "DAMFLEET_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo.monitoring:4318",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
    }
    for deployment in by_kind(objects, "Deployment").values():
        refs = [s["configMapRef"]["name"] for s in container(deployment)["envFrom"] if "configMapRef" in s]
        assert cm["metadata"]["name"] in refs
        assert "OTEL_SERVICE_NAME" not in plain_env(deployment), "damfleet-<pool> by default"
        assert check_settings_env(cm, deployment).tracing == "otlp"
