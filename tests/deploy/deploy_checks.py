"""Checks shared by the Helm chart and kustomize tests (imported by both test modules).

Built-in kinds are validated against the Kubernetes OpenAPI schemas shipped with
``kubernetes-validate`` (strict: unknown fields fail), at the chart's floor version and the
newest one it knows. Custom resources (KEDA, Prometheus operator) have no schema there, so
they get structural checks written from the KEDA docs for the ``temporal`` scaler and the
ServiceMonitor API, plus cross-reference checks against the rendered objects.

The expectations come from the code, not from copies of it: pool names from
``workers.POOLS``, each pool's task queue from the ``Queue.<NAME>`` its entry point polls,
setting names from ``damfleet.settings.setting_names()`` (the settings models).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from damfleet import policies
from damfleet.settings import PREFIX, Settings, setting_names
from workers import POOLS

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "damfleet"
#: The release name the chart tests render with (the ``render`` fixture in conftest.py).
RELEASE = "fleet"
#: ``render(values) -> objects``: the chart rendered with ``values`` (the ``render`` fixture).
Render = Callable[..., list[dict[str, Any]]]
#: The chart's kubeVersion floor (gRPC probes are GA in 1.27) and the newest schema available.
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.utils.latest_version() + ".0")
#: Metadata fields the KEDA temporal scaler documents (keda.sh/docs/2.17-2.22/scalers/temporal).
KEDA_TEMPORAL_FIELDS = {
    "endpoint",
    "endpointFromEnv",
    "namespace",
    "activationTargetQueueSize",
    "targetQueueSize",
    "taskQueue",
    "queueTypes",
    "buildId",
    "selectAllActive",
    "selectUnversioned",
    "workerDeploymentName",
    "workerDeploymentBuildId",
    "includeRunningWorkflowCount",
    "workflowTaskQueueForCount",
    "apiKeyFromEnv",
    "minConnectTimeout",
    "unsafeSsl",
    "tlsServerName",
    "enableTLS",
}
KEDA_AUTH_PARAMETERS = {"apiKey", "ca", "cert", "key", "keyPassword"}
SECRET_WORDS = ("SECRET", "KEY", "PASSWORD", "TOKEN")


def pool_queues() -> dict[str, str]:
    """pool -> the task queue its ``python -m workers.<pool>`` entry point polls."""
    queues: dict[str, str] = {}
    for pool in POOLS:
        source = (REPO / "workers" / f"{pool}.py").read_text()
        names = set(re.findall(r"task_queue=Queue\.([A-Z_]+)", source))
        assert len(names) == 1, f"workers/{pool}.py: expected one task_queue=Queue.X, found {names}"
        queues[pool] = getattr(policies.Queue, names.pop())
    return queues


def is_secret_setting(name: str) -> bool:
    return any(word in name for word in SECRET_WORDS) and "PATH" not in name


def load_all(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def release_name(component: str) -> str:
    """The name of a component's objects in the chart tests' release."""
    return f"{RELEASE}-damfleet-{component.replace('_', '-')}"


def release_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The release's shared ConfigMap."""
    return by_kind(objects, "ConfigMap")[f"{RELEASE}-damfleet-config"]


def by_kind(objects: Iterable[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, deployment["metadata"]["name"]
    return containers[0]


def plain_env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment).get("env", []) if "value" in e}


def secret_env(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container(deployment).get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }


