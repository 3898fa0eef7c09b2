"""The stage table is the one list: every consumer agrees with it, in Python and outside.

Python consumers import the table; this walks them anyway (a copy left behind would pass
every other test). The Helm chart, the kustomize bases, the Dockerfile and pyproject cannot
import Python, so their pool lists are read as text and compared here: adding a stage to
the table without its chart entry, overlay, image or extra fails this file, by name.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import yaml

from damfleet import launcher, progress, retries, stages, summaries
from damfleet.cli import live
from damfleet.policies import ACTIVITY_POLICIES, ALL_QUEUES, default_concurrency
from damfleet.stages import POOLS, STAGE_NAMES, STAGES, ActivityName, Queue, StageName, stage_named
from damfleet.v1 import pipeline_pb2

REPO = Path(__file__).resolve().parents[2]
POOL_NAMES = [pool.name for pool in POOLS]


def _constants(cls: type) -> dict[str, str]:
    return {k: v for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, str)}


def test_one_name_per_stage_and_one_pool_per_queue() -> None:
    assert list(STAGE_NAMES) == list(_constants(StageName).values())
    assert len(set(POOL_NAMES)) == len(POOLS) and len(set(ALL_QUEUES)) == len(POOLS)
    assert set(ALL_QUEUES) == set(_constants(Queue).values())
    for stage in STAGES:
        assert stage.pool.name == stage.name, "a stage's pool, worker and activity module carry its name"
        assert stage_named(stage.name) is stage
        assert stage.media_kinds and stage.media_kinds <= {"image", "video", "audio"}
        assert stage.header and len(stage.header) <= len(stage.name)


def test_a_light_pool_serves_its_stage_for_its_media_kinds() -> None:
    """A light pool is its stage's pool for short jobs: same image, extra and activities, its
    own queue (so KEDA scales it on its own backlog), and only the workflow's routing differs."""
    lights = [stage for stage in STAGES if stage.light_pool is not None]
    assert [stage.name for stage in lights] == [StageName.TRANSCODE]
    for stage in lights:
        light = stage.light_pool
        assert light is not None and stage.pools == (stage.pool, light)
        assert light.name == f"{stage.name}_light" and light.queue == f"{stage.queue}-light"
        assert (light.image, light.extra) == (stage.pool.image, stage.pool.extra)
        assert light.media_kinds and light.media_kinds < stage.media_kinds
        assert light.concurrency > stage.pool.concurrency
        assert POOL_NAMES.index(light.name) == POOL_NAMES.index(stage.pool.name) + 1, "started after its stage's pool"
        for kind in stage.media_kinds:
            expected = light.queue if kind in light.media_kinds else stage.queue
            assert stage.queue_for(kind) == expected
            assert stage.queue_for(kind, light=False) == stage.queue
        worker = (REPO / "workers" / f"{light.name}.py").read_text()
        assert f"from activities.{stage.name} import build_activities" in worker
    assert all(not pool.media_kinds for stage in STAGES for pool in (stage.pool,))


def test_every_stage_activity_is_scheduled_on_its_stage_queue() -> None:
    seen: set[str] = set()
    for stage in STAGES:
        assert stage.activities, stage.name
        for name in stage.activities:
            assert ACTIVITY_POLICIES[name].task_queue == stage.queue, (stage.name, name)
            assert name not in seen, f"{name} belongs to two stages"
            seen.add(name)
        assert stage.policy is ACTIVITY_POLICIES[stage.activities[0]]
        assert stage.progress_activity in (None, *stage.activities)
    assert seen <= set(_constants(ActivityName).values())


def test_python_consumers_walk_the_table() -> None:
    from workers import POOLS as WORKER_POOLS
    from workflows.pipeline import STAGES as WORKFLOW_STAGES

    assert list(WORKER_POOLS) == POOL_NAMES
    assert list(launcher.POOLS) == POOL_NAMES
    assert launcher.QUEUE_OF_POOL == {pool.name: pool.queue for pool in POOLS}
    assert WORKFLOW_STAGES == STAGE_NAMES == summaries.STAGES
    assert retries.STAGE_OF_ACTIVITY == stages.STAGE_OF_ACTIVITY
    assert progress.STAGE_OF_ACTIVITY == {s.progress_activity: s.name for s in STAGES if s.progress_activity}
    for pool in POOLS:
        assert default_concurrency(pool.queue) == pool.concurrency


