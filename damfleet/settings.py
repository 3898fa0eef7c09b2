"""Process settings, read once from the environment with one prefix: ``DAMFLEET_``.

Every deployable (the five workers, the inference service, the CLI) reads the same
variables, so a Helm values file or a ``.env`` configures the whole fleet in one place.
Settings are grouped per concern; a group's variables share a second prefix, for
example ``DAMFLEET_TEMPORAL_ADDRESS`` or ``DAMFLEET_TRANSCODE_FFMPEG_THREADS``.

Secrets (TLS keys, API keys, S3 credentials, delivery target credentials) live only
here, never in workflow inputs, so they never reach Temporal's history.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

__all__ = [
    "PREFIX",
    "AISettings",
    "DistributionSettings",
    "FixitySettings",
    "IngestSettings",
    "JobsSettings",
    "Settings",
    "SettingsError",
    "StorageSettings",
    "TemporalSettings",
    "TranscodeSettings",
    "WorkerSettings",
    "get_settings",
    "reset_settings",
]

PREFIX = "DAMFLEET_"


class SettingsError(ValueError):
    """A setting is present but cannot be used; the message names the variable."""


@dataclass(frozen=True)
class TemporalSettings:
    """How to reach the Temporal frontend (dev server, self-hosted cluster or Temporal Cloud)."""

    address: str = "localhost:7233"
    namespace: str = "default"
    tls: bool = False
    tls_cert_path: str = ""
    tls_key_path: str = ""
    tls_ca_path: str = ""
    tls_server_name: str = ""
    api_key: str = ""
    dev_ui_port: int = 8233              # web UI port of the embedded dev server (damfleet dev/demo)
    codec_keys: str = ""                 # "id=<base64 32 bytes>,...": encrypt payloads (damfleet.codec); first encrypts
    codec_server_token: str = ""         # bearer token `damfleet codec-server` requires
    codec_server_listen: str = "127.0.0.1:8081"
    codec_server_allow_origin: str = "http://localhost:8233"   # the Temporal UI's origin (CORS)
    connect_timeout_seconds: float = 30.0   # keep retrying an unreachable frontend this long (restarts)


@dataclass(frozen=True)
class StorageSettings:
    """Where assets live. ``root`` is a ``file://`` folder or an ``s3://bucket/prefix``."""

    root: str = ""
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = ""
    s3_addressing_style: str = "path"
    multipart_threshold_bytes: int = 16 * 1024 * 1024
    multipart_chunk_bytes: int = 8 * 1024 * 1024
    max_pool_connections: int = 64
    s3_instance_metadata: bool = False   # ask the EC2 instance-metadata service for credentials (damfleet.egress)
    multipart_max_age_hours: float = 24.0   # workers abort damfleet's multipart uploads older than this


@dataclass(frozen=True)
class WorkerSettings:
    """Per-process worker knobs; the policy table gives defaults per queue."""

    concurrency: int = 0                 # 0: the queue's default from damfleet.policies
    metrics_port: int = 9464             # 0 disables /metrics
    metrics_host: str = "0.0.0.0"
    graceful_shutdown_seconds: float = 30.0
    scratch_dir: str = ""                # local scratch for tool runs; defaults under the state dir
    identity: str = ""
    queue_suffix: str = ""               # lane suffix appended to every queue name (see policies.lane_of)
    heartbeat_throttle_seconds: float = 2.0   # max delay before a heartbeat reaches the server (cancel latency)
    scratch_sweep_seconds: float = 300.0      # how often scratch of dead workers is removed (0: only at start)
    #: "passthrough": workflow modules are imported once, not per run, and run on real modules
    #: (about 8 ms less per workflow task; bench/pipeline.py). "strict": the full sandbox
    #: re-imports them per run and guards every call. Tests run strict either way.
    workflow_sandbox: str = "passthrough"


@dataclass(frozen=True)
class IngestSettings:
    """Ingest limits: what sources may be read and how large they may be.

    Sources must lie under ``source_roots`` (file:// folders, s3://bucket[/prefix]); none
    configured refuses every source (see :mod:`damfleet.sources`).
    """

    source_roots: tuple[str, ...] = ()              # empty: every source is refused
    allowed_source_prefixes: tuple[str, ...] = ()   # older name of source_roots, used when that is unset
    follow_symlinks: bool = True                    # false: a link anywhere in a source path is refused
    max_source_bytes: int = 0                       # 0: unlimited
    max_image_pixels: int = 268_402_689             # 16383 x 16383, libvips' JPEG limit
    tool_timeout_seconds: float = 120.0
    tool_memory_bytes: int = 2 * 1024**3            # address-space limit of each probe child; 0: none


