"""Chaos benchmark: a batch through the whole fleet while pools, the server and the store fail.

    PYTHONPATH=$PWD .venv/bin/python bench/chaos.py [--assets 200] [--outage-seconds 60] [--kills 20]

Runs the same generated batch twice on a fresh embedded fleet (dev server + five pool
processes, storage on a real S3 HTTP server, moto, reached through a TCP relay):

1. **baseline**: no faults, for the wall time chaos is compared with;
2. **chaos**, in a bounded loop while the batch runs:
   - the S3 endpoint refuses connections for ``--outage-seconds`` while assets are being
     ingested, and again while they are being delivered (the relay closes its port and resets
     open connections; moto keeps its buckets);
   - the dev server is SIGKILLed and restarted on its SQLite file, twice;
   - random pool processes are SIGKILLed (``--kills`` in all, the transcode pool mid-encode
     among them); ``Fleet.supervise`` restarts them, as ``damfleet dev`` does.

Then it checks what must hold after any fault, and reports each as a count that must be 0:
``stuck`` (runs not finished), ``lost`` (a good source not COMPLETED, or a bad one not FAILED
for its bad input), ``duplicated_outputs`` (objects or deliveries beyond what the result
lists), ``hash_mismatches`` (stored bytes or metadata vs. the result's sha256),
``leftover_scratch``, ``orphaned_tools`` (ffmpeg/ffprobe/exiftool/libvips helper still
running), ``open_multipart_uploads``, ``objects_under_failed_assets``. Every fault injected is
listed with the retries it caused and when. Ends with one JSON line, ratios first.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)

from bench._support import ffmpeg, fleet_env, free_port
from damfleet import samples
from damfleet.settings import Settings, load_settings
from tests.faults import TcpRelay

TOOL_MARKERS = ("ffmpeg", "ffprobe", "exiftool", "damfleet.transcode.vips_child")
TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "TERMINATED", "TIMED_OUT"}  # Temporal's closed statuses


def make_batch(folder: Path, count: int) -> tuple[list[Path], list[Path]]:
    """``count`` distinct sources (images, short videos, tones, two videos large enough for
    multipart uploads) plus two bad inputs; returns (good, bad)."""
    folder.mkdir(parents=True, exist_ok=True)
    patterns = ("testsrc2", "rgbtestsrc", "smptebars", "testsrc")
    good: list[Path] = []
    big = min(2, max(0, count // 6))
    for i in range(big):
        path = folder / f"big-{i:03d}.mp4"
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={3 + i}",
               "-vf", "noise=alls=60:allf=t+u", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "24M",
               "-pix_fmt", "yuv420p", str(path))
        good.append(path)
    for i in range(count - big):
        kind = i % 4
        if kind in (0, 1):
            suffix = ".png" if kind == 0 else ".jpg"
            good.append(samples.make_image(folder / f"image-{i:03d}{suffix}", 320 + i, 200 + (i % 7),
                                           pattern=patterns[i % len(patterns)]))
        elif kind == 2:
            good.append(samples.make_video(folder / f"clip-{i:03d}.mp4", 1.0 + (i % 3) * 0.5,
                                           width=320 + 2 * (i % 5), height=240, speech=False))
        else:
            path = folder / f"tone-{i:03d}.m4a"
            ffmpeg("-f", "lavfi", "-i", f"sine=frequency={220 + 7 * i}:sample_rate=44100:duration=2",
                   "-ac", "1", str(path))
            good.append(path)
    empty = folder / "bad-empty.mov"
    empty.write_bytes(b"")
    text = folder / "bad-not-media.mp4"
    text.write_text("this is a shopping list, not a video\n" * 20)
    return good, [empty, text]


@dataclass
class Fault:
    kind: str
    at: float
    seconds: float = 0.0
    detail: str = ""


@dataclass
class Run:
    settings: Settings
    relay: TcpRelay
    bucket: str
    faults: list[Fault] = field(default_factory=list)
    supervisor_events: list[str] = field(default_factory=list)


async def _wait_terminal(client: Any, workflow_ids: list[str], deadline: float) -> dict[str, str]:
    """Workflow status per id once all are closed, or at the deadline (RPC errors retried:
    the server restarts under us)."""
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        for wid in workflow_ids:
            if states.get(wid) in TERMINAL:
                continue
            try:
                description = await client.client.get_workflow_handle(wid).describe()
            except Exception:  # noqa: BLE001, S112 - the server may be restarting: ask again next round
                continue
            states[wid] = description.status.name if description.status else "RUNNING"
        if all(states.get(w) in TERMINAL for w in workflow_ids):
            return states
        await asyncio.sleep(1.0)
    return states


async def _count_in_stage(client: Any, stage: str) -> int:
    with contextlib.suppress(Exception):
        counted = await client.client.count_workflows(
            f"DamfleetStage = '{stage}' AND ExecutionStatus = 'Running'")
        return int(counted.count)
    return 0


async def _chaos(run: Run, fleet: Any, client: Any, *, outage_seconds: float, kills: int, started: float,
                 done: asyncio.Event, rng: random.Random) -> None:
    """The fault schedule: outage in ingest, server kills, pool kills, outage in delivery."""
    from damfleet.launcher import DevServer

    def now() -> float:
        return round(time.monotonic() - started, 1)

    async def kill_server() -> None:
        assert fleet.server is not None and fleet.server.process is not None
        t0 = time.monotonic()
        fleet.server.process.send_signal(signal.SIGKILL)
        fleet.server.process.wait()
        fleet.server = DevServer(run.settings)
        fleet.server.start()
        await fleet.server.wait_ready(120)
        run.faults.append(Fault("dev_server_sigkill_restart", now(), round(time.monotonic() - t0, 1)))

    async def kill_pool(pool: str | None = None) -> None:
        alive = [w for w in fleet.workers if w.alive and (pool is None or w.pool == pool)]
        if not alive:
            return
        worker = rng.choice(alive)
        worker.process.send_signal(signal.SIGKILL)
        run.faults.append(Fault("pool_sigkill", now(), detail=worker.pool))

    async def outage(where: str) -> None:
        t0 = time.monotonic()
        run.relay.outage()
        try:
            await asyncio.sleep(outage_seconds)
        finally:
            run.relay.restore()
        run.faults.append(Fault(f"s3_unreachable_{where}", round(t0 - started, 1), round(time.monotonic() - t0, 1)))

    kills_left = kills
    # 1. Mid-ingest: the store goes away as the batch arrives (before the first submission,
    #    so every ingest meets it however fast the machine is); meanwhile a server kill and
    #    an ingest pool kill.
    during = asyncio.create_task(outage("mid_ingest"))
    await asyncio.sleep(0)  # let the outage begin before the caller submits
    await asyncio.sleep(min(10.0, outage_seconds / 3))
    await kill_pool("ingest")
    kills_left -= 1
    await asyncio.sleep(min(10.0, outage_seconds / 3))
    await kill_server()
    await during
    # 2. Mid-encode: kill the transcode pool while it encodes, then the second server kill.
    for _ in range(120):
        if done.is_set() or await _count_in_stage(client, "transcode"):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.0)
    await kill_pool("transcode")
    kills_left -= 1
    await asyncio.sleep(5.0)
    await kill_server()
    # 3. Mid-delivery: the store goes away while assets deliver.
    for _ in range(600):
        if done.is_set() or await _count_in_stage(client, "distribution"):
            break
        await asyncio.sleep(0.2)
    during = asyncio.create_task(outage("mid_delivery"))
    await asyncio.sleep(2.0)
    await kill_pool("distribution")
    kills_left -= 1
    await during
    # 4. Random pool kills until the batch is done or the budget is spent.
    while kills_left > 0 and not done.is_set():
        await asyncio.sleep(rng.uniform(3.0, 10.0))
        await kill_pool()
        kills_left -= 1


def _tool_processes(state_dir: Path) -> list[str]:
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = " ".join(proc.info["cmdline"] or [])
            if not any(marker in cmdline for marker in TOOL_MARKERS):
                continue
            if proc.environ().get("DAMFLEET_STATE_DIR") == str(state_dir):
                found.append(f"{proc.pid} {cmdline[:120]}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


async def _check(run: Run, results: dict[str, Any], good: list[Path], bad: list[Path],
                 states: dict[str, str]) -> dict[str, Any]:
    """Every invariant as a count (0 is right), plus the retries each stage took."""
    import boto3

    from damfleet.storage import Storage
    from damfleet.v1 import common_pb2

    storage = Storage.from_settings(run.settings)
    s3 = boto3.client("s3", endpoint_url=run.relay.endpoint, aws_access_key_id="testing",
                      aws_secret_access_key="testing", region_name="us-east-1")
    counts = {"stuck": 0, "lost": 0, "duplicated_outputs": 0, "hash_mismatches": 0, "objects_under_failed_assets": 0}
    problems: list[str] = []
    retries: dict[str, int] = {}
    bad_names = {p.name for p in bad}
    for source, result in results.items():
        name = Path(source).name
        if states.get(result.workflow_id) not in TERMINAL:
            counts["stuck"] += 1
            problems.append(f"stuck: {name} ({states.get(result.workflow_id)})")
            continue
        for stage_name, stage in result.stages.items():
            retries[stage_name] = retries.get(stage_name, 0) + max(0, stage.attempts - 1)
        state = common_pb2.JobState.Name(result.state)
        if name in bad_names:
            if state != "FAILED" or "unreachable" in result.error or "gave up" in result.error:
                counts["lost"] += 1
                problems.append(f"bad input not failed as bad input: {name}: {state} {result.error}")
        elif state != "COMPLETED":
            counts["lost"] += 1
            problems.append(f"lost: {name}: {state} {result.error}")
        prefix = storage.keys(result.asset_id).prefix
        stored = {o.uri async for o in storage.list(prefix)}
        if state == "FAILED":
            counts["objects_under_failed_assets"] += len(stored)
            continue
        listed = [o.uri for o in result.outputs]
        extra = (len(listed) - len(set(listed))) + len(stored - set(listed))
        counts["duplicated_outputs"] += extra
        if extra:
            problems.append(f"duplicated outputs of {name}: {sorted(stored - set(listed))}")
        for output in result.outputs:
            data = await storage.read_bytes(output.uri, limit=1 << 30)
            info = await storage.stat(output.uri)
            if hashlib.sha256(data).hexdigest() != output.sha256 or (info.sha256 and info.sha256 != output.sha256):
                counts["hash_mismatches"] += 1
                problems.append(f"hash mismatch: {output.uri}")
        delivered = [r for r in result.receipts if r.ok]
        on_disk = [p for p in (run.settings.state_path / "delivered").rglob("*")
                   if p.is_file() and result.asset_id in str(p)]
        if len(on_disk) > len(delivered):
            counts["duplicated_outputs"] += len(on_disk) - len(delivered)
            problems.append(f"extra deliveries of {name}: {len(on_disk)} files, {len(delivered)} receipts")
    await storage.aclose()
    uploads = s3.list_multipart_uploads(Bucket=run.bucket).get("Uploads", [])
    counts["open_multipart_uploads"] = len(uploads)
    scratch = run.settings.scratch_path
    counts["leftover_scratch"] = len(list(scratch.iterdir())) if scratch.is_dir() else 0
    orphans = _tool_processes(run.settings.state_path)
    counts["orphaned_tools"] = len(orphans)
    problems.extend(f"orphaned tool: {o}" for o in orphans)
    if counts["leftover_scratch"]:
        problems.append(f"leftover scratch: {sorted(p.name for p in scratch.iterdir())}")
    missing = {str(p) for p in [*good, *bad]} - set(results)
    counts["lost"] += len(missing)
    problems.extend(f"never submitted: {m}" for m in missing)
    return {"counts": counts, "retries_per_stage": retries, "problems": problems[:40]}


async def run_batch(root: Path, good: list[Path], bad: list[Path], *, chaos: bool, outage_seconds: float,
                    kills: int, seed: int, timeout_seconds: float) -> dict[str, Any]:
    """One batch on a fresh fleet; with ``chaos`` the fault schedule runs alongside."""
    import boto3
    from moto.server import ThreadedMotoServer

    from damfleet.client import FleetClient
    from damfleet.launcher import Fleet

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request log
    moto_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    relay = TcpRelay("127.0.0.1", moto_port).start()
    bucket = f"chaos-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}", aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket=bucket)
    env = {
        **fleet_env(root / "state"),
        "DAMFLEET_TEMPORAL_CONNECT_TIMEOUT_SECONDS": "120",
        "DAMFLEET_WORKER_SCRATCH_SWEEP_SECONDS": "10",
        "DAMFLEET_INGEST_SOURCE_ROOTS": json.dumps([str(p.parent) for p in {*good, *bad}]),
        "DAMFLEET_STORAGE_ROOT": f"s3://{bucket}/dam",
        "DAMFLEET_STORAGE_S3_ENDPOINT_URL": relay.endpoint,
        "DAMFLEET_STORAGE_S3_ACCESS_KEY_ID": "testing",
        "DAMFLEET_STORAGE_S3_SECRET_ACCESS_KEY": "testing",
        "DAMFLEET_STORAGE_MULTIPART_THRESHOLD_BYTES": str(5 * 1024 * 1024),
        "DAMFLEET_STORAGE_MULTIPART_CHUNK_BYTES": str(5 * 1024 * 1024),
        # moto reports every multipart upload as initiated in 2010, so the stale-upload sweeper
        # would abort live uploads; it is tested on its own (tests/damfleet/storage).
        "DAMFLEET_STORAGE_MULTIPART_MAX_AGE_HOURS": "1000000",
    }
    settings = load_settings(env)
    run = Run(settings, relay, bucket)
    fleet = Fleet(settings, metrics_base_port=0, extra_env=env)
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    states: dict[str, str] = {}
    supervisor: asyncio.Task[None] | None = None
    chaos_task: asyncio.Task[None] | None = None
    try:
        await fleet.start()
        await fleet.wait_polling(300)
        supervisor = asyncio.create_task(fleet.supervise(
            run.supervisor_events.append, max_restarts=100, max_backoff_seconds=4.0))
        client = await FleetClient.connect(settings)
        started = time.monotonic()
        done = asyncio.Event()
        if chaos:
            chaos_task = asyncio.create_task(_chaos(run, fleet, client, outage_seconds=outage_seconds, kills=kills,
                                                    started=started, done=done, rng=rng))
            while not relay.refusing:  # the ingest outage is on before the first upload arrives
                await asyncio.sleep(0.01)
        handles = {}
        for source in [*good, *bad]:
            handles[str(source)] = await client.submit(str(source), skip_ai=True, dedup=False)
        ids = [h.workflow_id for h in handles.values()]
        states = await _wait_terminal(client, ids, time.monotonic() + timeout_seconds)
        wall = time.monotonic() - started
        done.set()
        if chaos_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(chaos_task, timeout=outage_seconds + 180)
        client = await FleetClient.connect(settings)  # the server may have been restarted
        for source, handle in handles.items():
            try:
                results[source] = await client.status(handle.workflow_id)
            except Exception as exc:  # noqa: BLE001 - reported as stuck/lost below
                print(f"status of {source} failed: {exc}", file=sys.stderr)
    finally:
        if chaos_task is not None and not chaos_task.done():
            chaos_task.cancel()
        if supervisor is not None:
            supervisor.cancel()
        fleet.stop()
    await asyncio.sleep(2.0)  # let the kernel deliver parent-death signals before counting orphans
    checked = await _check(run, results, good, bad, states)
    relay.close()
    moto.stop()
    return {
        "wall_seconds": round(wall, 1),
        **checked,
        "faults": [vars(f) for f in run.faults],
        "supervisor": run.supervisor_events[-30:],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--outage-seconds", type=float, default=60.0)
    parser.add_argument("--kills", type=int, default=20, help="pool SIGKILLs in all (at least 3)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds before unfinished runs count as stuck")
    parser.add_argument("--no-baseline", action="store_true", help="skip the fault-free run (no cost ratio)")
    args = parser.parse_args()
    report = asyncio.run(chaos_report(args.assets, outage_seconds=args.outage_seconds, kills=max(3, args.kills),
                                      seed=args.seed, timeout_seconds=args.timeout, baseline=not args.no_baseline))
    for line in report["chaos"]["problems"]:
        print(line, file=sys.stderr)
    print(json.dumps(report["summary"]))
    return 0 if report["ok"] else 1


async def chaos_report(assets: int, *, outage_seconds: float, kills: int, seed: int, timeout_seconds: float,
                       baseline: bool) -> dict[str, Any]:
    """Both runs and the summary the JSON line prints; ``ok`` when every count is 0."""
    with tempfile.TemporaryDirectory(prefix="damfleet-chaos-") as tmp:
        root = Path(tmp)
        good, bad = make_batch(root / "media", assets)
        base = None
        if baseline:
            base = await run_batch(root / "baseline", good, bad, chaos=False, outage_seconds=outage_seconds,
                                   kills=kills, seed=seed, timeout_seconds=timeout_seconds)
        chaos = await run_batch(root / "chaos", good, bad, chaos=True, outage_seconds=outage_seconds,
                                kills=kills, seed=seed, timeout_seconds=timeout_seconds)
    summary: dict[str, Any] = {}
    if base is not None:
        summary["chaos_wall_ratio"] = round(chaos["wall_seconds"] / max(base["wall_seconds"], 0.1), 3)
        summary["chaos_extra_wall_percent"] = round(100.0 * (summary["chaos_wall_ratio"] - 1), 1)
        summary["baseline_wall_seconds"] = base["wall_seconds"]
    summary["chaos_wall_seconds"] = chaos["wall_seconds"]
    summary["assets"] = len(good) + len(bad)
    summary.update(chaos["counts"])
    summary["retries_per_stage"] = chaos["retries_per_stage"]
    summary["faults"] = chaos["faults"]
    if base is not None:
        summary["baseline_counts_nonzero"] = {k: v for k, v in base["counts"].items() if v}
    ok = not any(chaos["counts"].values()) and not (base and any(base["counts"].values()))
    summary["ok"] = ok
    return {"summary": summary, "chaos": chaos, "baseline": base, "ok": ok}


if __name__ == "__main__":
    sys.exit(main())
