"""``.partial`` files a killed writer left behind are found: by its retry and by discard."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from damfleet.storage.local import LocalBackend


async def _one(data: bytes):  # type: ignore[no-untyped-def]
    yield data


async def test_a_retried_write_removes_the_dead_writers_partial(tmp_path: Path) -> None:
    backend = LocalBackend()
    target = tmp_path / "assets" / "ab" / "original" / "clip.mov"
    target.parent.mkdir(parents=True)
    dead = target.with_name(".clip.mov.1a2b3c4d.partial")  # its writer was SIGKILLed: no lock
    dead.write_bytes(b"")
    live = target.with_name(".clip.mov.5e6f7a8b.partial")  # another writer, still running
    held = os.open(live, os.O_WRONLY | os.O_CREAT)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        await backend.write(target.as_uri(), _one(b"whole"))
        assert target.read_bytes() == b"whole"
        assert not dead.exists() and live.exists()
    finally:
        os.close(held)


async def test_discard_removes_partials_that_listing_hides(tmp_path: Path) -> None:
    backend = LocalBackend()
    prefix = tmp_path / "assets" / "cd"
    await backend.write((prefix / "technical.json").as_uri(), _one(b"{}"))
    orphan = prefix / "original" / ".clip.mov.0badf00d.partial"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"")
    assert [o.uri async for o in backend.list(prefix.as_uri() + "/")] == [(prefix / "technical.json").as_uri()]
    assert await backend.delete_prefix(prefix.as_uri() + "/") == 2
    assert not prefix.exists()