@dataclass(frozen=True)
class TranscodeSettings:
    """Transcode resources and safety limits."""

    ffmpeg_threads: int = 0                  # 0: let ffmpeg choose
    stall_seconds: float = 120.0             # no ffmpeg progress for this long: kill and retry
    hwaccel: str = "none"                    # none | nvenc | vaapi | qsv
    vaapi_device: str = "/dev/dri/renderD128"
    max_image_pixels: int = 268_402_689
    tool_timeout_seconds: float = 6 * 3600.0
    tool_memory_bytes: int = 0               # 0: no address-space limit on tool runs
    min_free_scratch_bytes: int = 512 * 1024 * 1024
    scratch_size_factor: float = 3.0         # free scratch needed = factor x source size
    x264_preset: str = "veryfast"            # libx264 speed/size trade-off for software encodes


@dataclass(frozen=True)
class AISettings:
    """Model selection for the AI enrichment stage."""

    whisper_model: str = ""                  # path or name; "" = bundled tiny.en
    whisper_device: str = "auto"             # auto | cpu | cuda
    # float32 + beam 5: chosen from bench/ai.py's WER table (README, AI section): the lowest WER in
    # the worst case over instruction sets, and the same transcript under every one of them.
    whisper_compute_type: str = "float32"    # int8 | float16 | int8_float16 | float32
    whisper_beam_size: int = 5
    whisper_cpu_threads: int = 0
    whisper_chunk_seconds: float = 600.0
    yolo_weights: str = ""                   # .pt or .onnx path; "" disables detection
    yolo_confidence: float = 0.25
    yolo_iou: float = 0.45
    yolo_image_size: int = 640
    yolo_device: str = ""                    # "" auto, "cpu", "0"
    yolo_max_frames: int = 32
    yolo_frame_interval_seconds: float = 2.0
    inference_url: str = ""                  # host:port of `damfleet inference serve`; "" = local models
    inference_timeout_seconds: float = 600.0
    inference_listen: str = "0.0.0.0:50051"
    inference_connect_seconds: float = 10.0  # wait this long for the service before failing retryably
    inference_max_workers: int = 4           # concurrent model calls; more get RESOURCE_EXHAUSTED (callers retry); health checks never count
    inference_shared_dir: str = ""           # MediaRef.path must lie under it; "" refuses path references
    inference_metrics_port: int = 9465       # /metrics of `damfleet inference serve`; 0 disables
    # Securing the inference service (damfleet.ai.security): TLS, optional client certificates, a token.
    inference_tls_cert_path: str = ""        # server: its certificate (PEM); with _key_path turns TLS on
    inference_tls_key_path: str = ""
    inference_tls_client_ca_path: str = ""   # server: require client certificates signed by this CA
    inference_tls: bool = False              # client: TLS with the system's roots
    inference_tls_ca_path: str = ""          # client: trust this CA for the service (turns TLS on)
    inference_tls_client_cert_path: str = "" # client: certificate to present (mutual TLS)
    inference_tls_client_key_path: str = ""
    inference_tls_server_name: str = ""      # client: expected name in the service's certificate
    inference_token: str = ""                # both: bearer token required on / sent with every call
    whisper_language: str = ""               # "" = detect (English-only models always answer "en")
    whisper_vad: bool = True                 # Silero VAD (bundled with faster-whisper) skips silence
    whisper_word_timestamps: bool = True
    whisper_redecode_gap_seconds: float = 2.0  # speech without text this long is decoded again; 0 = off
    whisper_max_new_tokens: int = 0          # first-pass cap on tokens per 30 s window; 0 = model limit
    whisper_min_coverage: float = 0.6        # share of VAD speech the words must cover, else the stage fails
    whisper_min_speech_seconds: float = 3.0  # below this much speech the coverage is not judged
    yolo_sampling: str = "interval"          # interval | scene (video frame sampling)
    yolo_scene_threshold: float = 0.3        # ffmpeg scene score for "scene" sampling
    yolo_agnostic_nms: bool = True           # one box per object across classes (no duplicate tags)
    yolo_max_frame_side: int = 1920          # video frames / images are scaled down to this before detection
    max_image_pixels: int = 268_402_689      # larger images are refused (decompression bombs)
    tool_timeout_seconds: float = 3600.0     # ffmpeg decode runs (PCM stream, frame sampling)
    transcript_excerpt_chars: int = 300


