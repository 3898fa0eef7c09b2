"""Custom search attributes the pipeline upserts, so the Temporal UI and
``temporal workflow list --query`` can filter runs by state, stage, media kind and more.

The dev launcher registers them on start; on a cluster, register them once with
``temporal operator search-attribute create`` (see the README). Workflow-safe module.
"""

from __future__ import annotations

from typing import Any

from temporalio.common import SearchAttributeKey

__all__ = [
    "ALL_KEYS", "BATCH_ID", "COLLECTION", "FIXITY_FAILURES", "LABELS", "MEDIA_KIND", "PROFILE", "STAGE", "STATE",
    "TENANT", "cli_flags", "ensure_registered",
]

STATE = SearchAttributeKey.for_keyword("DamfleetState")
STAGE = SearchAttributeKey.for_keyword("DamfleetStage")
MEDIA_KIND = SearchAttributeKey.for_keyword("DamfleetMediaKind")
PROFILE = SearchAttributeKey.for_keyword("DamfleetProfile")
COLLECTION = SearchAttributeKey.for_keyword("DamfleetCollection")
TENANT = SearchAttributeKey.for_keyword("DamfleetTenant")
LABELS = SearchAttributeKey.for_keyword_list("DamfleetLabels")
BATCH_ID = SearchAttributeKey.for_keyword("DamfleetBatchId")
#: Damaged originals a FixityAudit found (mismatch + missing + unreadable): alert on `> 0`.
FIXITY_FAILURES = SearchAttributeKey.for_int("DamfleetFixityFailures")

ALL_KEYS = (STATE, STAGE, MEDIA_KIND, PROFILE, COLLECTION, TENANT, LABELS, BATCH_ID, FIXITY_FAILURES)


def cli_flags() -> list[str]:
    """``--search-attribute Name=Type`` flags for ``temporal server start-dev``."""
    type_names = {"KEYWORD": "Keyword", "KEYWORD_LIST": "KeywordList", "TEXT": "Text", "INT": "Int"}
    flags: list[str] = []
    for key in ALL_KEYS:
        flags += ["--search-attribute", f"{key.name}={type_names[key.indexed_value_type.name]}"]
    return flags


async def ensure_registered(client: Any, namespace: str) -> list[str]:
    """Register any of :data:`ALL_KEYS` the server lacks; returns the names added.

    ``temporal server start-dev --search-attribute`` registers attributes only when it
    creates its database: a dev database made by an older damfleet would lack attributes
    added since (``DamfleetFixityFailures``), and a workflow upserting one would fail.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest

    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in ALL_KEYS
        if key.name not in listed.custom_attributes
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)
