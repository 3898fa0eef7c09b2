"""Custom search attributes the pipeline upserts, so the Temporal UI and
``temporal workflow list --query`` can filter runs by state, stage, media kind and more.

The dev launcher registers them on start; on a cluster, register them once with
``temporal operator search-attribute create`` (see the README). Workflow-safe module.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

__all__ = [
    "ALL_KEYS", "BATCH_ID", "COLLECTION", "FIXITY_FAILURES", "LABELS", "MEDIA_KIND", "PROFILE", "STAGE", "STATE",
    "TENANT", "cli_flags",
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
