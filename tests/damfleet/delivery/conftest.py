"""Fixtures for the delivery tests: a stored rendition and a distributor factory."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Self

import pytest
import pytest_asyncio

from damfleet.delivery import DeliveryItem, Distributor, delivery_item
from damfleet.settings import Settings
from damfleet.storage import Storage
from tests.conftest import make_settings


def make_settings_with_targets(root: Path, targets: dict[str, Any], **env: str) -> Settings:
    """Settings under ``root`` with these delivery targets (and DAMFLEET_* overrides)."""
    return make_settings(root, DAMFLEET_DISTRIBUTION_TARGETS_JSON=json.dumps(targets), **env)


@pytest.fixture
def stored_rendition(tmp_path: Path) -> Callable[..., Awaitable[DeliveryItem]]:
    """Store random bytes as an asset's rendition; returns the DeliveryItem for it."""

    async def make(storage: Storage, *, size: int = 200_000, role: str = "proxy", name: str = "proxy.mp4",
                   asset_id: str = "asset0001", mime: str = "video/mp4", key: str = "") -> DeliveryItem:
        data = os.urandom(size)
        uri = storage.keys(asset_id).rendition(name.rsplit(".", 1)[0], name.rsplit(".", 1)[1])
        await storage.write_bytes(uri, data, content_type=mime)
        return delivery_item(
            asset_id=asset_id, role=role, source_uri=uri, size_bytes=size,
            sha256=hashlib.sha256(data).hexdigest(), mime_type=mime,
            idempotency_key=key or f"{asset_id}:t:{role}:{name}", metadata={"title": "Été à Paris"},
        )

    return make


@pytest_asyncio.fixture
async def distributor_for(tmp_path: Path) -> AsyncIterator[Callable[..., tuple[Distributor, Settings]]]:
    """Build a Distributor for given targets and settings; closed after the test."""
    made: list[Distributor] = []

    def build(targets: dict[str, Any] | None = None, **env: str) -> tuple[Distributor, Settings]:
        settings = make_settings_with_targets(tmp_path, targets or {}, **env)
        distributor = Distributor(settings, Storage.from_settings(settings))
        made.append(distributor)
        return distributor, settings

    yield build
    for distributor in made:
        await distributor.aclose()
        await distributor.storage.aclose()


class FolderWatcher:
    """What a playout system polling a watch folder would see: a thread scanning ``root``
    (recursively) as fast as it can, recording every size the final name ``name`` had.

    ``partial_sightings`` lists sizes seen under the final name that differ from the final
    size (read at exit); an atomic delivery leaves it empty.
    """

    def __init__(self, root: Path, name: str) -> None:
        import threading

        self.root = root
        self.name = name
        self.sizes: list[int] = []
        self.partial_sightings: list[int] = []
        self.full_sightings = 0
        self.scans = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            stopping = self._stop.is_set()   # one more scan after exit is asked for
            self.scans += 1
            for path in self.root.rglob(self.name):
                try:
                    self.sizes.append(path.stat().st_size)
                except FileNotFoundError:
                    pass
            if stopping:
                return
            self._stop.wait(0.002)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        final = [p.stat().st_size for p in self.root.rglob(self.name)]
        expected = final[0] if final else -1
        self.partial_sightings = [size for size in self.sizes if size != expected]
        self.full_sightings = sum(1 for size in self.sizes if size == expected)
