"""The plain manifests (k8s/): every kustomization built with ``kubectl kustomize`` (kustomize
v5 inside kubectl), every object validated against the Kubernetes schemas, the pools checked
against the code, and the base checked against the Helm chart's defaults so the two
deployment paths cannot drift apart."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.deploy.deploy_checks import (
    REPO,
    by_kind,
    check_settings_env,
    container,
    load_all,
    plain_env,
    pool_queues,
    secret_env,
    validate_objects,
)
from workers import POOLS

K8S = REPO / "k8s"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl (with built-in kustomize) is not installed")
KUSTOMIZATIONS = ("base", "overlays/dev", "overlays/gpu", "overlays/inference", "overlays/inference-tls",
                  "overlays/inference-mtls")


@functools.cache
def build(path: str) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [KUBECTL or "kubectl", "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return tuple(load_all(result.stdout))


def objects_of(path: str) -> list[dict[str, Any]]:
    return list(build(path))


def name(pool: str) -> str:
    return f"damfleet-{pool.replace('_', '-')}"


def the_configmap(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (cm,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("damfleet-config")]
    return cm


@pytest.mark.parametrize("path", KUSTOMIZATIONS)
def test_builds_and_validates(path: str) -> None:
    objects = objects_of(path)
    validate_objects(objects)
    cm = the_configmap(objects)
    assert cm["metadata"]["name"] != "damfleet-config", "the generator's hash suffix rolls pods on config change"
    for d in by_kind(objects, "Deployment").values():
        if d["metadata"]["labels"].get("app.kubernetes.io/part-of") != "damfleet":
            continue  # the dev overlay's Temporal dev server
        refs = [s["configMapRef"]["name"] for s in container(d)["envFrom"]]
        assert refs == [cm["metadata"]["name"]]
        check_settings_env(cm, d)


def test_base_has_one_deployment_per_pool_from_one_template() -> None:
    objects = objects_of("base")
    queues = pool_queues()
    deployments = by_kind(objects, "Deployment")
    assert set(deployments) == {name(p) for p in POOLS}
    assert set(by_kind(objects, "Service")) == set(by_kind(objects, "PodDisruptionBudget")) == set(deployments)
    for pool in POOLS:
        d = deployments[name(pool)]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == pool.replace("_", "-")
        assert labels["damfleet.io/task-queue"] == queues[pool]
        assert container(d)["command"] == ["python", "-m", f"workers.{pool}"]
        grace = float(plain_env(d)["DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS"])
        assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > grace
        for probe in (container(d)["livenessProbe"], container(d)["readinessProbe"]):
            assert probe["httpGet"] == {"path": "/metrics", "port": "metrics"}
    # The pools are generated: each pool directory is a kustomization over ../../worker only.
    for pool_dir in (K8S / "base" / "pools").iterdir():
        assert [p.name for p in pool_dir.iterdir()] == ["kustomization.yaml"]
        assert "- ../../worker" in (pool_dir / "kustomization.yaml").read_text()


def test_base_matches_the_helm_chart_defaults() -> None:
    chart_objects = helm_render({})
    from_chart = by_kind(chart_objects, "Deployment")
    from_kustomize = by_kind(objects_of("base"), "Deployment")
    assert set(from_chart) == set(from_kustomize)
    for deployment_name, k in from_kustomize.items():
        h = from_chart[deployment_name]
        for field in ("command", "resources", "livenessProbe", "readinessProbe", "securityContext"):
            assert container(k)[field] == container(h)[field], f"{deployment_name}.{field}"
        assert container(k)["image"] == container(h)["image"], deployment_name
        assert k["spec"]["replicas"] == h["spec"]["replicas"], deployment_name
        for field in ("terminationGracePeriodSeconds", "securityContext"):
            assert k["spec"]["template"]["spec"][field] == h["spec"]["template"]["spec"][field]
        for var in ("DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS", "DAMFLEET_WORKER_SCRATCH_DIR"):
            assert plain_env(k)[var] == plain_env(h)[var], f"{deployment_name} {var}"
        assert container(k)["volumeMounts"] == container(h)["volumeMounts"], deployment_name
        assert k["spec"]["template"]["spec"]["volumes"] == h["spec"]["template"]["spec"]["volumes"], deployment_name
    helm_cm = by_kind(chart_objects, "ConfigMap")["damfleet-config"]["data"]
    assert the_configmap(objects_of("base"))["data"] == helm_cm


def helm_render(values: dict[str, Any]) -> list[dict[str, Any]]:
    with helm.Chart.load(REPO / "helm" / "damfleet") as chart:
        manifests = chart.render(values, name="damfleet", namespace="damfleet")
    return [o for path, text in sorted(manifests.items()) if path.endswith(".yaml") for o in load_all(text)]


def test_keda_component_matches_the_helm_chart() -> None:
    from_chart = by_kind(helm_render({"keda": {"enabled": True}}), "ScaledObject")
    from_kustomize = by_kind(objects_of("overlays/gpu"), "ScaledObject")
    assert set(from_chart) == set(from_kustomize)
    for so_name, k in from_kustomize.items():
        h = from_chart[so_name]
        assert k["spec"] == h["spec"], so_name


def test_inference_component_matches_the_helm_chart() -> None:
    values = {"components": {"inference": {"enabled": True, "gpu": {"enabled": True}}}}
    h = by_kind(helm_render(values), "Deployment")["damfleet-inference"]
    k = by_kind(objects_of("overlays/inference"), "Deployment")["damfleet-inference"]
    for field in ("command", "ports", "resources", "startupProbe", "livenessProbe", "readinessProbe", "image"):
        assert container(k)[field] == container(h)[field], field
    assert plain_env(k) == plain_env(h)
    for field in ("terminationGracePeriodSeconds", "tolerations", "securityContext"):
        assert k["spec"]["template"]["spec"][field] == h["spec"]["template"]["spec"][field], field


TLS_SECURITY = {"tls": {"existingSecret": "damfleet-inference-tls"}, "tokenSecret": {"name": "damfleet-inference-token"}}
MTLS_SECURITY = {"tls": {**TLS_SECURITY["tls"], "requireClientCert": True, "clientSecret": "damfleet-inference-client"},
                 "tokenSecret": TLS_SECURITY["tokenSecret"]}


@pytest.mark.parametrize(("overlay", "security"), [("overlays/inference-tls", TLS_SECURITY),
                                                    ("overlays/inference-mtls", MTLS_SECURITY)])
def test_inference_security_components_match_the_helm_chart(overlay: str, security: dict[str, Any]) -> None:
    """components/inference-tls (+ inference-mtls) wire the same Secrets, env and exec probes as the
    chart's components.inference.security with the same Secret names."""
    values = {"components": {"inference": {"enabled": True, "gpu": {"enabled": True}, "security": security}}}
    helm_deployments = by_kind(helm_render(values), "Deployment")
    k8s_deployments = by_kind(objects_of(overlay), "Deployment")
    for component in ("damfleet-inference", "damfleet-ai-enrich"):
        h, k = container(helm_deployments[component]), container(k8s_deployments[component])
        for field in ("startupProbe", "livenessProbe", "readinessProbe", "volumeMounts"):
            assert k.get(field) == h.get(field), (component, field)
        assert plain_env(k8s_deployments[component]) == plain_env(helm_deployments[component]), component
        assert secret_env(k8s_deployments[component])["DAMFLEET_AI_INFERENCE_TOKEN"] == {
            "name": "damfleet-inference-token", "key": "token"}
        volumes = [{v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"] if v["name"].startswith("inference-")}
                   for d in (helm_deployments[component], k8s_deployments[component])]
        assert volumes[0] == volumes[1] and volumes[0], component
    assert "exec" in container(k8s_deployments["damfleet-inference"])["livenessProbe"]


def test_keda_and_gpu_overlay() -> None:
    objects = objects_of("overlays/gpu")
    queues = pool_queues()
    scaled = by_kind(objects, "ScaledObject")
    assert set(scaled) == {name(p) for p in POOLS}
    for pool in POOLS:
        meta = scaled[name(pool)]["spec"]["triggers"][0]["metadata"]
        assert meta["taskQueue"] == queues[pool]
        assert meta["queueTypes"] == ("workflow" if pool == "pipeline" else "activity")
    assert all(o["metadata"].get("namespace") == "damfleet" for o in objects)
    deployments = by_kind(objects, "Deployment")
    ai = deployments[name("ai_enrich")]
    assert container(ai)["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert ai["spec"]["template"]["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert plain_env(ai)["DAMFLEET_AI_WHISPER_DEVICE"] == "cuda"
    others = [d for n, d in deployments.items() if n != name("ai_enrich")]
    assert not [d for d in others if "nvidia.com/gpu" in container(d)["resources"].get("limits", {})]


def test_inference_overlay_wires_ai_enrich_to_the_service() -> None:
    objects = objects_of("overlays/inference")
    service = by_kind(objects, "Service")["damfleet-inference"]
    port = service["spec"]["ports"][0]
    cm = the_configmap(objects)
    assert cm["data"]["DAMFLEET_AI_INFERENCE_URL"] == f"damfleet-inference:{port['port']}"
    inference = by_kind(objects, "Deployment")["damfleet-inference"]
    c = container(inference)
    assert c["command"] == ["damfleet", "inference", "serve"]
    assert c["livenessProbe"]["grpc"]["port"] == c["ports"][0]["containerPort"] == port["port"]
    assert plain_env(inference)["DAMFLEET_AI_INFERENCE_LISTEN"].endswith(f":{port['port']}")
    assert c["image"].endswith(":0.1.0")


def test_dev_overlay_runs_a_temporal_dev_server_and_file_storage() -> None:
    from damfleet.launcher import DEV_DYNAMIC_CONFIG, DEV_SQLITE_PRAGMAS
    from damfleet.search_attributes import cli_flags

    objects = objects_of("overlays/dev")
    cm = the_configmap(objects)["data"]
    server = by_kind(objects, "Deployment")["temporal-dev"]
    command = container(server)["command"]
    flags = command[command.index("--search-attribute") :]
    assert flags == cli_flags(), "the dev server must register damfleet's search attributes"
    pragmas = [arg for i, arg in enumerate(command) if "--sqlite-pragma" in command[i - 1: i + 1]]
    assert pragmas == list(DEV_SQLITE_PRAGMAS), "the same SQLite settings as `damfleet dev`"
    dynamic = [command[i + 1] for i, arg in enumerate(command) if arg == "--dynamic-config-value"]
    assert dynamic == list(DEV_DYNAMIC_CONFIG), "the same dynamic config as `damfleet dev`"
    host, _, port = cm["DAMFLEET_TEMPORAL_ADDRESS"].partition(":")
    assert int(port) in [p["port"] for p in by_kind(objects, "Service")[host]["spec"]["ports"]]
    root = cm["DAMFLEET_STORAGE_ROOT"].removeprefix("file://")
    claims = by_kind(objects, "PersistentVolumeClaim")
    for pool in POOLS:
        d = by_kind(objects, "Deployment")[name(pool)]
        assert d["spec"]["replicas"] == 1
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["name"]: m["mountPath"] for m in container(d)["volumeMounts"]}
        assert mounts["storage"] == root
        assert volumes["storage"]["persistentVolumeClaim"]["claimName"] in claims


def build_with_components(tmp_path: Path, *components: str) -> list[dict[str, Any]]:
    """The base plus optional components, through an overlay written in ``tmp_path`` as a user would."""
    here = os.path.relpath(K8S, tmp_path)
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "namespace": "damfleet",
        "resources": [f"{here}/base"], "components": [f"{here}/components/{c}" for c in components],
    }))
    result = subprocess.run([KUBECTL or "kubectl", "kustomize", str(tmp_path)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return load_all(result.stdout)


def test_monitoring_component_ships_the_charts_rules_and_dashboard(tmp_path: Path) -> None:
    """The PrometheusRule and the dashboard ConfigMap carry exactly the Helm chart's files: the
    component's copies are generated (scripts/sync_k8s_monitoring.py) and must be current."""
    sync = subprocess.run([sys.executable, str(REPO / "scripts" / "sync_k8s_monitoring.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert sync.returncode == 0, sync.stderr
    objects = build_with_components(tmp_path, "monitoring")
    validate_objects(objects)
    files = REPO / "helm" / "damfleet" / "files"
    chart = helm_render({"metrics": {"prometheusRule": {"enabled": True},
                                     "grafanaDashboard": {"enabled": True}}})
    (rule,) = by_kind(objects, "PrometheusRule").values()
    (chart_rule,) = by_kind(chart, "PrometheusRule").values()
    assert rule["spec"] == yaml.safe_load((files / "damfleet-rules.yaml").read_text()) == chart_rule["spec"]
    assert rule["metadata"]["name"] == chart_rule["metadata"]["name"]
    dashboard = by_kind(objects, "ConfigMap")["damfleet-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["damfleet.json"] == (files / "damfleet-dashboard.json").read_text()
    chart_dashboard = by_kind(chart, "ConfigMap")["damfleet-dashboard"]
    assert json.loads(dashboard["data"]["damfleet.json"]) == json.loads(chart_dashboard["data"]["damfleet.json"])
    # Off unless the component is added: the base ships neither.
    assert not by_kind(objects_of("base"), "PrometheusRule")
    assert "damfleet-dashboard" not in by_kind(objects_of("base"), "ConfigMap")


def test_sync_script_reports_a_stale_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import sync_k8s_monitoring as sync
    finally:
        sys.path.remove(str(REPO / "scripts"))
    copy = tmp_path / "monitoring"
    copy.mkdir()
    monkeypatch.setattr(sync, "COMPONENT", copy)
    assert sync.main(["--check"]) == 1
    assert sync.main([]) == 0 and sync.main(["--check"]) == 0
    (copy / "prometheusrule.yaml").write_text("edited by hand\n")
    assert sync.main(["--check"]) == 1


def test_tracing_component_matches_the_helm_chart(tmp_path: Path) -> None:
    """Base: DAMFLEET_TRACING=off on every pool. The tracing component sets what the chart's
    ``tracing.enabled`` sets, in the one ConfigMap every pool reads."""
    assert the_configmap(objects_of("base"))["data"]["DAMFLEET_TRACING"] == "off"
    objects = build_with_components(tmp_path, "tracing")
    validate_objects(objects)
    cm = the_configmap(objects)
    chart = helm_render({"tracing": {"enabled": True, "endpoint": "http://tempo.monitoring:4318"}})
    assert cm["data"] == by_kind(chart, "ConfigMap")["damfleet-config"]["data"]
    for d in by_kind(objects, "Deployment").values():
        assert check_settings_env(cm, d).tracing == "otlp"