@dataclass(frozen=True)
class DistributionSettings:
    """Delivery targets and outbound safety.

    Targets (with their credentials) are defined here, never in requests: a profile or a
    request names a target, the distribution worker looks up how to reach it. A built-in
    ``local`` target (``<state_dir>/delivered/<asset_id>/``) needs no configuration.
    """

    targets_file: str = ""                   # JSON file: {"name": {"type": "s3", ...}, ...}
    targets_json: str = ""                   # the same, inline; wins over the file per name
    allow_private_networks: tuple[str, ...] = ()   # CIDRs or host names exempt from SSRF refusal
    verify_tls: bool = True
    per_target_concurrency: int = 16         # uploads in flight per target name (a target may override)
    per_target_wait_seconds: float = 30.0    # waiting longer for a slot hands the task back to the queue
    http_timeout_seconds: float = 60.0       # connect/read/write timeout of one HTTP exchange
    webhook_secret: str = ""                 # default HMAC secret for webhook targets without their own
    stream_chunk_bytes: int = 256 * 1024     # read size when streaming a rendition to a target
    #: Re-hash every rendition while streaming it and refuse bytes that differ from the checksum the
    #: pipeline recorded (catches storage corruption before a partner gets it). Costs one sha256 pass,
    #: about 25% more CPU at loopback speeds; turn off where storage integrity is checked elsewhere.
    verify_source: bool = True
    max_redirects: int = 5
    max_retry_after_seconds: float = 6 * 3600.0   # a Retry-After longer than this is capped


@dataclass(frozen=True)
class JobsSettings:
    """Job control defaults: dedup, batch window and priority, manifests (``DAMFLEET_JOBS_*``)."""

    dedup: bool = True                       # link content already ingested in the same collection
    batch_priority: int = 4                  # Temporal task priority of batches (1 highest .. 5); uploads use 3
    batch_max_in_flight: int = 50            # child pipelines a batch runs at once (sliding window)
    batch_continue_as_new_after: int = 500   # children started per run before continue-as-new
    manifest_page_size: int = 500            # rows per stored manifest page (one activity result)
    manifest_max_rows: int = 1_000_000       # larger manifests are refused
    bad_rows_kept: int = 1000                # bad rows listed in the batch progress (all are counted)
    quarantine_failed: bool = False          # keep a failed run's original under <root>/quarantine/


@dataclass(frozen=True)
class FixitySettings:
    """Fixity audits (``DAMFLEET_FIXITY_*``): read budget, paging, repair sources, renditions."""

    bytes_per_second: int = 100 * 1024 * 1024   # read budget per worker process; 0 = unthrottled
    page_size: int = 500                      # assets per stored page (one verifying activity)
    max_in_flight: int = 4                    # page activities an audit runs at once
    continue_as_new_after: int = 100          # pages per workflow run before continue-as-new
    replica_roots: tuple[str, ...] = ()       # second storage roots holding the same keys (repair sources)
    repair_targets: tuple[str, ...] = ()      # delivery targets searched for copies; empty = every s3/local one
    include_renditions: bool = False          # also re-hash renditions with a recorded sha256 (S3 metadata)


@dataclass(frozen=True)
class Settings:
    """All settings of one process. Build with :func:`get_settings`."""

    state_dir: str = ".damfleet"
    log_level: str = "INFO"
    log_format: str = "text"                 # "json": one JSON object per line, ids as fields (damfleet.logging_setup)
    log_file: str = ""                       # also write to this file, rotated (damfleet dev sets it per pool)
    log_file_max_bytes: int = 20 * 1024 * 1024
    log_file_backups: int = 5
    tracing: str = "off"                     # "otlp": OpenTelemetry spans over OTLP/HTTP (damfleet.tracing; OTEL_* vars)
    temporal: TemporalSettings = field(default_factory=TemporalSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    transcode: TranscodeSettings = field(default_factory=TranscodeSettings)
    ai: AISettings = field(default_factory=AISettings)
    distribution: DistributionSettings = field(default_factory=DistributionSettings)
    jobs: JobsSettings = field(default_factory=JobsSettings)
    fixity: FixitySettings = field(default_factory=FixitySettings)

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir).expanduser().resolve()

    @property
    def storage_root(self) -> str:
        """The storage root URI; defaults to a folder under the state dir."""
        if self.storage.root:
            return self.storage.root
        return (self.state_path / "storage").as_uri()

    @property
    def scratch_path(self) -> Path:
        if self.worker.scratch_dir:
            return Path(self.worker.scratch_dir).expanduser().resolve()
        return self.state_path / "scratch"

    def redacted(self) -> dict[str, Any]:
        """A loggable view with every secret replaced by ``***``."""
        secret_words = ("secret", "key", "password", "token")
        out = dataclasses.asdict(self)

        def scrub(node: Any) -> Any:
            if isinstance(node, dict):
                return {
                    k: ("***" if v and any(w in k for w in secret_words) and "path" not in k else scrub(v))
                    for k, v in node.items()
                }
            return node

        return scrub(out)


T = TypeVar("T")

_GROUPS: dict[str, str] = {
    "temporal": "TEMPORAL_",
    "storage": "STORAGE_",
    "worker": "WORKER_",
    "ingest": "INGEST_",
    "transcode": "TRANSCODE_",
    "ai": "AI_",
    "distribution": "DISTRIBUTION_",
    "jobs": "JOBS_",
    "fixity": "FIXITY_",
}


