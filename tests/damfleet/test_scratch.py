"""Owned scratch: a dead worker's folder is swept at any age, a live worker's never is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from damfleet.scratch import OWNER_FILE, lease_scratch, sweep_orphaned_scratch


def test_live_scratch_is_kept_whatever_its_age(tmp_path: Path) -> None:
    lease = lease_scratch(tmp_path, "transcode-a")
    (lease.path / "proxy.mp4").write_bytes(b"half an encode")
    old = time.time() - 10 * 86400
    os.utime(lease.path, (old, old))
    assert sweep_orphaned_scratch(tmp_path, unowned_grace_seconds=0) == 0
    assert (lease.path / "proxy.mp4").exists()
    lease.release()
    assert not lease.path.exists()


def test_scratch_of_a_sigkilled_worker_is_swept_at_once(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from damfleet.scratch import lease_scratch
        lease = lease_scratch(Path({str(tmp_path)!r}), "ingest-b")
        (lease.path / "original").write_bytes(b"x" * 1000)
        print(lease.path, flush=True)
        time.sleep(600)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert worker.stdout is not None
    folder = Path(worker.stdout.readline().strip())
    assert (folder / OWNER_FILE).read_text().split()[1] == str(worker.pid)
    assert sweep_orphaned_scratch(tmp_path) == 0, "the owner is alive"
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert folder.exists(), "a SIGKILLed worker runs no cleanup"
    assert sweep_orphaned_scratch(tmp_path) == 1
    assert not folder.exists()


def test_unowned_folders_wait_out_the_grace(tmp_path: Path) -> None:
    recent = tmp_path / "transcode-new"
    recent.mkdir()
    stale = tmp_path / "transcode-old"
    stale.mkdir()
    old = time.time() - 5 * 3600
    os.utime(stale, (old, old))
    assert sweep_orphaned_scratch(tmp_path, unowned_grace_seconds=4 * 3600) == 1
    assert recent.exists() and not stale.exists()
