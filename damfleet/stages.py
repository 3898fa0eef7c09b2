"""The stage table: every stage of the asset pipeline and the worker pool that runs it.

One row per stage names it once for every layer: its task queue, the activities it
serves, the pool's entry point (``python -m workers.<name>``), the pyproject extra and
image its pool installs, the media kinds it works for, whether the pipeline may skip it,
and its short column header. Workers, the launcher, the CLI, the demo, progress and
retry reporting, the workflow's stage list and the benchmark walk this table instead of
repeating names; the Helm chart and kustomize overlays, which cannot import Python, are
held to it by ``tests/damfleet/test_stages.py``. Timeouts and retry policies per activity
live next door in :mod:`damfleet.policies`, which derives its queue list and default
concurrency from here.

Pure data with no third-party imports: the CLI reads it without loading the Temporal SDK,
and the workflow sandbox imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from damfleet.policies import ActivityPolicy

__all__ = [
    "ALL_QUEUES",
    "PIPELINE_POOL",
    "POOLS",
    "STAGES",
    "STAGE_NAMES",
    "STAGE_OF_ACTIVITY",
    "ActivityName",
    "Pool",
    "Queue",
    "Stage",
    "StageName",
    "stage_named",
]


class Queue:
    """Task queue names: one per deployable worker pool."""

    PIPELINE = "q-pipeline"          # workflows only
    INGEST = "q-ingest"
    TRANSCODE = "q-transcode"
    TRANSCODE_LIGHT = "q-transcode-light"   # image transcodes: seconds each, never behind a video encode
    AI_ENRICH = "q-ai-enrich"
    DISTRIBUTION = "q-distribution"


class StageName:
    """Stage names: keys of ``PipelineResult.stages`` (public: JSON output, ``status``), pool
    names and module names (``workers/<name>.py``, ``activities/<name>.py``)."""

    INGEST = "ingest"
    TRANSCODE = "transcode"
    AI_ENRICH = "ai_enrich"
    DISTRIBUTION = "distribution"


class ActivityName:
    """Activity type names: the contract a worker in another language implements."""

    INGEST = "ingest_asset"
    DISCARD_ASSET = "discard_asset"          # remove an asset's outputs (cancel)
    DISCARD_FAILED_ASSET = "discard_failed_asset"  # a failed run's: remove, or quarantine the original
    TRANSCODE = "transcode_asset"
    ENRICH = "enrich_asset"
    DELIVER = "deliver_output"
    DELIVER_BATCH = "deliver_outputs"        # every output of one asset for one target, one task hop
    NOTIFY = "notify_webhook"
    LOAD_FAILED_DELIVERIES = "load_failed_deliveries"   # a finished run's failed receipts, for redelivery
    READ_MANIFEST = "read_manifest"
    LIST_NEW_SOURCES = "list_new_sources"
    READ_MANIFEST_PAGE = "read_manifest_page"  # one page of a prepared batch
    CLAIM_CONTENT = "claim_content"            # dedup: first asset with this content in a collection
    RELEASE_CONTENT = "release_content"        # dedup: a failed or cancelled run gives its claim up
    PLAN_FIXITY_AUDIT = "plan_fixity_audit"    # list stored assets into pages, one sampling bucket
    VERIFY_FIXITY_PAGE = "verify_fixity_page"  # re-hash one page of originals; repair or quarantine
    WRITE_FIXITY_REPORT = "write_fixity_report"  # merge page findings into report.json, advance the cycle


@dataclass(frozen=True)
class Pool:
    """A deployable worker pool: one process kind, one task queue, one image.

    ``python -m workers.<name>`` is its entry point (the Dockerfile's ``CMD``, the Helm
    value ``pools.<name>.command``, the kustomize overlay ``k8s/base/pools/<name with ->``);
    ``extra`` is the pyproject extra (and ``requirements/<extra>.lock``) its image installs,
    ``image`` the Dockerfile target; ``concurrency`` the default number of tasks in flight
    per process (``DAMFLEET_WORKER_MAX_CONCURRENT`` overrides it).
    """

    name: str
    queue: str
    image: str
    extra: str
    concurrency: int
    #: For a stage's light pool (:attr:`Stage.light_pool`): the media kinds routed to it.
    media_kinds: frozenset[str] = frozenset()

    @property
    def entry_point(self) -> str:
        """The module a pool's process runs: ``python -m <entry_point>``."""
        return f"workers.{self.name}"


