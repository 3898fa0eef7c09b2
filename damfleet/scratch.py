"""Owned scratch folders: each one is locked by the worker process using it, so scratch a
SIGKILLed worker left behind is recognised and removed at any age, and live scratch never is.

Every activity works in ``<scratch root>/<purpose>-<random>/``. The folder holds a
``.owner`` file with the owner's host and pid, ``flock``-ed by the owner for as long as
the folder is in use. The kernel drops that lock when the process dies, however it dies,
so a sweeper that can take the lock knows the owner is gone. Workers sweep at start and
then periodically (:func:`sweep_orphaned_scratch`). A folder without an ``.owner`` file
(a worker killed between ``mkdir`` and the lock, or an older damfleet) is removed once
it is older than ``unowned_grace_seconds``.

``flock`` is per machine: on a scratch volume shared between hosts over NFS, locks may
not be honoured, so keep scratch node-local (an ``emptyDir``, as the Helm chart does).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["OWNER_FILE", "ScratchLease", "lease_scratch", "sweep_orphaned_scratch"]

log = logging.getLogger(__name__)

OWNER_FILE = ".owner"


@dataclass
class ScratchLease:
    """A scratch folder and the open, locked owner file that claims it."""

    path: Path
    _fd: int

    def release(self) -> None:
        """Remove the folder, then drop the lock (in that order: nobody sweeps it meanwhile)."""
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._fd)


def lease_scratch(root: Path, purpose: str) -> ScratchLease:
    """Create ``<root>/<purpose>-<random>`` owned (locked) by this process."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{purpose}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    fd = os.open(path / OWNER_FILE, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
    return ScratchLease(path, fd)


def _owner_gone(folder: Path) -> bool | None:
    """True: the owner's lock is free (it died). False: held. None: no owner file."""
    try:
        fd = os.open(folder / OWNER_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    finally:
        os.close(fd)
    return True


def sweep_orphaned_scratch(root: Path, *, unowned_grace_seconds: float = 600.0) -> int:
    """Remove scratch folders under ``root`` whose owner is gone; returns how many.

    Safe while other workers share ``root``: a live owner holds its lock, so its folder
    is never touched, whatever its age. Lost races (a folder released meanwhile) are fine.
    """
    if not root.is_dir():
        return 0
    removed = 0
    now = time.time()
    for folder in root.iterdir():
        if not folder.is_dir() or folder.is_symlink():
            continue
        try:
            gone = _owner_gone(folder)
            if gone is None:
                gone = now - folder.stat().st_mtime > unowned_grace_seconds
        except OSError:
            continue
        if gone:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    if removed:
        log.warning("removed %d scratch folders of workers that are gone, under %s", removed, root)
    return removed