def test_cli_shows_every_stage_in_table_order() -> None:
    result = pipeline_pb2.PipelineResult(workflow_id="wf")
    for name in reversed(STAGE_NAMES):  # map order must not leak into the output
        result.stages[name].stage = name
    summary = summaries.pipeline_summary(result)
    assert list(summary["stages"]) == list(STAGE_NAMES)
    assert summary["progress"]["stages_total"] == len(STAGES)
    assert live._STAGE_HEADERS == {s.name: s.header for s in STAGES}


def test_each_pool_has_a_worker_module_polling_its_queue() -> None:
    for pool in POOLS:
        path = REPO / "workers" / f"{pool.name}.py"
        assert path.is_file(), f"{pool.entry_point}: no {path.relative_to(REPO)}"
        queues = set(re.findall(r"task_queue=Queue\.([A-Z_]+)", path.read_text()))
        assert {getattr(Queue, q) for q in queues} == {pool.queue}, path.name
    for stage in STAGES:
        module = REPO / "activities" / f"{stage.name}.py"
        assert module.is_file(), f"stage {stage.name}: its activities live in activities/{stage.name}.py"
        tree = ast.parse(module.read_text())
        registered = {
            f"ActivityName.{node.attr}" for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "ActivityName"
        }
        names = {getattr(ActivityName, r.split(".")[1]) for r in registered}
        # catalog.py serves ingest's dedup claim; every other stage activity is in its own module
        assert set(stage.activities) - {ActivityName.CLAIM_CONTENT} <= names, stage.name
        worker = (REPO / "workers" / f"{stage.name}.py").read_text()
        assert f"from activities.{stage.name} import" in worker


def test_helm_values_list_the_table_pools() -> None:
    values = yaml.safe_load((REPO / "helm" / "damfleet" / "values.yaml").read_text())
    workers = {name: c for name, c in values["components"].items() if c.get("queue")}
    assert list(workers) == POOL_NAMES, "helm values' queue workers, in start order"
    for pool in POOLS:
        component = workers[pool.name]
        assert component["command"] == ["python", "-m", pool.entry_point]
        assert component["queue"] == pool.queue
        assert component["imageFlavor"] == pool.image


def test_kustomize_bases_list_the_table_pools() -> None:
    base = yaml.safe_load((REPO / "k8s" / "base" / "kustomization.yaml").read_text())
    dns = [name.replace("_", "-") for name in POOL_NAMES]
    assert [r for r in base["resources"] if r.startswith("pools/")] == [f"pools/{d}" for d in dns]
    keda = yaml.safe_load((REPO / "k8s" / "components" / "keda" / "kustomization.yaml").read_text())
    assert keda["resources"] == dns
    for pool, name in zip(POOLS, dns, strict=True):
        text = (REPO / "k8s" / "base" / "pools" / name / "kustomization.yaml").read_text()
        assert f"value: [python, -m, {pool.entry_point}]" in text, name
        assert f"damfleet.io/task-queue: {pool.queue}" in text, name
        scaler = (REPO / "k8s" / "components" / "keda" / name / "kustomization.yaml").read_text()
        assert f"taskQueue, value: {pool.queue}}}" in scaler, name


def test_dockerfile_and_extras_build_each_pool() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    targets = dict(re.findall(r"^FROM runtime AS (\S+)\n(?:.*\n)*?CMD (\[.*\])$", dockerfile, re.MULTILINE))
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for pool in POOLS:
        # An image's CMD runs its own pool; a light pool reuses its stage's image, and its
        # Helm component / kustomize overlay set the command (checked above).
        owner = next(p for p in POOLS if p.image == pool.image)
        assert targets.get(pool.image) == f'["python", "-m", "{owner.entry_point}"]', pool.image
        assert f"requirements/{pool.image}.lock" in dockerfile
        assert (REPO / "requirements" / f"{pool.image}.lock").is_file()
        if pool.extra:
            assert pool.extra in extras, f"pool {pool.name}: no pyproject extra {pool.extra!r}"
            assert pool.extra in extras["all"][0], "the all extra installs every pool's"


def test_architecture_doc_shows_the_table() -> None:
    """docs/architecture.md's stage table is a copy for readers: held to the real one."""
    text = (REPO / "docs" / "architecture.md").read_text()
    rows = [[cell.strip() for cell in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| `")]
    assert [row[0].strip("`") for row in rows] == list(STAGE_NAMES)
    for stage, row in zip(STAGES, rows, strict=True):
        assert row[1] == f"`{stage.queue}`"
        assert [a.strip("` ") for a in row[2].split(",")] == list(stage.activities)
        assert row[3] == f"`python -m {stage.pool.entry_point}`"
        assert row[4] == f"`{stage.pool.image}` / `{stage.pool.extra}`"
        assert row[6].startswith("yes" if stage.skippable else "no")
