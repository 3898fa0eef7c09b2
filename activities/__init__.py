"""Temporal activity wrappers, one module per stage (ingest, transcode, enrich, distribute).

Each module exposes ``build_activities(ctx)``, returning the bound activity methods its
worker pool registers. Wrappers heartbeat and translate errors; the work itself lives in
plain functions under :mod:`damfleet` that know nothing of Temporal.
"""
