"""The embedded dev server: runs and search attributes survive a restart of `damfleet dev`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from damfleet import search_attributes as sa
from damfleet.errors import ConfigurationError
from damfleet.launcher import DevServer
from damfleet.settings import load_settings
from damfleet.temporal import connect
from tests.conftest import free_port


async def test_runs_and_search_attributes_survive_a_restart(tmp_path: Path) -> None:
    settings = load_settings({
        "DAMFLEET_STATE_DIR": str(tmp_path / "state"),
        "DAMFLEET_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DAMFLEET_TEMPORAL_DEV_UI_PORT": str(free_port()),
    })
    workflow_id = f"survivor-{uuid.uuid4().hex[:8]}"
    server = DevServer(settings)
    server.start()
    try:
        await server.wait_ready()
        client = await connect(settings)
        await client.start_workflow(
            "AssetPipeline", id=workflow_id, task_queue=f"q-nobody-{workflow_id}",
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.STATE, "PENDING"),
                                                     SearchAttributePair(sa.TENANT, "acme")]),
        )
        with pytest.raises(ConfigurationError, match="already listens"):
            DevServer(settings).start()  # a second server on the same port is refused clearly
    finally:
        server.stop()

    restarted = DevServer(settings)
    restarted.start()  # same SQLite file, same search-attribute flags: must come up again
    try:
        await restarted.wait_ready()
        client = await connect(settings)
        description = await client.get_workflow_handle(workflow_id).describe()
        assert description.typed_search_attributes.get(sa.TENANT) == "acme"
        found = [w.id async for w in client.list_workflows('DamfleetTenant = "acme" AND DamfleetState = "PENDING"')]
        assert found == [workflow_id]
    finally:
        restarted.stop()
    assert (tmp_path / "state" / "temporal.db").exists()
