"""One entry point per deployable worker pool: ``python -m workers.<pool>``.

Pools: pipeline (workflows), ingest, transcode, ai_enrich, distribution.
"""

POOLS: tuple[str, ...] = ("pipeline", "ingest", "transcode", "ai_enrich", "distribution")
