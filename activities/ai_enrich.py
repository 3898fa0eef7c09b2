"""AI enrichment activities (task queue ``q-ai-enrich``): thin Temporal wrappers over :mod:`damfleet.ai.enrich`.

One :class:`EnrichActivities` per worker process holds the inference backend: local
models (loaded once, on first use, and reused by every later activity) or a channel to
the inference service when ``DAMFLEET_AI_INFERENCE_URL`` is set. An unreachable service
raises ``TransientError``, which leaves here as a retryable ``ApplicationError``: the
activity is retried with the queue's backoff and nothing is marked done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.common import Heartbeater, StageContext, scratch_dir, translate_errors
from damfleet.ai.backend import InferenceBackend
from damfleet.ai.enrich import backend_from_settings, enrich_asset
from damfleet.policies import ActivityName
from damfleet.v1 import stages_pb2

__all__ = ["EnrichActivities", "build_activities"]

log = logging.getLogger(__name__)


class EnrichActivities:
    """Activities of the AI pool; the backend (and so the models) lives as long as the process."""

    def __init__(self, ctx: StageContext, backend: InferenceBackend | None = None) -> None:
        self.ctx = ctx
        self.backend = backend or backend_from_settings(ctx.settings)

    @activity.defn(name=ActivityName.ENRICH)
    @translate_errors
    async def enrich_asset(self, input: stages_pb2.EnrichInput) -> stages_pb2.EnrichOutput:
        """Transcribe and/or detect objects; heartbeats carry the seconds transcribed so far."""
        asset_id = input.asset.asset_id
        async with Heartbeater() as beat, scratch_dir(self.ctx.settings, f"enrich-{asset_id}") as scratch:
            result = await enrich_asset(
                input,
                storage=self.ctx.storage,
                settings=self.ctx.settings,
                backend=self.backend,
                scratch=scratch,
                progress=beat.update,
            )
        log.info("enrichment of %s done: %s", asset_id, dict(result.timings_seconds))
        return result


def build_activities(ctx: StageContext, backend: InferenceBackend | None = None) -> list[Callable[..., Any]]:
    acts = EnrichActivities(ctx, backend)
    return [acts.enrich_asset]
