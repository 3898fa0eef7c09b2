"""Temporal activity wrappers, one module per stage named after it (``activities/<stage>.py``:
ingest, transcode, ai_enrich, distribution; see :data:`damfleet.stages.STAGES`), plus the
bookkeeping the ingest pool also serves (catalog, fixity).

Each module exposes ``build_activities(ctx)``, returning the bound activity methods its
worker pool registers. Wrappers heartbeat and translate errors; the work itself lives in
plain functions under :mod:`damfleet` that know nothing of Temporal.
"""
