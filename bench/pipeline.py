"""Whole-pipeline benchmark: the fleet against the same stage functions called directly, in one run.

    .venv/bin/python bench/pipeline.py [--quick] [--rounds 2] [--singles 5] [--seed 11] [--hashes-out F] [--hashes-in F]

1. Generates a seeded mixed set with distinct bytes: 4 JPEGs of 12 MP (4000x3000, seeded noise
   over a test pattern), two 15 s H.264/AAC videos with English speech (720p and 1080p), a WAV
   and an MP3 with speech. ``--quick``: 1 JPEG, one 6 s 720p video, the MP3.
2. **Direct**: the same plain stage functions the activities wrap (``damfleet.ingest``,
   ``damfleet.transcode.stage``, ``damfleet.ai.enrich``, ``damfleet.delivery.Distributor``),
   called sequentially in this one process, asset after asset: what a hand-rolled chain does
   with no broker at all. The whisper model is loaded before the clock starts.
3. **Fleet**: a Temporal dev server and every worker pool as a separate process
   (:class:`damfleet.launcher.Fleet`, as ``damfleet demo`` starts them). One warm-up asset
   first (the AI worker loads its model); then the whole set submitted at once; at the end
   ``--singles`` single-asset runs of the MP3 (all four stages) for the orchestration overhead,
   each submitted as a user would (dedup on: a copy of the MP3 with its own ID3 comment, so
   new content every time).
   The two phases alternate for ``--rounds`` rounds (the fleet stays up and idle while the
   direct phase runs), so a load change on a shared machine hits both.

Figures:
- ``fleet_vs_direct_wall_ratio``: the fleet's wall time for the whole set over the direct
  phase's wall time in the same round; the median over the rounds. Below 1.0 means the fleet's overlap of stages (ingest beside transcode
  beside whisper) more than pays for its hops.
- ``single_asset_overhead_ms``: per single-asset run, the client's latency (start to result)
  minus the time some activity was running (the union of the activities' start..close
  intervals from the run's history); median over the singles. Both sides are read on this
  host's wall clock, the clock the server stamps events with: a VM's wall clock can be
  stepped while a run is timed (0.5 ms every 100 ms on one of these machines, for a while),
  and against a monotonic latency that stretched the activities and took up to 8 ms off a
  1.6 s run's overhead.
- ``bare_chain_overhead_ms`` and ``single_asset_overhead_vs_bare_chain``: the same figure for
  a bare Temporal workflow chaining four no-op activities on four queues, each served by its
  own process (``bench/bare_chain.py``), on the same dev server, run alternately with the
  singles: what Temporal and its Python SDK cost on this machine with nothing of damfleet's.
- ``single_asset_overhead_parts_ms`` and ``bare_chain_overhead_parts_ms``: where the overhead
  goes on the critical path, in parts that add up to it (median of each): the client's start
  call and result, workflow tasks waiting for the pipeline worker and running there, the
  server applying their commands, and activities waiting to be dispatched to their pool.
- ``single_asset_cpu_ms``: CPU each process (this client, the dev server, every pool) spent
  per single run, from ``/proc/<pid>/task/*/schedstat``.
- per-stage seconds: direct = the stage function's own time; fleet = the workflow's stage
  time (scheduled to completed, queue waits included), both summed over the set (last round).
  ``fleet_transcode_seconds_by_kind`` splits the fleet's transcode seconds by media kind:
  images queued behind video encodes (one transcode slot) show there, and images on the
  light pool (``q-transcode-light``) do not.
- ``outputs_identical``: every transcode and enrichment output of the fleet run has the same
  sha256 as the direct run's output for the same source and role. ``--hashes-out`` saves them,
  ``--hashes-in`` compares with a saved file (same inputs before and after a change).

On a shared machine the seconds move with the load (the load average is printed); the ratio
of two phases measured minutes apart is the figure to read. Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._support import ffmpeg, fleet_env
from bench.bare_chain import BareChainProcesses
from damfleet.stages import STAGE_NAMES, StageName
from damfleet.stages import STAGES as _STAGE_TABLE

STAGES = STAGE_NAMES
#: Stages whose outputs are delivered (the outputs compared between direct calls and the fleet).
DELIVERED_STAGES = tuple(stage.name for stage in _STAGE_TABLE if stage.delivers)


def make_jpeg(path: Path, seed: int, width: int = 4000, height: int = 3000) -> Path:
    """A camera-sized JPEG: a test pattern under seeded noise (distinct bytes per seed)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=1",
           "-vf", f"noise=alls=10:allf=u:all_seed={seed}", "-frames:v", "1", "-q:v", "3", str(path))
    return path


