"""OpenTelemetry tracing (damfleet.tracing): off costs nothing, on gives one trace per asset.

The end-to-end check runs the five pools as separate Worker objects on their own queues, all
with the real activities, against the real dev server; the spans land in the SDK's
InMemorySpanExporter. Across real processes: tests/workers/test_tracing_processes.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.worker import Worker

from activities import catalog as catalog_activities
from activities.ai_enrich import build_activities as enrich_activities
from activities.common import StageContext
from activities.distribution import build_activities as distribution_activities
from activities.ingest import build_activities as ingest_activities
from activities.transcode import build_activities as transcode_activities
from damfleet import samples, tracing
from damfleet.client import FleetClient
from damfleet.errors import ConfigurationError
from damfleet.policies import ActivityName, Queue
from damfleet.settings import SettingsError, load_settings
from damfleet.temporal import connect
from damfleet.v1 import common_pb2, jobs_pb2
from tests.conftest import make_settings
from workflows import ALL_WORKFLOWS

REPO = Path(__file__).resolve().parents[2]

_EXPORTER = InMemorySpanExporter()


def _install_test_provider() -> None:
    """The process-wide tracer provider of these tests (OpenTelemetry allows one per process).

    damfleet.tracing finds an SDK provider already installed and uses it, as it would under
    ``opentelemetry-instrument``; so no OTLP exporter is created here.
    """
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    _install_test_provider()
    monkeypatch.setattr(tracing, "_tracer", None)  # restored (tracing off) after the test
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def test_tracing_is_off_by_default_and_validated(tmp_path: Path) -> None:
    assert make_settings(tmp_path).tracing == "off"
    assert make_settings(tmp_path, DAMFLEET_TRACING="otlp").tracing == "otlp"
    with pytest.raises(SettingsError, match="DAMFLEET_TRACING must be off or otlp, got 'jaeger'"):
        load_settings({"DAMFLEET_TRACING": "jaeger"})


def test_off_imports_no_opentelemetry_and_help_stays_light() -> None:
    """With tracing off neither the CLI's help nor a worker module loads OpenTelemetry."""
    probe = (
        "import sys; sys.argv = ['damfleet', '--help']\n"
        "from damfleet.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import damfleet.temporal, workers.common, workers.pipeline\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_missing_extra_is_one_clear_error(tmp_path: Path) -> None:
    """Tracing asked for without the OpenTelemetry packages: the CLI and a worker each stop with one
    line naming the extra (exit 2), before touching Temporal."""
    hidden = tmp_path / "no-otel"
    (hidden / "opentelemetry").mkdir(parents=True)  # shadows the installed package, as if never installed
    (hidden / "opentelemetry" / "__init__.py").write_text("raise ImportError('No module named opentelemetry')\n")
    env = {**os.environ, "PYTHONPATH": f"{hidden}{os.pathsep}{REPO}", "DAMFLEET_TRACING": "otlp",
           "DAMFLEET_STATE_DIR": str(tmp_path / "state"), "DAMFLEET_WORKER_METRICS_PORT": "0",
           "DAMFLEET_TEMPORAL_ADDRESS": "127.0.0.1:1", "COLUMNS": "200"}
    words = ("DAMFLEET_TRACING=otlp needs the OpenTelemetry packages of damfleet's 'tracing' extra "
             "(pip install 'damfleet[tracing]')")
    for argv in (["-m", "damfleet.cli", "status", "asset-x"], ["-m", "workers.ingest"]):
        proc = subprocess.run([sys.executable, *argv], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert proc.returncode == 2, (argv, proc.stdout, proc.stderr[-2000:])
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        assert len(lines) == 1 and words in lines[0], (argv, lines)
        assert "Traceback" not in proc.stderr


def test_span_is_a_no_op_when_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "_tracer", None)
    with tracing.span("ffmpeg.encode", rendition="h264_720p") as current:
        assert current is None
    assert not tracing.enabled()


def test_configure_rejects_an_unknown_mode_in_hand_built_settings() -> None:
    class HandBuilt:
        tracing = "zipkin"

    with pytest.raises(ConfigurationError, match="DAMFLEET_TRACING must be one of off, otlp"):
        tracing.configure(HandBuilt())


def _by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


async def test_one_trace_per_asset_across_the_five_pools(
    temporal_env, tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    """Client start -> pipeline workflow -> every stage's activity, all in the client's trace; then a
    batch of two, across continue-as-new, in one trace of its own."""
    lane = f"-{uuid.uuid4().hex[:8]}"
    target = temporal_env.client.service_client.config.target_host
    settings = make_settings(
        tmp_path, DAMFLEET_TRACING="otlp", DAMFLEET_WORKER_QUEUE_SUFFIX=lane,
        DAMFLEET_TEMPORAL_ADDRESS=target, DAMFLEET_TEMPORAL_NAMESPACE=temporal_env.client.namespace,
        DAMFLEET_AI_WHISPER_CPU_THREADS="2",
    )
    client = await connect(settings)  # the one place clients are built: carries the TracingInterceptor
    assert tracing.enabled()
    ctx = StageContext(settings)
    async with AsyncExitStack() as stack:
        for queue, kwargs in (  # every pool, as Worker objects on their own queues, on the same client
            (Queue.PIPELINE, {"workflows": ALL_WORKFLOWS}),
            (Queue.INGEST, {"activities": ingest_activities(ctx) + catalog_activities.build_activities(ctx)}),
            (Queue.TRANSCODE, {"activities": transcode_activities(ctx)}),
            (Queue.TRANSCODE_LIGHT, {"activities": transcode_activities(ctx)}),
            (Queue.AI_ENRICH, {"activities": enrich_activities(ctx)}),
            (Queue.DISTRIBUTION, {"activities": distribution_activities(ctx)}),
        ):
            await stack.enter_async_context(Worker(client, task_queue=queue + lane, **kwargs))
        fleet = FleetClient(client, settings)
        # A short tone: every stage runs for real (whisper too, finding no speech) in a few seconds.
        source = samples.make_audio(tmp_path / "tone.wav", 2.0, speech=False)
        handle = await fleet.submit(str(source), dedup=False)
        result = await handle.wait()
        asset_spans = exporter.get_finished_spans()
        exporter.clear()
        # A batch is one trace too, across its child pipelines and its continue-as-new runs.
        rows = [jobs_pb2.ManifestRow(line=n, source_uri=samples.make_audio(tmp_path / f"tone-{n}.wav", 1.0 + n,
                                                                           speech=False).as_uri())
                for n in (1, 2)]
        batch = await fleet.batch(rows=rows, skip_ai=True, dedup=False, continue_as_new_after=1)
        progress = await batch.wait()
        batch_spans = exporter.get_finished_spans()
    await ctx.storage.aclose()
    assert progress.completed == 2, progress
    _check_batch_trace(batch_spans)
    assert result.state == common_pb2.COMPLETED, result.error

    spans = asset_spans
    names = _by_name(spans)
    start = names["StartWorkflow:AssetPipeline"]
    assert len(start) == 1
    root = start[0]
    assert root.parent is None, "the client's start span is the trace's root"
    trace_id = root.context.trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}, sorted(names)
    assert "RunWorkflow:AssetPipeline" in names
    for activity_name in (ActivityName.INGEST, ActivityName.TRANSCODE, ActivityName.ENRICH,
                          ActivityName.DELIVER_BATCH):
        assert f"StartActivity:{activity_name}" in names, (activity_name, sorted(names))
        assert f"RunActivity:{activity_name}" in names, (activity_name, sorted(names))
    # Every span hangs off another span of this trace: nothing is orphaned.
    by_id = {s.context.span_id: s for s in spans}
    assert all(s.parent is None or s.parent.span_id in by_id for s in spans)

    def ancestors(s: ReadableSpan) -> list[str]:
        chain = []
        while s.parent is not None:
            s = by_id[s.parent.span_id]
            chain.append(s.name)
        return chain

    # The heavy steps inside the activities are spans of their own, under their stage's activity.
    for step, activity_name in (("transcode.rendition", ActivityName.TRANSCODE), ("ffmpeg", ActivityName.TRANSCODE),
                                ("whisper.transcribe", ActivityName.ENRICH), ("deliver", ActivityName.DELIVER_BATCH)):
        assert step in names, (step, sorted(names))
        for s in names[step]:
            chain = ancestors(s)
            assert f"RunActivity:{activity_name}" in chain and chain[-1] == root.name, (step, chain)
    deliveries = names["deliver"]
    assert {s.attributes["damfleet.target"] for s in deliveries} == {r.target for r in result.receipts}
    assert {s.attributes["damfleet.role"] for s in deliveries} == {r.role for r in result.receipts}


def _check_batch_trace(spans: tuple[ReadableSpan, ...]) -> None:
    """The client's StartWorkflow:BatchIngest is the only root; both assets' pipelines (one per
    continue-as-new run) and their activities are in its trace."""
    names = _by_name(list(spans))
    roots = [s for s in spans if s.parent is None]
    assert [r.name for r in roots] == ["StartWorkflow:BatchIngest"], sorted(names)
    assert {s.context.trace_id for s in spans} == {roots[0].context.trace_id}
    assert len(names["StartChildWorkflow:AssetPipeline"]) == 2
    assert len(names["RunWorkflow:AssetPipeline"]) == 2
    assert len(names["RunActivity:" + ActivityName.TRANSCODE]) == 2
    assert len(names["RunWorkflow:BatchIngest"]) >= 2, "continue-as-new runs stay in the trace"
