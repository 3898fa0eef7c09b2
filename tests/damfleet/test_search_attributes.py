"""Search attributes: a dev database made by an older damfleet gets the attributes added since."""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from damfleet import search_attributes as sa
from damfleet.binaries import temporal_cli


async def test_missing_attributes_are_registered_once() -> None:
    # `start-dev --search-attribute` registers only when it creates the database: this server
    # stands for one created before DamfleetFixityFailures and the others existed.
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_cli(),
                                                search_attributes=[sa.STATE])
    try:
        client = env.client
        added = await sa.ensure_registered(client, client.namespace)
        assert added == sorted(k.name for k in sa.ALL_KEYS if k is not sa.STATE)
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace))
        assert listed.custom_attributes[sa.FIXITY_FAILURES.name] == sa.FIXITY_FAILURES.indexed_value_type.value
        assert await sa.ensure_registered(client, client.namespace) == []
    finally:
        await env.shutdown()
