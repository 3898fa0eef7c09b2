"""damfleet: a Temporal-orchestrated worker fleet for media ingest, transcode, AI enrichment and delivery.

The core package holds what every process shares: settings (:mod:`damfleet.settings`),
the queue/timeout/retry table (:mod:`damfleet.policies`), the contracts generated from
proto/ (:mod:`damfleet.v1`), storage (:mod:`damfleet.storage`), media and model
functions, the client SDK (:mod:`damfleet.client`) and the CLI (:mod:`damfleet.cli`).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
