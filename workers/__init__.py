"""One entry point per deployable worker pool: ``python -m workers.<pool>``.

The pools are :data:`damfleet.stages.POOLS`: the pipeline pool (workflows), then one per
stage of :data:`damfleet.stages.STAGES`.
"""

from damfleet.stages import POOLS as _POOLS

POOLS: tuple[str, ...] = tuple(pool.name for pool in _POOLS)