def make_set(folder: Path, *, quick: bool, seed: int) -> list[Path]:
    from damfleet.samples import make_audio, make_video

    folder.mkdir(parents=True, exist_ok=True)
    if quick:
        return [
            make_jpeg(folder / "still-0.jpg", seed),
            make_video(folder / "clip-720p.mp4", 6.0, width=1280, height=720),
            make_audio(folder / "speech.mp3"),
        ]
    sources = [make_jpeg(folder / f"still-{i}.jpg", seed + i) for i in range(4)]
    sources.append(make_video(folder / "clip-720p.mp4", 15.0, width=1280, height=720))
    sources.append(make_video(folder / "clip-1080p.mp4", 15.0, width=1920, height=1080))
    sources.append(make_audio(folder / "speech.wav"))
    sources.append(make_audio(folder / "speech.mp3"))
    return sources


def _hash_key(source: str, output: Any) -> str:
    return f"{Path(source).name}:{output.role}:{output.uri.rsplit('/', 1)[-1]}"


# ---- direct: the stage functions in one process ----------------------------------------


async def run_direct(sources: list[Path], settings: Any) -> dict[str, Any]:
    """Every source through the four stage functions, sequentially, in this process."""
    from damfleet.ai.enrich import backend_from_settings, enrich_asset
    from damfleet.delivery import Distributor
    from damfleet.ingest import ingest_asset
    from damfleet.profiles import get_profile
    from damfleet.storage import Storage
    from damfleet.transcode.stage import transcode_asset
    from damfleet.v1 import common_pb2, stages_pb2

    storage = Storage.from_settings(settings)
    backend = backend_from_settings(settings)
    backend.preload()  # models loaded before the clock, as the Celery chain had them
    distributor = Distributor(settings, storage)
    profile = get_profile("default")
    stage_seconds = dict.fromkeys(STAGES, 0.0)
    hashes: dict[str, str] = {}
    scratch_root = settings.scratch_path / "bench-direct"
    scratch_root.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for src in sources:
        asset_id = uuid.uuid4().hex
        scratch = Path(tempfile.mkdtemp(dir=scratch_root))
        t = time.perf_counter()
        ingested = await ingest_asset(
            stages_pb2.IngestInput(asset_id=asset_id, source_uri=src.as_uri(), profile=profile.name),
            storage=storage, settings=settings, scratch=scratch,
        )
        stage_seconds[StageName.INGEST] += time.perf_counter() - t
        asset = ingested.asset
        scratch = Path(tempfile.mkdtemp(dir=scratch_root))
        t = time.perf_counter()
        transcoded = await transcode_asset(
            stages_pb2.TranscodeInput(asset=asset, profile=profile.name),
            storage=storage, settings=settings, scratch=scratch,
        )
        stage_seconds[StageName.TRANSCODE] += time.perf_counter() - t
        outputs = list(transcoded.outputs)
        if asset.media.has_audio:
            scratch = Path(tempfile.mkdtemp(dir=scratch_root))
            t = time.perf_counter()
            enriched = await enrich_asset(
                stages_pb2.EnrichInput(asset=asset, profile=profile.name, transcribe=True),
                storage=storage, settings=settings, backend=backend, scratch=scratch,
            )
            stage_seconds[StageName.AI_ENRICH] += time.perf_counter() - t
            outputs.extend(enriched.outputs)
        t = time.perf_counter()
        for target in profile.targets:
            for output in outputs:
                receipt = await distributor.deliver_input(stages_pb2.DeliverInput(
                    asset_id=asset_id, target=target, output=output,
                    idempotency_key=f"{asset_id}:{target}:{output.role}:{output.uri.rsplit('/', 1)[-1]}",
                ))
                if not receipt.ok:
                    raise RuntimeError(f"direct delivery failed: {receipt.error}")
        stage_seconds[StageName.DISTRIBUTION] += time.perf_counter() - t
        for output in outputs:
            hashes[_hash_key(str(src), output)] = output.sha256
        assert asset.media.kind != common_pb2.MEDIA_KIND_UNSPECIFIED
    wall = time.perf_counter() - started
    await distributor.aclose()
    await backend.aclose()
    await storage.aclose()
    return {"wall_seconds": wall, "stage_seconds": stage_seconds, "hashes": hashes}