@dataclass(frozen=True)
class Stage:
    """One step of an asset's pipeline, and the pool that runs it.

    ``name`` is the one name of the stage in every layer: the key of
    ``PipelineResult.stages`` (a public contract: JSON output, ``status``), the pool name,
    the worker module ``workers/<name>.py`` and the activity module
    ``activities/<name>.py``. ``activities`` are the activity types whose attempts count
    toward the stage (``damfleet status`` shows them); ``progress_activity`` is the one whose
    heartbeats report the stage's percent, if any. ``media_kinds`` are the kinds of asset it
    does work for; ``skippable`` says the pipeline may skip it with a reason (a profile, a
    request or the media leaves nothing to do) and go on, where a required stage's failure
    fails the run. ``delivers`` says its outputs go to delivery targets by default.

    ``light_pool``, if any, serves the same activities for the short jobs of some media
    kinds (its ``media_kinds``) on a queue of its own, so they never wait behind the long
    ones: a 12 MP JPEG's renditions take a second or two, a video encode minutes, and the
    main transcode pool has one slot per pod (an encode uses the pod's CPU budget). Its
    own queue gives it its own backlog, so KEDA scales it on its own; the workflow picks
    the queue from the media kind found at ingest (:meth:`queue_for`).
    """

    name: str
    pool: Pool
    activities: tuple[str, ...]
    progress_activity: str | None
    media_kinds: frozenset[str]
    skippable: bool
    delivers: bool
    header: str
    light_pool: Pool | None = None

    @property
    def queue(self) -> str:
        return self.pool.queue

    @property
    def pools(self) -> tuple[Pool, ...]:
        """The stage's pools: its own, then its light pool if it has one."""
        return (self.pool,) if self.light_pool is None else (self.pool, self.light_pool)

    def queue_for(self, media_kind: str, *, light: bool = True) -> str:
        """The queue a job for ``media_kind`` goes to: the light pool's for its kinds (unless
        ``light`` is off, ``DAMFLEET_TRANSCODE_LIGHT_QUEUE``), else the stage's own."""
        if light and self.light_pool is not None and media_kind in self.light_pool.media_kinds:
            return self.light_pool.queue
        return self.pool.queue

    @property
    def policy(self) -> ActivityPolicy:
        """The timeouts and retries of the stage's main activity (its first), from
        :mod:`damfleet.policies` (imported here, not at the top: the CLI reads this table
        without loading the Temporal SDK)."""
        from damfleet.policies import policy_for

        return policy_for(self.activities[0])


_ALL_KINDS = frozenset({"image", "video", "audio"})

#: The pipeline pool: workflows only, no stage of its own. Workflow tasks are cheap.
PIPELINE_POOL = Pool("pipeline", Queue.PIPELINE, image="pipeline", extra="", concurrency=200)

#: The pipeline's stages, in order. Adding a stage starts here (docs/architecture.md).
STAGES: tuple[Stage, ...] = (
    Stage(
        name=StageName.INGEST,
        pool=Pool(StageName.INGEST, Queue.INGEST, image="ingest", extra="ingest", concurrency=32),  # I/O bound
        activities=(ActivityName.INGEST, ActivityName.CLAIM_CONTENT),
        progress_activity=ActivityName.INGEST,
        media_kinds=_ALL_KINDS,
        skippable=False,
        delivers=False,
        header="ingest",
    ),
    Stage(
        name=StageName.TRANSCODE,
        pool=Pool(StageName.TRANSCODE, Queue.TRANSCODE, image="transcode", extra="transcode",
                  concurrency=1),  # one ffmpeg per pod; scale pods, not threads
        activities=(ActivityName.TRANSCODE,),
        progress_activity=ActivityName.TRANSCODE,
        media_kinds=_ALL_KINDS,
        skippable=False,
        delivers=True,
        header="transcode",
        # Images beside video encodes: several slots, libvips limited to one thread each
        # (DAMFLEET_TRANSCODE_LIGHT_CONCURRENCY, _LIGHT_VIPS_THREADS), so the pool's CPU use is
        # its slots; same image and activities as the transcode pool.
        light_pool=Pool("transcode_light", Queue.TRANSCODE_LIGHT, image="transcode", extra="transcode",
                        concurrency=2, media_kinds=frozenset({"image"})),
    ),
    Stage(
        name=StageName.AI_ENRICH,
        pool=Pool(StageName.AI_ENRICH, Queue.AI_ENRICH, image="ai", extra="ai",
                  concurrency=1),  # one model run per GPU (or CPU)
        activities=(ActivityName.ENRICH,),
        progress_activity=ActivityName.ENRICH,
        media_kinds=_ALL_KINDS,  # transcripts for audio and video, labels for images and video
        skippable=True,
        delivers=True,
        header="ai",  # short: the full name costs an 80-column table a column
    ),
    Stage(
        name=StageName.DISTRIBUTION,
        pool=Pool(StageName.DISTRIBUTION, Queue.DISTRIBUTION, image="distribution", extra="distribution",
                  concurrency=128),  # async network I/O
        activities=(ActivityName.DELIVER_BATCH, ActivityName.DELIVER, ActivityName.NOTIFY),
        progress_activity=None,
        media_kinds=_ALL_KINDS,
        skippable=True,
        delivers=False,
        header="deliver",
    ),
)

#: Stage names in pipeline order (the keys of ``PipelineResult.stages``).
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)

#: Every worker pool, in start order: the pipeline pool, then each stage's (its light pool after it).
POOLS: tuple[Pool, ...] = (PIPELINE_POOL, *(pool for stage in STAGES for pool in stage.pools))

#: Every task queue a fleet polls (without a lane suffix), one per pool.
ALL_QUEUES: tuple[str, ...] = tuple(pool.queue for pool in POOLS)

#: The stage each stage activity type belongs to (its attempts count toward that stage).
STAGE_OF_ACTIVITY: dict[str, str] = {name: stage.name for stage in STAGES for name in stage.activities}


def stage_named(name: str) -> Stage:
    """The stage called ``name``; raises KeyError naming the known stages otherwise."""
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise KeyError(f"unknown stage {name!r}; known: {', '.join(STAGE_NAMES)}")