def _check_scaled_object(obj: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    name = obj["metadata"]["name"]
    spec = obj["spec"]
    deployments = by_kind(objects, "Deployment")
    target = spec["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment" and target["name"] in deployments, name
    assert 0 <= spec["minReplicaCount"] <= spec["maxReplicaCount"], name
    for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
        assert isinstance(spec.get(field, 0), int), f"{name}.{field}"
    assert "replicas" not in deployments[target["name"]]["spec"], f"{name}: the Deployment still pins replicas"
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert isinstance(behavior["stabilizationWindowSeconds"], int)
    for trigger in spec["triggers"]:
        assert trigger["type"] == "temporal", name
        meta = trigger["metadata"]
        assert set(meta) <= KEDA_TEMPORAL_FIELDS, f"{name}: unknown fields {set(meta) - KEDA_TEMPORAL_FIELDS}"
        assert all(isinstance(v, str) for v in meta.values()), f"{name}: KEDA metadata must be strings: {meta}"
        assert meta["endpoint"] and meta["taskQueue"], name
        assert set(meta.get("queueTypes", "workflow").split(",")) <= {"workflow", "activity", "nexus"}
        int(meta["targetQueueSize"]), int(meta.get("activationTargetQueueSize", "0"))
        if "authenticationRef" in trigger:
            auths = by_kind(objects, "TriggerAuthentication")
            assert trigger["authenticationRef"]["name"] in auths, name


def _check_trigger_authentication(obj: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    refs = obj["spec"]["secretTargetRef"]
    assert refs, obj["metadata"]["name"]
    for ref in refs:
        assert ref["parameter"] in KEDA_AUTH_PARAMETERS and ref["name"] and ref["key"], ref


def _check_service_monitor(obj: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    selector = obj["spec"]["selector"]["matchLabels"]
    services = [
        s for s in objects if s["kind"] == "Service" and selector.items() <= s["metadata"].get("labels", {}).items()
    ]
    assert len(services) == 1, f"{obj['metadata']['name']} selects {len(services)} Services"
    port_names = {p["name"] for p in services[0]["spec"]["ports"]}
    for endpoint in obj["spec"]["endpoints"]:
        assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"


def _check_prometheus_rule(obj: dict[str, Any], objects: list[dict[str, Any]]) -> None:
    """The PrometheusRule CRD's shape: spec.groups of named groups, each rule an alert or a
    record with an expr; the rules themselves are checked by promtool in the chart test."""
    assert set(obj["spec"]) == {"groups"}, obj["spec"].keys()
    for group in obj["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
        for rule in group["rules"]:
            assert ("alert" in rule) != ("record" in rule) and rule["expr"], rule
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}


CUSTOM_CHECKS: dict[tuple[str, str], Callable[[dict[str, Any], list[dict[str, Any]]], None]] = {
    ("monitoring.coreos.com/v1", "PrometheusRule"): _check_prometheus_rule,
    ("keda.sh/v1alpha1", "ScaledObject"): _check_scaled_object,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): _check_trigger_authentication,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _check_service_monitor,
}


def validate_objects(objects: list[dict[str, Any]]) -> set[str]:
    """Validate every object; returns the kinds seen. Fails on anything it cannot check."""
    seen: set[str] = set()
    names: set[tuple[str, str]] = set()
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in names, f"duplicate object {key}"
        names.add(key)
        seen.add(obj["kind"])
        custom = CUSTOM_CHECKS.get((obj["apiVersion"], obj["kind"]))
        if custom is not None:
            custom(obj, objects)
            continue
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} invalid for {version} at {path}: {exc.message}")
    _check_selectors(objects)
    return seen


def _check_selectors(objects: list[dict[str, Any]]) -> None:
    """Deployments select their own pods; Services and PDBs select exactly one Deployment's pods."""
    deployments = by_kind(objects, "Deployment")
    for name, d in deployments.items():
        assert d["spec"]["selector"]["matchLabels"].items() <= d["spec"]["template"]["metadata"]["labels"].items(), name
    for obj in objects:
        if obj["kind"] == "Service":
            selector = obj["spec"]["selector"]
        elif obj["kind"] == "PodDisruptionBudget":
            selector = obj["spec"]["selector"]["matchLabels"]
        else:
            continue
        matched = [
            n for n, d in deployments.items() if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(matched) == 1, f"{obj['kind']}/{obj['metadata']['name']} selects pods of {matched}"
        if obj["kind"] == "Service":
            ports = {p["name"] for p in container(deployments[matched[0]])["ports"]}
            for port in obj["spec"]["ports"]:
                assert port["targetPort"] in ports, f"Service {obj['metadata']['name']}: no port {port['targetPort']}"


def check_settings_env(configmap: dict[str, Any], deployment: dict[str, Any]) -> Settings:
    """The pod's DAMFLEET_* environment names only real settings and loads into Settings."""
    from damfleet.settings import load_settings

    env = dict(configmap["data"]) | plain_env(deployment)
    known = setting_names()
    names = set(env) | set(secret_env(deployment))
    unknown = {n for n in names if n.startswith(PREFIX)} - known
    assert not unknown, f"{deployment['metadata']['name']}: unknown settings {unknown}"
    for name in env:
        assert not (name.startswith(PREFIX) and is_secret_setting(name)), f"secret {name} given as a plain value"
    return load_settings({k: v for k, v in env.items() if k.startswith(PREFIX)})
