"""One trace per asset across six real processes: the CLI and the five worker pools.

Each ``python -m workers.<pool>`` process and the ``damfleet submit`` process export their
spans over OTLP/HTTP (``DAMFLEET_TRACING=otlp``, the standard ``OTEL_EXPORTER_OTLP_ENDPOINT``)
to a small OTLP receiver in this test, which decodes the protobuf requests with
``opentelemetry-proto`` exactly as a collector (Jaeger, Tempo) would. The span context
crosses every process boundary only through Temporal's headers.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from damfleet.policies import ActivityName
from damfleet.v1 import common_pb2, pipeline_pb2
from tests.conftest import source_roots_env
from tests.jobs_support import REPO, run_damfleet
from workers import POOLS

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint on loopback (``POST /v1/traces``, protobuf, optionally gzip)."""

    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver.add(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, request: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(ReceivedSpan(
                            attributes.get("service.name", ""), span.name, span.trace_id.hex(),
                            span.span_id.hex(), span.parent_span_id.hex()))

    def snapshot(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.close()


def _env(tmp_path: Path, temporal_env: Any, lane: str, endpoint: str) -> dict[str, str]:
    return {
        "DAMFLEET_TEMPORAL_ADDRESS": temporal_env.client.service_client.config.target_host,
        "DAMFLEET_STATE_DIR": str(tmp_path / "state"),
        "DAMFLEET_STORAGE_ROOT": (tmp_path / "storage").as_uri(),
        "DAMFLEET_WORKER_SCRATCH_DIR": str(tmp_path / "scratch"),
        "DAMFLEET_INGEST_SOURCE_ROOTS": source_roots_env(tmp_path),
        "DAMFLEET_WORKER_QUEUE_SUFFIX": lane,
        "DAMFLEET_WORKER_METRICS_PORT": "0",
        "DAMFLEET_WORKER_GRACEFUL_SHUTDOWN_SECONDS": "5",
        "DAMFLEET_AI_WHISPER_CPU_THREADS": "1",
        "DAMFLEET_TRACING": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within a fifth of a second (default 5 s)
    }


async def test_one_trace_across_the_cli_and_five_worker_processes(
    temporal_env, tmp_path: Path, media_dir: Path, receiver: OtlpReceiver
) -> None:
    lane = f"-{uuid.uuid4().hex[:8]}"
    env = _env(tmp_path, temporal_env, lane, receiver.endpoint)
    logs = tmp_path / "logs"
    procs = _start_pools(env, logs)
    try:
        # The CLI is the client: its StartWorkflow span is the root of the asset's trace. Without
        # --wait it exits right after the start, so its span must be flushed before it exits.
        code, out, err = await run_damfleet(env, "submit", str(media_dir / "speech.wav"), "--json", "--no-dedup")
        assert code == 0, (out, err, _tails(logs))
        (workflow_id,) = json.loads(out.strip().splitlines()[-1])["workflow_ids"]
        handle = temporal_env.client.get_workflow_handle(workflow_id, result_type=pipeline_pb2.PipelineResult)
        result = await asyncio.wait_for(handle.result(), timeout=300)
        assert result.state == common_pb2.COMPLETED, (result.error, _tails(logs))

        # The speech clip is audio: every pool but the image lane (q-transcode-light) serves it.
        expected = {f"damfleet-{pool}" for pool in POOLS if pool != "transcode_light"} | {"damfleet-client"}
        deadline = time.monotonic() + 60  # batches leave every 0.2 s; a loaded machine gets a minute
        while True:
            spans = receiver.snapshot()
            roots = [s for s in spans if s.name == "StartWorkflow:AssetPipeline" and s.service == "damfleet-client"]
            trace_id = roots[0].trace_id if roots else ""
            services = {s.service for s in spans if s.trace_id == trace_id}
            if services >= expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            await asyncio.to_thread(proc.wait, 60)

    # Spans still batched in a process are flushed when it stops: read what arrived by then, so
    # the last workflow span (StartActivity of the delivery) is never missed on a busy machine.
    spans = receiver.snapshot()
    roots = [s for s in spans if s.name == "StartWorkflow:AssetPipeline" and s.service == "damfleet-client"]
    trace_id = roots[0].trace_id if roots else ""
    services = {s.service for s in spans if s.trace_id == trace_id}
    assert len(roots) == 1, (roots, _tails(logs))
    assert roots[0].parent_span_id == "", "the client's start span is the trace's root"
    assert services == expected, (sorted(services), sorted({(s.service, s.name) for s in spans}))
    # Every span any process sent belongs to this asset's trace.
    assert {s.trace_id for s in spans} == {trace_id}
    in_trace = {(s.service, s.name) for s in spans}
    assert ("damfleet-pipeline", "RunWorkflow:AssetPipeline") in in_trace
    for pool, activity_name in (("ingest", ActivityName.INGEST), ("transcode", ActivityName.TRANSCODE),
                                ("ai_enrich", ActivityName.ENRICH), ("distribution", ActivityName.DELIVER_BATCH)):
        assert ("damfleet-pipeline", f"StartActivity:{activity_name}") in in_trace
        assert (f"damfleet-{pool}", f"RunActivity:{activity_name}") in in_trace, sorted(in_trace)
    assert ("damfleet-transcode", "ffmpeg") in in_trace
    assert ("damfleet-ai_enrich", "whisper.transcribe") in in_trace
    assert ("damfleet-distribution", "deliver") in in_trace
    # Parents resolve across processes: each activity's span hangs off the pipeline's StartActivity.
    by_id = {s.span_id: s for s in spans}
    for s in spans:
        if s.name.startswith("RunActivity:"):
            parent = by_id[s.parent_span_id]
            assert (parent.service, parent.name) == ("damfleet-pipeline", s.name.replace("Run", "Start", 1))
    assert all(p.returncode == 0 for p in procs.values()), _tails(logs)


def _start_pools(env: dict[str, str], logs: Path) -> dict[str, subprocess.Popen[bytes]]:
    """``python -m workers.<pool>`` for every pool, each logging to ``logs/<pool>.log``."""
    logs.mkdir()
    procs = {}
    for pool in POOLS:
        with open(logs / f"{pool}.log", "wb") as out:
            procs[pool] = subprocess.Popen([sys.executable, "-m", f"workers.{pool}"], cwd=REPO,
                                           env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
    return procs


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in sorted(logs.glob("*.log")))
