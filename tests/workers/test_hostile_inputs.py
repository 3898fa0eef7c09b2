"""The hostile-input suite (issue 12): generated hostile files through real ingest and transcode workers.

Each case is submitted as an AssetPipeline run (profile ``archive``: ingest, then a real
thumbnail transcode) to real ``workers.ingest`` and ``workers.transcode(_light)`` processes on a dev
server. The ingest worker runs under strace (where installed), and its peak RSS (VmHWM, reset
before each case) is read from /proc. The suite asserts each case's outcome, that failures
happen on the first attempt, that the worker's own memory stays bounded (bombs go off in the
probe children), that no file planted outside the source root was opened, and that the worker
connected to nothing but loopback. It prints the table (file, expected, got, attempts, peak RSS)
and writes it as JSON to ``$DAMFLEET_HOSTILE_TABLE`` when set.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from PIL import Image
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from damfleet.client import FleetClient
from damfleet.errors import DamfleetError
from damfleet.policies import ActivityName, Queue
from damfleet.sources import display_text, file_uri
from damfleet.v1 import common_pb2, pipeline_pb2
from tests.conftest import make_settings
from tests.damfleet.test_ingest_bombs import _with_canvas, ztxt_bomb
from workflows import ALL_WORKFLOWS

pytestmark = pytest.mark.slow


@dataclass
class Case:
    name: str
    uri: str
    expected: str          # "COMPLETED", or a phrase the FAILED run's error must contain


def _jpeg(path: Path, size: tuple[int, int] = (320, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 90, 160)).save(buffer, "JPEG", quality=85)
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def build_corpus(inbox: Path, secret: Path, media: Path) -> list[Case]:
    """Hostile and edge-case files in ``inbox`` (the only source root) and escapes towards ``secret``."""
    cases: list[Case] = []

    def add(name: str, expected: str, uri: str | None = None) -> None:
        cases.append(Case(name, uri or file_uri(os.fsencode(inbox) + b"/" + os.fsencode(name)), expected))

    jpeg = _jpeg(inbox / "control.jpg")
    add("control.jpg", "COMPLETED")
    ztxt_bomb(inbox / "ztxt-bomb-512mib.png", inflated_mib=512)
    add("ztxt-bomb-512mib.png", "memory limit")
    gif = io.BytesIO()
    Image.new("P", (1, 1)).save(gif, "GIF")
    (inbox / "gif-screen-65535.gif").write_bytes(_with_canvas(gif.getvalue(), 65535, 65535))
    add("gif-screen-65535.gif", "GIF logical screen of 65535x65535")
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    (inbox / "png-50000x50000.png").write_bytes(_with_canvas(png.getvalue(), 50000, 50000))
    add("png-50000x50000.png", "PNG canvas of 50000x50000")
    (inbox / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    add("truncated.jpg", "does not decode")
    video = (media / "short.mp4").read_bytes()
    (inbox / "truncated.mp4").write_bytes(video[: len(video) // 2])
    add("truncated.mp4", "MP4")
    (inbox / "playlist.mp4").write_bytes(b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")
    add("playlist.mp4", "playlist")
    (inbox / "ffconcat.mov").write_bytes(b"ffconcat version 1.0\nfile '/etc/passwd'\n")
    add("ffconcat.mov", "text, not media")
    (inbox / "session.avi").write_bytes(b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\nm=video 5004 RTP/AVP 96\r\n")
    add("session.avi", "text, not media")
    (inbox / "xxe.svg").write_bytes(b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                                    b'<svg xmlns="http://www.w3.org/2000/svg"><text>&x;</text></svg>')
    add("xxe.svg", "text, not media")
    (inbox / "polyglot.jpg").write_bytes(jpeg + b"PK\x03\x04" + bytes(64))
    add("polyglot.jpg", "COMPLETED")
    (inbox / "empty.png").write_bytes(b"")
    add("empty.png", "empty")
    for raw in (b"trailing space.jpg ", b"new\nline.jpg", b"latin1-\xe9t\xe9.jpg", b"-leading-dash.jpg"):
        path = os.fsencode(inbox) + b"/" + raw
        Path(os.fsdecode(path)).write_bytes(jpeg)
        cases.append(Case(display_text(raw), file_uri(path), "COMPLETED"))
    os.mkfifo(inbox / "fifo.mp4")
    add("fifo.mp4", "special file")
    _jpeg(secret / "canary.jpg")
    (inbox / "link-out.jpg").symlink_to(secret / "canary.jpg")
    add("link-out.jpg", "outside the source roots")
    (inbox / "loop.jpg").symlink_to(inbox / "loop.jpg")
    add("loop.jpg", "symbolic links")
    add("dotdot", "outside the source roots", inbox.as_uri() + "/../secret/canary.jpg")
    add("%2f-encoded", "outside the source roots", inbox.as_uri() + "/..%2fsecret%2fcanary.jpg")
    add("/etc/passwd", "outside the source roots", "file:///etc/passwd")
    add("NUL byte", "NUL byte", inbox.as_uri() + "/a%00b.jpg")
    add("name too long", "file name too long", inbox.as_uri() + "/" + "x" * 300 + ".jpg")
    return cases


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A worker process writing to ``log`` (the child keeps its own copy of the descriptor)."""
    with open(log, "wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def _state_dir_of(proc: psutil.Process) -> str | None:
    """The DAMFLEET_STATE_DIR a process runs with (None for processes we may not read)."""
    try:
        return proc.environ().get("DAMFLEET_STATE_DIR")
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def _ingest_attempts(client: Client, workflow_id: str) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    scheduled = {e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == ActivityName.INGEST}
    attempts = [e.activity_task_started_event_attributes.attempt for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
                and e.activity_task_started_event_attributes.scheduled_event_id in scheduled]
    return max(attempts, default=0)


async def test_hostile_corpus_through_ingest_and_transcode(temporal_env, tmp_path: Path, media_dir: Path) -> None:
    from temporalio.worker import Worker

    inbox, secret = tmp_path / "inbox", tmp_path / "secret"
    inbox.mkdir()
    secret.mkdir()
    cases = build_corpus(inbox, secret, media_dir)
    lane = f"-{uuid.uuid4().hex[:8]}"
    client: Client = temporal_env.client
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "DAMFLEET_TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "DAMFLEET_STATE_DIR": str(tmp_path / "state"), "DAMFLEET_STORAGE_ROOT": (tmp_path / "storage").as_uri(),
           "DAMFLEET_WORKER_QUEUE_SUFFIX": lane, "DAMFLEET_WORKER_METRICS_PORT": "0",
           "DAMFLEET_INGEST_SOURCE_ROOTS": json.dumps([str(inbox)])}
    trace = tmp_path / "ingest.strace"
    strace = ["strace", "-f", "-qq", "-e", "trace=open,openat,connect", "-o", str(trace)] if shutil.which("strace") else []
    logs = tmp_path / "logs"
    logs.mkdir()
    ingest = _start([*strace, sys.executable, "-m", "workers.ingest"], env, logs / "ingest.log")
    transcode = _start([sys.executable, "-m", "workers.transcode"], env, logs / "transcode.log")
    # Images transcode on their own queue (q-transcode-light), served by its own pool.
    light = _start([sys.executable, "-m", "workers.transcode_light"], env, logs / "transcode_light.log")
    rows: list[dict[str, object]] = []
    try:
        worker_pid = ingest.pid
        if strace:
            # strace forks short-lived helpers (feature probes) that carry strace's own command line,
            # which names workers.ingest too: wait for the child that has exec'd the worker itself.
            worker_cmdline = [sys.executable, "-m", "workers.ingest"]
            for _ in range(300):
                children = [c for c in psutil.Process(ingest.pid).children() if _cmdline(c) == worker_cmdline]
                if children:
                    worker_pid = children[0].pid
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the ingest worker under strace did not start")
        settings = make_settings(tmp_path / "client", DAMFLEET_INGEST_SOURCE_ROOTS="")  # the workers decide
        fleet = FleetClient(client, settings)
        async with Worker(client, task_queue=Queue.PIPELINE + lane, workflows=ALL_WORKFLOWS):
            for case in cases:
                _reset_peak(worker_pid)
                request = pipeline_pb2.PipelineRequest(source_uri=case.uri, profile="archive", dedup=False)
                try:
                    handle = await fleet.submit_request(request, task_queue=Queue.PIPELINE + lane)
                except DamfleetError as exc:
                    # The SDK's own checks (a local file that cannot be opened) may refuse a
                    # case before any run starts: the strongest outcome, with no attempt spent.
                    rows.append({"file": case.name, "expected": case.expected, "got": f"REFUSED AT SUBMIT: {exc}",
                                 "attempts": 0, "peak_rss_mib": round(_peak_rss_mib(worker_pid), 1)})
                    continue
                result = await asyncio.wait_for(handle.wait(), timeout=300)
                got = common_pb2.JobState.Name(result.state)
                rows.append({"file": case.name, "expected": case.expected, "got": got if got == "COMPLETED"
                             else f"{got}: {result.error}", "attempts": await _ingest_attempts(client, handle.workflow_id),
                             "peak_rss_mib": round(_peak_rss_mib(worker_pid), 1)})
    finally:
        # strace detaches and exits on SIGTERM, leaving the worker it traced running: stop the
        # workers themselves (every process of this test's state dir), then strace.
        state_dir = str(tmp_path / "state")
        workers = [p for p in psutil.process_iter() if _state_dir_of(p) == state_dir]
        for proc in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _gone, alive = psutil.wait_procs(workers, timeout=60)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        for popen in (ingest, transcode, light):
            popen.terminate()
            try:
                popen.wait(timeout=60)
            except subprocess.TimeoutExpired:
                popen.kill()
    assert not [p.pid for p in psutil.process_iter() if _state_dir_of(p) == state_dir], "a worker outlived the test"
    width = max(len(str(r["file"])) for r in rows)
    print(f"\n{'file':<{width}}  {'expected':<34} {'attempts':>8} {'peak RSS MiB':>12}  got")
    for r in rows:
        print(f"{r['file']!s:<{width}}  {r['expected']!s:<34} {r['attempts']:>8} {r['peak_rss_mib']:>12}  "
              f"{display_text(str(r['got']), limit=150)}")
    if os.environ.get("DAMFLEET_HOSTILE_TABLE"):
        Path(os.environ["DAMFLEET_HOSTILE_TABLE"]).write_text(json.dumps(rows, indent=1))

    for row in rows:
        if row["expected"] == "COMPLETED":
            assert row["got"] == "COMPLETED", row
        else:
            assert str(row["expected"]) in str(row["got"]), row
            if str(row["got"]).startswith("REFUSED AT SUBMIT"):
                assert row["attempts"] == 0, row
                continue
            assert str(row["got"]).startswith("FAILED"), row
            assert row["attempts"] == 1, f"bad input is refused on the first attempt: {row}"
    baseline = next(r["peak_rss_mib"] for r in rows if r["file"] == "control.jpg")
    for row in rows:
        assert float(row["peak_rss_mib"]) < float(baseline) + 150, f"the worker's own memory grew: {row}"
    if strace:
        log = trace.read_text(errors="replace")
        assert "canary.jpg" not in log, "a file outside the source root was opened"
        outside = [line for line in log.splitlines() if "connect(" in line and "AF_INET" in line
                   and "127.0.0.1" not in line and "::1" not in line]
        assert not outside, outside[:5]