# ---- fleet: dev server + one process per worker pool ----------------------------------------


def _activity_intervals(events: list[Any]) -> list[tuple[float, float, str]]:
    """Each finished activity attempt's started..closed interval (epoch seconds) and its type."""
    from temporalio.api.enums.v1 import EventType

    scheduled: dict[int, str] = {}
    started: dict[int, float] = {}
    intervals: list[tuple[float, float, str]] = []
    for event in events:
        when = event.event_time.ToDatetime().timestamp()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started[event.activity_task_started_event_attributes.scheduled_event_id] = when
        elif event.event_type in (EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
                                  EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED):
            attrs = (event.activity_task_completed_event_attributes
                     if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                     else event.activity_task_failed_event_attributes)
            begin = started.get(attrs.scheduled_event_id)
            if begin is not None:
                intervals.append((begin, when, scheduled.get(attrs.scheduled_event_id, "?")))
    return intervals


def _activity_busy_seconds(events: list[Any]) -> tuple[float, dict[str, float]]:
    """Union of the activities' started..closed intervals, and each activity type's own seconds."""
    intervals = _activity_intervals(events)
    per_type: dict[str, float] = {}
    for begin, end, name in intervals:
        per_type[name] = per_type.get(name, 0.0) + (end - begin)
    busy, edge = 0.0, float("-inf")
    for begin, end, _ in sorted(intervals):
        if end <= edge:
            continue
        busy += end - max(begin, edge)
        edge = end
    return busy, per_type


#: What a stretch of a run's timeline is, by the point that ends it (see _overhead_parts).
_PART_ENDED_BY = {
    "EVENT_TYPE_WORKFLOW_TASK_STARTED": "workflow_task_wait",
    "EVENT_TYPE_WORKFLOW_TASK_COMPLETED": "workflow_task_run",
    "EVENT_TYPE_ACTIVITY_TASK_STARTED": "activity_dispatch",
}
OVERHEAD_PARTS = ("client_start", "workflow_task_wait", "workflow_task_run", "task_commands",
                  "activity_dispatch", "client_result")


