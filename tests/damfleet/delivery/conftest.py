"""Fixtures for the delivery tests: a stored rendition and a distributor factory."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

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