def _coerce(raw: str, annotation: Any, variable: str) -> Any:
    text = raw.strip()
    try:
        if annotation is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"expected true/false, got {raw!r}")
        if annotation is int:
            return int(text)
        if annotation is float:
            return float(text)
        if annotation == tuple[str, ...]:
            if text.startswith("["):
                return tuple(str(item) for item in json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return raw
    except (ValueError, json.JSONDecodeError) as exc:
        raise SettingsError(f"{variable}: {exc}") from exc


def _load_group(cls: type[T], env: Mapping[str, str], prefix: str) -> T:
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        variable = f"{prefix}{f.name.upper()}"
        if variable in env:
            values[f.name] = _coerce(env[variable], hints[f.name], variable)
    return cls(**values)


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: ``os.environ``).

    Storage credentials fall back to the standard ``AWS_*`` variables so existing
    deployments and IAM tooling keep working.
    """
    env = dict(os.environ if env is None else env)
    for ours, aws in (
        ("STORAGE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("STORAGE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ("STORAGE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
    ):
        if PREFIX + ours not in env and aws in env:
            env[PREFIX + ours] = env[aws]
    groups = {
        name: _load_group(_group_type(name), env, PREFIX + group_prefix) for name, group_prefix in _GROUPS.items()
    }
    top = _load_group(_TopLevel, env, PREFIX)
    settings = Settings(**dataclasses.asdict(top), **groups)
    _validate(settings)
    return settings


@dataclass(frozen=True)
class _TopLevel:
    state_dir: str = ".damfleet"
    log_level: str = "INFO"
    log_format: str = "text"
    log_file: str = ""
    log_file_max_bytes: int = 20 * 1024 * 1024
    log_file_backups: int = 5
    tracing: str = "off"


def _group_type(name: str) -> type:
    return get_type_hints(Settings)[name]


def _validate(settings: Settings) -> None:
    root = settings.storage_root
    if not (root.startswith("file://") or root.startswith("s3://")):
        raise SettingsError(f"DAMFLEET_STORAGE_ROOT must be a file:// or s3:// URI, got {root!r}")
    if settings.log_format not in ("text", "json"):
        raise SettingsError(f"DAMFLEET_LOG_FORMAT must be text or json, got {settings.log_format!r}")
    if settings.tracing not in ("off", "otlp"):
        raise SettingsError(f"DAMFLEET_TRACING must be off or otlp, got {settings.tracing!r}")
    if settings.transcode.hwaccel not in ("none", "nvenc", "vaapi", "qsv"):
        raise SettingsError(
            f"DAMFLEET_TRANSCODE_HWACCEL must be none, nvenc, vaapi or qsv, got {settings.transcode.hwaccel!r}"
        )
    if settings.worker.workflow_sandbox not in ("passthrough", "strict"):
        raise SettingsError(
            f"DAMFLEET_WORKER_WORKFLOW_SANDBOX must be passthrough or strict, got {settings.worker.workflow_sandbox!r}"
        )
    if settings.ai.whisper_device not in ("auto", "cpu", "cuda"):
        raise SettingsError(
            f"DAMFLEET_AI_WHISPER_DEVICE must be auto, cpu or cuda, got {settings.ai.whisper_device!r}"
        )
    if settings.ai.yolo_sampling not in ("interval", "scene"):
        raise SettingsError(
            f"DAMFLEET_AI_YOLO_SAMPLING must be interval or scene, got {settings.ai.yolo_sampling!r}"
        )
    if not 0.0 <= settings.ai.whisper_min_coverage <= 1.0:
        raise SettingsError(
            f"DAMFLEET_AI_WHISPER_MIN_COVERAGE must be between 0 and 1, got {settings.ai.whisper_min_coverage!r}"
        )
    ai = settings.ai
    if bool(ai.inference_tls_cert_path) != bool(ai.inference_tls_key_path):
        raise SettingsError("DAMFLEET_AI_INFERENCE_TLS_CERT_PATH and DAMFLEET_AI_INFERENCE_TLS_KEY_PATH go together")
    if bool(ai.inference_tls_client_cert_path) != bool(ai.inference_tls_client_key_path):
        raise SettingsError(
            "DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH and DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH go together"
        )
    if bool(settings.temporal.tls_cert_path) != bool(settings.temporal.tls_key_path):
        raise SettingsError("DAMFLEET_TEMPORAL_TLS_CERT_PATH and DAMFLEET_TEMPORAL_TLS_KEY_PATH go together")


_cached: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _cached
    if _cached is None:
        _cached = load_settings()
    return _cached


def reset_settings() -> None:
    """Forget the cached settings (tests and the dev launcher change the environment)."""
    global _cached
    _cached = None