def _overhead_parts(events: list[Any], started_at: float, ended_at: float) -> dict[str, float]:
    """The overhead of one run (its client latency less the activities' busy time), split by
    what the time was spent on; the parts add up to the overhead.

    The run's timeline, from the client's start call (``started_at``, wall clock of this host,
    as the server's event times are) to its result (``ended_at``), is cut at every history
    event in time order. A stretch no activity covers is overhead, and the point that ends it
    says whose: the first event ends the client's start call (``client_start``); a workflow
    task's start ends its wait for the pipeline worker (``workflow_task_wait``); its completion
    ends its run (``workflow_task_run``: the poll response reaching the worker, the workflow
    code, the completion reaching the server); an activity's start ends its dispatch to a
    pool (``activity_dispatch``); the result reaching the client ends ``client_result``; every
    other event is the server applying a completed task's commands (``task_commands``:
    markers, search attributes, scheduling). A second activity dispatched beside a running
    one is covered by it, so the parts follow the critical path only.
    """
    from temporalio.api.enums.v1 import EventType

    busy = _activity_intervals(events)

    def uncovered(begin: float, end: float) -> float:
        left = max(end - begin, 0.0)
        for a, b, _ in busy:
            left -= max(0.0, min(end, b) - max(begin, a))
        return max(left, 0.0)

    # Activity-started events are written at completion, out of time order: sort by time.
    points = sorted((e.event_time.ToDatetime().timestamp(), e.event_id, EventType.Name(e.event_type)) for e in events)
    timeline = [(started_at, "client_start")]
    timeline += [(when, "client_start" if n == 0 else _PART_ENDED_BY.get(name, "task_commands"))
                 for n, (when, _, name) in enumerate(points)]
    timeline.append((ended_at, "client_result"))
    parts = dict.fromkeys(OVERHEAD_PARTS, 0.0)
    for (begin, _), (end, part) in itertools.pairwise(timeline):
        parts[part] += uncovered(begin, end)
    return {f"{name}_ms": round(seconds * 1000, 2) for name, seconds in parts.items()}


def _cpu_seconds(pid: int) -> float:
    """CPU seconds a process's live threads have run so far (``schedstat``: nanoseconds, where
    ``stat``'s clock ticks are 10 ms); 0 where it is gone."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[0])
    except OSError:
        return 0.0
    return total / 1e9


def _fleet_pids(fleet: Any) -> dict[str, int]:
    """The processes a single run's orchestration costs CPU in: this client, the server, the pipeline pool."""
    pids = {"client": os.getpid()}
    if fleet is not None and fleet.server is not None and fleet.server.process is not None:
        pids["server"] = fleet.server.process.pid
    for worker in getattr(fleet, "workers", []):
        if worker.process is not None:
            pids[worker.pool] = worker.process.pid
    return pids


def single_sources(source: Path, count: int) -> list[Path]:
    """``count`` copies of ``source`` with the same audio frames and distinct bytes (their own
    ID3 comment), so each single run is new content under the default dedup, not a duplicate."""
    copies = []
    for number in range(count):
        copy = source.with_name(f"{source.stem}-single-{number}{source.suffix}")
        ffmpeg("-i", str(source), "-map", "0", "-c", "copy", "-metadata", f"comment=bench single {number}", str(copy))
        copies.append(copy)
    return copies


