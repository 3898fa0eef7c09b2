"""Deterministic orchestration: the per-asset pipeline, batch fan-out, scheduled rescans.

Workflows call activities by name (:class:`damfleet.policies.ActivityName`) with typed
protobuf inputs, so the pipeline worker never imports media or model libraries.
"""

from __future__ import annotations

from workflows.batch import BatchIngest
from workflows.fixity import FixityAudit
from workflows.pipeline import AssetPipeline
from workflows.redeliver import RedeliverAsset
from workflows.rescan import RescanInbox

#: Every workflow the pipeline worker registers.
ALL_WORKFLOWS: list[type] = [AssetPipeline, BatchIngest, RescanInbox, RedeliverAsset, FixityAudit]

__all__ = ["ALL_WORKFLOWS", "AssetPipeline", "BatchIngest", "FixityAudit", "RedeliverAsset", "RescanInbox"]