async def _single(client: Any, source: Path, task_queue: str, fleet: Any = None) -> dict[str, Any]:
    from temporalio.api.enums.v1 import EventType

    pids = _fleet_pids(fleet)
    cpu_before = {name: _cpu_seconds(pid) for name, pid in pids.items()}
    started, started_at = time.perf_counter(), time.time()
    # The default request (dedup on), as a user submits it: each single's source has bytes of its own.
    handle = await client.submit(str(source), task_queue=task_queue)
    result = await handle.wait()
    latency, ended_at = time.perf_counter() - started, time.time()
    cpu_ms = {name: round((_cpu_seconds(pid) - cpu_before[name]) * 1000, 1) for name, pid in pids.items()}
    history = await client.client.get_workflow_handle(handle.workflow_id).fetch_history()
    busy, per_type = _activity_busy_seconds(list(history.events))
    first = history.events[0].event_time.ToDatetime().timestamp() if history.events else 0.0
    parts = _overhead_parts(list(history.events), started_at, ended_at)  # they add up to the overhead
    timeline = [(round((e.event_time.ToDatetime().timestamp() - first) * 1000, 1),
                 EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")) for e in history.events]
    return {"timeline": timeline, "parts": parts,"latency_ms": latency * 1000, "activities_ms": busy * 1000, "overhead_ms": sum(parts.values()),
            "events": len(history.events), "cpu_ms": cpu_ms, "per_activity_ms": {k: round(v * 1000, 1) for k, v in per_type.items()},
            "state": result.state}


@contextlib.asynccontextmanager
async def started_fleet(settings: Any, warm_source: Path) -> AsyncIterator[Any]:
    """The dev server and every pool as a process, warmed up by one run; yields a client."""
    from damfleet.client import FleetClient
    from damfleet.launcher import Fleet
    from damfleet.v1 import common_pb2

    fleet = Fleet(settings, metrics_base_port=0)
    try:
        await fleet.start()
        client = await FleetClient.connect(settings)
        warm = await _single(client, warm_source, _queue(settings))  # workers connected, whisper loaded
        if warm["state"] != common_pb2.COMPLETED:
            raise RuntimeError(f"warm-up run ended {warm['state']}; see {settings.state_path / 'logs'}")
        yield client, fleet
        dead = fleet.check_workers()
        if dead:
            raise RuntimeError(f"worker processes died: {dead}")
    finally:
        fleet.stop()


def _queue(settings: Any) -> str:
    from damfleet.policies import Queue

    return Queue.PIPELINE + settings.worker.queue_suffix


async def run_fleet(client: Any, sources: list[Path], settings: Any, *, videos_first: bool = False) -> dict[str, Any]:
    """The whole set submitted at once; wall time until the last run ends. ``videos_first``: the
    videos, then the rest once a video encode runs (an upload arriving during an encode)."""
    from damfleet.v1 import common_pb2

    started = time.perf_counter()
    handles = []
    first = [src for src in sources if videos_first and src.suffix == ".mp4"]
    for src in first:
        handles.append((src, await client.submit(str(src), task_queue=_queue(settings), dedup=False)))
    while first:
        states = [(await h.status()).stages[StageName.TRANSCODE].status for _, h in handles]
        if common_pb2.STAGE_STATUS_RUNNING in states:
            break
        await asyncio.sleep(0.1)
    for src in sources:
        if src not in first:
            handles.append((src, await client.submit(str(src), task_queue=_queue(settings), dedup=False)))
    results = [(src, await handle.wait()) for src, handle in handles]
    wall = time.perf_counter() - started
    stage_seconds = dict.fromkeys(STAGES, 0.0)
    #: transcode stage seconds (queue wait included) per media kind: images waiting behind videos show here
    transcode_by_kind: dict[str, float] = {}
    hashes: dict[str, str] = {}
    for src, result in results:
        if result.state != common_pb2.COMPLETED:
            raise RuntimeError(f"{src.name} ended {common_pb2.JobState.Name(result.state)}: {result.error}")
        for stage in STAGES:
            stage_seconds[stage] += result.stages[stage].seconds
        kind = common_pb2.MediaKind.Name(result.asset.media.kind).removeprefix("MEDIA_KIND_").lower()
        transcode_by_kind[kind] = transcode_by_kind.get(kind, 0.0) + result.stages[StageName.TRANSCODE].seconds
        for output in result.outputs:
            if output.stage in DELIVERED_STAGES:
                hashes[_hash_key(str(src), output)] = output.sha256
    return {"wall_seconds": wall, "stage_seconds": stage_seconds, "hashes": hashes,
            "transcode_by_kind": transcode_by_kind}


def _compare(a: dict[str, str], b: dict[str, str]) -> list[str]:
    """Keys whose sha256 differ, or that only one side has."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


async def main(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="damfleet-bench-pipeline-"))
    os.environ.update({
        **fleet_env(work / "state"),
        "DAMFLEET_LOG_LEVEL": "WARNING",
        "YOLO_OFFLINE": "1",
        "YOLO_CONFIG_DIR": str(work / "state" / "ultralytics"),
        "HF_HUB_OFFLINE": "1",
        # Ingest reads sources only under configured roots (the fleet's workers get the same).
        "DAMFLEET_INGEST_SOURCE_ROOTS": (work / "state" / "samples").as_uri(),
    })
    os.environ.pop("DAMFLEET_STORAGE_ROOT", None)
    from damfleet.settings import load_settings

    settings = load_settings()   # the environment just set; the fleet's workers read the same
    settings.state_path.mkdir(parents=True, exist_ok=True)
    sources = make_set(settings.state_path / "samples", quick=args.quick, seed=args.seed)
    single_source = next(s for s in sources if s.suffix == ".mp3")
    load_before = os.getloadavg()
    print(f"set: {len(sources)} files, {sum(s.stat().st_size for s in sources) / 1e6:.1f} MB; "
          f"load average {load_before[0]:.2f}", file=sys.stderr)

    ratios: list[float] = []
    direct: dict[str, Any] = {"wall_seconds": 0.0, "stage_seconds": dict.fromkeys(STAGES, 0.0), "hashes": {}}
    fleet: dict[str, Any] = {"wall_seconds": 0.0, "stage_seconds": dict.fromkeys(STAGES, 0.0), "hashes": {}}
    singles = single_sources(single_source, args.singles + 1)  # the first warms the fleet up
    async with started_fleet(settings, singles[0]) as (client, launched):
        # Rounds alternate the two phases so a load change on a shared machine hits both.
        for round_no in range(args.rounds):
            direct = await run_direct(sources, settings)
            fleet = await run_fleet(client, sources, settings, videos_first=args.videos_first)
            ratios.append(fleet["wall_seconds"] / direct["wall_seconds"])
            print(f"round {round_no + 1}: direct {direct['wall_seconds']:.1f}s, fleet {fleet['wall_seconds']:.1f}s "
                  f"(load average {os.getloadavg()[0]:.2f})", file=sys.stderr)
        load_mid = os.getloadavg()
        # Single runs alternate with a bare Temporal chain on the same server (the floor under
        # the overhead: bench/bare_chain.py), so a load change hits both.
        fleet["singles"], bare_overheads, bare_parts = [], [], []
        bare = BareChainProcesses(settings.temporal.address, settings.temporal.namespace)
        bare.start()
        try:
            await bare.run_once(client.client)  # the five processes connected and polling
            for source in singles[1:]:
                fleet["singles"].append(await _single(client, source, _queue(settings), launched))
                chain = await bare.run_once(client.client)
                bare_parts.append(_overhead_parts(list(chain.history.events), chain.started_at, chain.ended_at))
                bare_overheads.append(sum(bare_parts[-1].values()))
        finally:
            bare.stop()
    load_after = os.getloadavg()

    overheads = [r["overhead_ms"] for r in fleet["singles"]]
    differ = _compare(direct["hashes"], fleet["hashes"])
    baseline_differ: list[str] | None = None
    if args.hashes_in:
        baseline_differ = _compare(json.loads(Path(args.hashes_in).read_text()), fleet["hashes"])
    if args.hashes_out:
        Path(args.hashes_out).write_text(json.dumps(fleet["hashes"], indent=1, sort_keys=True))

    print(f"\n{'stage':<14}{'direct s':>10}{'fleet s':>10}", file=sys.stderr)
    for stage in STAGES:
        print(f"{stage:<14}{direct['stage_seconds'][stage]:>10.2f}{fleet['stage_seconds'][stage]:>10.2f}",
              file=sys.stderr)
    print(f"{'wall':<14}{direct['wall_seconds']:>10.2f}{fleet['wall_seconds']:>10.2f}", file=sys.stderr)
    print("\nsingle-asset runs (ms): " + "; ".join(
        f"latency {r['latency_ms']:.0f}, activities {r['activities_ms']:.0f}, overhead {r['overhead_ms']:.0f}"
        for r in fleet["singles"]), file=sys.stderr)
    if fleet["singles"]:
        print(f"per activity (last single): {fleet['singles'][-1]['per_activity_ms']}, "
              f"{fleet['singles'][-1]['events']} history events", file=sys.stderr)
    if args.trace and fleet["singles"]:
        for at, name in fleet["singles"][-1]["timeline"]:
            print(f"{at:>9.1f} ms  {name}", file=sys.stderr)
    if differ:
        print(f"outputs that differ between direct and fleet: {differ}", file=sys.stderr)

    figures: dict[str, Any] = {
        "fleet_vs_direct_wall_ratio": round(statistics.median(ratios), 3) if ratios else None,
        "single_asset_overhead_ms": round(statistics.median(overheads), 1) if overheads else None,
        "single_asset_overhead_vs_bare_chain": round(statistics.median(overheads) / statistics.median(bare_overheads), 3)
        if overheads else None,
        "bare_chain_overhead_ms": round(statistics.median(bare_overheads), 1) if bare_overheads else None,
        "outputs_identical": (not differ) if ratios else None,
    }
    if baseline_differ is not None:
        figures["outputs_identical_to_saved"] = not baseline_differ
        if baseline_differ:
            print(f"outputs that differ from {args.hashes_in}: {baseline_differ}", file=sys.stderr)
    figures.update({
        "round_ratios": [round(r, 3) for r in ratios],
        "fleet_wall_seconds": round(fleet["wall_seconds"], 2),
        "direct_wall_seconds": round(direct["wall_seconds"], 2),
        "fleet_stage_seconds": {k: round(v, 2) for k, v in fleet["stage_seconds"].items()},
        "direct_stage_seconds": {k: round(v, 2) for k, v in direct["stage_seconds"].items()},
        "fleet_transcode_seconds_by_kind": {k: round(v, 2) for k, v in sorted(fleet.get("transcode_by_kind", {}).items())},
        "single_asset_overheads_ms": [round(x, 1) for x in overheads],
        "bare_chain_overheads_ms": [round(x, 1) for x in bare_overheads],
        # Where the overhead goes on the critical path (median of each part; see _overhead_parts).
        "single_asset_overhead_parts_ms": {
            k: round(statistics.median(r["parts"][k] for r in fleet["singles"]), 1) for k in fleet["singles"][0]["parts"]
        } if fleet["singles"] else None,
        # CPU the single runs cost each process (median): the pipeline pool's share is the
        # workflow tasks, the pools' the activities, the server's the persistence and matching.
        "single_asset_cpu_ms": {
            name: round(statistics.median(r["cpu_ms"].get(name, 0.0) for r in fleet["singles"]), 1)
            for name in fleet["singles"][0]["cpu_ms"]
        } if fleet["singles"] else None,
        "bare_chain_overhead_parts_ms": {
            k: round(statistics.median(p[k] for p in bare_parts), 1) for k in bare_parts[0]
        } if bare_parts else None,
        "single_asset_latency_ms": round(statistics.median(r["latency_ms"] for r in fleet["singles"]), 1)
        if fleet["singles"] else None,
        "assets": len(sources),
        "quick": args.quick,
        "videos_first": args.videos_first,
        "load_average": [round(x, 2) for x in (load_before[0], load_mid[0], load_after[0])],
        "cpus": os.cpu_count(),
    })
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"state kept in {work}", file=sys.stderr)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 small files instead of the 8-file set")
    parser.add_argument("--rounds", type=int, default=2,
                        help="direct+fleet rounds (the ratio is their median); 0: only the single-asset runs")
    parser.add_argument("--singles", type=int, default=5, help="single-asset runs for the overhead median")
    parser.add_argument("--seed", type=int, default=11, help="seed of the generated images' noise")
    parser.add_argument("--hashes-out", help="save the fleet outputs' sha256 per source and role here")
    parser.add_argument("--hashes-in", help="compare the fleet outputs' sha256 with this saved file")
    parser.add_argument("--trace", action="store_true", help="print the last single run's event timeline")
    parser.add_argument("--keep", action="store_true", help="keep the state folder (logs, storage)")
    parser.add_argument("--videos-first", action="store_true",
                        help="fleet: submit the rest once a video encode runs (images behind it show in "
                             "fleet_transcode_seconds_by_kind)")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
