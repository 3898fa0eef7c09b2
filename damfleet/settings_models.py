"""The settings models: pydantic groups under one pydantic-settings ``BaseSettings``.

Import them from :mod:`damfleet.settings`, which loads this module on first use (pydantic
and pydantic-settings cost about a tenth of a second to import; ``damfleet --help`` and
other commands that never read a setting do not pay it).

The groups are pydantic models and :class:`Settings` a pydantic-settings ``BaseSettings``
(``env_prefix="DAMFLEET_"``, nested on the first ``_``): a field's name *is* its variable's
name, its annotation is the check (``Literal`` for choices, bounds as ``Field(ge=, le=)``),
and :func:`load` turns any validation error into one line naming the variable.

Secrets (TLS keys, API keys, S3 credentials, delivery target credentials) live only
here, never in workflow inputs, so they never reach Temporal's history. They are
``SecretStr``: repr, logs and dumps show ``**********``; the one place that needs the
value calls ``.get_secret_value()``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from damfleet.settings import MAX_IMAGE_PIXELS, PREFIX, SettingsError, parse_flag

# The groups are public through damfleet.settings, which re-exports them.
__all__ = ["Settings", "load", "setting_names"]


def _flag(value: Any) -> Any:
    """The words operators write for a switch (:func:`damfleet.settings.parse_flag`)."""
    return parse_flag(value) if isinstance(value, str) else value


def _names(value: Any) -> Any:
    """A list setting: a JSON array, or comma-separated (blank items dropped)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"is not a valid JSON list ({exc})") from None
        if not isinstance(items, list):
            raise ValueError("must be a JSON list or comma-separated")
        return tuple(str(item) for item in items)
    return tuple(part.strip() for part in text.split(",") if part.strip())


Flag = Annotated[bool, BeforeValidator(_flag)]
Names = Annotated[tuple[str, ...], NoDecode, BeforeValidator(_names)]


class _Group(BaseModel):
    """A settings group: immutable; unknown ``DAMFLEET_<GROUP>_*`` variables are ignored, as ever."""

    model_config = ConfigDict(frozen=True, extra="ignore")


def _together(first: str, second: str) -> str:
    return f"{first} and {second} go together"


class TemporalSettings(_Group):
    """How to reach the Temporal frontend (dev server, self-hosted cluster or Temporal Cloud)."""

    address: str = "localhost:7233"
    namespace: str = "default"
    tls: Flag = False
    tls_cert_path: str = ""
    tls_key_path: str = ""
    tls_ca_path: str = ""
    tls_server_name: str = ""
    api_key: SecretStr = SecretStr("")
    dev_ui_port: int = 8233              # web UI port of the embedded dev server (damfleet dev/demo)
    codec_keys: SecretStr = SecretStr("")          # "id=<base64 32 bytes>,...": encrypt payloads (damfleet.codec); first encrypts
    codec_server_token: SecretStr = SecretStr("")  # bearer token `damfleet codec-server` requires
    codec_server_listen: str = "127.0.0.1:8081"
    codec_server_allow_origin: str = "http://localhost:8233"   # the Temporal UI's origin (CORS)
    connect_timeout_seconds: float = 30.0   # keep retrying an unreachable frontend this long (restarts)

    @model_validator(mode="after")
    def _tls_pair(self) -> TemporalSettings:
        if bool(self.tls_cert_path) != bool(self.tls_key_path):
            raise ValueError(_together("DAMFLEET_TEMPORAL_TLS_CERT_PATH", "DAMFLEET_TEMPORAL_TLS_KEY_PATH"))
        return self


def _storage_root(value: str) -> str:
    if value and not value.startswith(("file://", "s3://")):
        raise ValueError("must be a file:// or s3:// URI")
    return value


class StorageSettings(_Group):
    """Where assets live. ``root`` is a ``file://`` folder or an ``s3://bucket/prefix``."""

    root: Annotated[str, BeforeValidator(_storage_root)] = ""   # "": a folder under the state dir
    s3_endpoint_url: str = ""
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr = SecretStr("")
    s3_secret_access_key: SecretStr = SecretStr("")
    s3_addressing_style: Literal["path", "virtual", "auto"] = "path"
    multipart_threshold_bytes: int = 16 * 1024 * 1024
    multipart_chunk_bytes: int = 8 * 1024 * 1024
    max_pool_connections: int = 64
    s3_instance_metadata: Flag = False   # ask the EC2 instance-metadata service for credentials (damfleet.egress)
    multipart_max_age_hours: float = 24.0   # workers abort damfleet's multipart uploads older than this


class WorkerSettings(_Group):
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
    #: "off" (default): workflows run on the SDK's unsandboxed runner. "passthrough": the
    #: sandbox with damfleet's workflow modules imported once and shared; it guards nothing
    #: more than "off" does (a passed-through module calls the real ``time``), and entering
    #: it costs about 1 ms of worker CPU per workflow task (bench/pipeline.py). "strict":
    #: the full sandbox re-imports the modules per run and guards every call; the tests run
    #: strict whatever this says, so a non-deterministic call fails there.
    workflow_sandbox: Literal["off", "passthrough", "strict"] = "off"


class IngestSettings(_Group):
    """Ingest limits: what sources may be read and how large they may be.

    Sources must lie under ``source_roots`` (file:// folders, s3://bucket[/prefix]); none
    configured refuses every source (see :mod:`damfleet.sources`).
    """

    source_roots: Names = ()                        # empty: every source is refused
    allowed_source_prefixes: Names = ()             # older name of source_roots, used when that is unset
    follow_symlinks: Flag = True                    # false: a link anywhere in a source path is refused
    max_source_bytes: int = 0                       # 0: unlimited
    max_image_pixels: int = MAX_IMAGE_PIXELS
    tool_timeout_seconds: float = 120.0
    tool_memory_bytes: int = 2 * 1024**3            # address-space limit of each probe child; 0: none


class TranscodeSettings(_Group):
    """Transcode resources and safety limits."""

    ffmpeg_threads: int = 0                  # 0: let ffmpeg choose
    stall_seconds: float = 120.0             # no ffmpeg progress for this long: kill and retry
    hwaccel: Literal["none", "nvenc", "vaapi", "qsv"] = "none"
    vaapi_device: str = "/dev/dri/renderD128"
    max_image_pixels: int = MAX_IMAGE_PIXELS
    tool_timeout_seconds: float = 6 * 3600.0
    tool_memory_bytes: int = 0               # 0: no address-space limit on tool runs
    min_free_scratch_bytes: int = 512 * 1024 * 1024
    scratch_size_factor: float = 3.0         # free scratch needed = factor x source size
    x264_preset: str = "veryfast"            # libx264 speed/size trade-off for software encodes
    #: Image transcodes on their own queue and pool (q-transcode-light), beside video encodes;
    #: false: on q-transcode behind them, as before. The workflow routes by it, so every pool
    #: of a fleet must agree (the Helm chart and `damfleet dev` set it once for all).
    light_queue: Flag = True
    light_concurrency: int = Field(0, ge=0)  # image transcodes per light-pool process; 0: the stage table's (2)
    light_vips_threads: int = Field(1, ge=0)  # libvips threads per image there (VIPS_CONCURRENCY); 0: libvips'


class AISettings(_Group):
    """Model selection and decoding options of the AI enrichment stage.

    The transcriber and the detector read their options from here (``TranscribeOptions``
    and ``DetectOptions`` are views of this group), so each knob has one default.
    """

    whisper_model: str = ""                  # path or name; "" = bundled tiny.en
    whisper_device: Literal["auto", "cpu", "cuda"] = "auto"
    # float32 + beam 5: chosen from bench/ai.py's WER table (README, AI section): the lowest WER in
    # the worst case over instruction sets, and the same transcript under every one of them.
    whisper_compute_type: str = "float32"    # int8 | float16 | int8_float16 | float32 (any CTranslate2 type)
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
    inference_tls: Flag = False              # client: TLS with the system's roots
    inference_tls_ca_path: str = ""          # client: trust this CA for the service (turns TLS on)
    inference_tls_client_cert_path: str = "" # client: certificate to present (mutual TLS)
    inference_tls_client_key_path: str = ""
    inference_tls_server_name: str = ""      # client: expected name in the service's certificate
    inference_token: SecretStr = SecretStr("")   # both: bearer token required on / sent with every call
    whisper_language: str = ""               # "" = detect (English-only models always answer "en")
    whisper_vad: Flag = True                 # Silero VAD (bundled with faster-whisper) skips silence
    whisper_word_timestamps: Flag = True
    whisper_redecode_gap_seconds: float = 2.0  # speech without text this long is decoded again; 0 = off
    whisper_max_new_tokens: int = 0          # first-pass cap on tokens per 30 s window; 0 = model limit
    whisper_min_coverage: float = Field(default=0.6, ge=0.0, le=1.0)  # share of VAD speech the words must cover
    whisper_min_speech_seconds: float = 3.0  # below this much speech the coverage is not judged
    yolo_sampling: Literal["interval", "scene"] = "interval"   # video frame sampling
    yolo_scene_threshold: float = 0.3        # ffmpeg scene score for "scene" sampling
    yolo_agnostic_nms: Flag = True           # one box per object across classes (no duplicate tags)
    yolo_max_frame_side: int = 1920          # video frames / images are scaled down to this before detection
    max_image_pixels: int = MAX_IMAGE_PIXELS
    tool_timeout_seconds: float = 3600.0     # ffmpeg decode runs (PCM stream, frame sampling)
    transcript_excerpt_chars: int = 300

    @model_validator(mode="after")
    def _tls_pairs(self) -> AISettings:
        if bool(self.inference_tls_cert_path) != bool(self.inference_tls_key_path):
            raise ValueError(_together("DAMFLEET_AI_INFERENCE_TLS_CERT_PATH", "DAMFLEET_AI_INFERENCE_TLS_KEY_PATH"))
        if bool(self.inference_tls_client_cert_path) != bool(self.inference_tls_client_key_path):
            raise ValueError(_together(
                "DAMFLEET_AI_INFERENCE_TLS_CLIENT_CERT_PATH", "DAMFLEET_AI_INFERENCE_TLS_CLIENT_KEY_PATH"
            ))
        return self


class DistributionSettings(_Group):
    """Delivery targets and outbound safety.

    Targets (with their credentials) are defined here, never in requests: a profile or a
    request names a target, the distribution worker looks up how to reach it. A built-in
    ``local`` target (``<state_dir>/delivered/<asset_id>/``) needs no configuration.
    Definitions are parsed per target by :mod:`damfleet.delivery.config`, so one broken
    target fails only its own deliveries.
    """

    targets_file: str = ""                   # JSON file: {"name": {"type": "s3", ...}, ...}
    targets_json: str = ""                   # the same, inline; wins over the file per name
    allow_private_networks: Names = ()       # CIDRs or host names exempt from SSRF refusal
    verify_tls: Flag = True
    per_target_concurrency: int = 16         # uploads in flight per target name (a target may override)
    per_target_wait_seconds: float = 30.0    # waiting longer for a slot hands the task back to the queue
    http_timeout_seconds: float = 60.0       # connect/read/write timeout of one HTTP exchange
    webhook_secret: SecretStr = SecretStr("")   # default HMAC secret for webhook targets without their own
    stream_chunk_bytes: int = 256 * 1024     # read size when streaming a rendition to a target
    #: Re-hash every rendition while streaming it and refuse bytes that differ from the checksum the
    #: pipeline recorded (catches storage corruption before a partner gets it). Costs one sha256 pass,
    #: about 25% more CPU at loopback speeds; turn off where storage integrity is checked elsewhere.
    verify_source: Flag = True
    max_redirects: int = 5
    max_retry_after_seconds: float = 6 * 3600.0   # a Retry-After longer than this is capped


class JobsSettings(_Group):
    """Job control defaults: dedup, batch window and priority, manifests (``DAMFLEET_JOBS_*``)."""

    dedup: Flag = True                       # link content already ingested in the same collection
    batch_priority: int = 4                  # Temporal task priority of batches (1 highest .. 5); uploads use 3
    batch_max_in_flight: int = 50            # child pipelines a batch runs at once (sliding window)
    batch_continue_as_new_after: int = 500   # children started per run before continue-as-new
    manifest_page_size: int = 500            # rows per stored manifest page (one activity result)
    manifest_max_rows: int = 1_000_000       # larger manifests are refused
    bad_rows_kept: int = 1000                # bad rows listed in the batch progress (all are counted)
    quarantine_failed: Flag = False          # keep a failed run's original under <root>/quarantine/


class FixitySettings(_Group):
    """Fixity audits (``DAMFLEET_FIXITY_*``): read budget, paging, repair sources, renditions."""

    bytes_per_second: int = 100 * 1024 * 1024   # read budget per worker process; 0 = unthrottled
    page_size: int = 500                      # assets per stored page (one verifying activity)
    max_in_flight: int = 4                    # page activities an audit runs at once
    continue_as_new_after: int = 100          # pages per workflow run before continue-as-new
    replica_roots: Names = ()                 # second storage roots holding the same keys (repair sources)
    repair_targets: Names = ()                # delivery targets searched for copies; empty = every s3/local one
    include_renditions: Flag = False          # also re-hash renditions with a recorded sha256 (S3 metadata)


class Settings(BaseSettings):
    """All settings of one process. Build with :func:`damfleet.settings.load_settings` or ``get_settings``;
    ``Settings()`` alone is the defaults (it does not read the environment)."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_nested_delimiter="_", env_nested_max_split=1, case_sensitive=False,
        frozen=True, extra="ignore",
    )

    state_dir: str = ".damfleet"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"   # "json": one JSON object per line, ids as fields (damfleet.logging_setup)
    log_file: str = ""                       # also write to this file, rotated (damfleet dev sets it per pool)
    log_file_max_bytes: int = 20 * 1024 * 1024
    log_file_backups: int = 5
    tracing: Literal["off", "otlp"] = "off"   # "otlp": OpenTelemetry spans over OTLP/HTTP (damfleet.tracing; OTEL_* vars)
    temporal: TemporalSettings = TemporalSettings()
    storage: StorageSettings = StorageSettings()
    worker: WorkerSettings = WorkerSettings()
    ingest: IngestSettings = IngestSettings()
    transcode: TranscodeSettings = TranscodeSettings()
    ai: AISettings = AISettings()
    distribution: DistributionSettings = DistributionSettings()
    jobs: JobsSettings = JobsSettings()
    fixity: FixitySettings = FixitySettings()

    #: Standard variables honoured when ours are unset, so IAM tooling keeps working.
    AWS_FALLBACKS: ClassVar[tuple[tuple[str, str], ...]] = (
        ("STORAGE_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("STORAGE_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ("STORAGE_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"),
    )

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only keyword arguments: :func:`load` reads the environment (or a given
        mapping, for tests and benchmarks) through :class:`_EnvSource` and passes it in."""
        return (init_settings,)

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


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over an explicit mapping instead of ``os.environ``.

    It keeps the loader's old exactness: names match in capitals only (``damfleet_state_dir``
    is not a setting), and a bare group name (``DAMFLEET_AI``) is not read as a JSON group.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._mapping = env
        super().__init__(Settings)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        groups = {PREFIX + name.upper() for name in _GROUPS}
        return {
            name.lower(): value for name, value in self._mapping.items()
            if name.startswith(PREFIX) and name == name.upper() and name not in groups
        }


#: The field names of Settings that are groups (their variables are ``DAMFLEET_<GROUP>_<FIELD>``).
_GROUPS = tuple(
    name for name, info in Settings.model_fields.items()
    if isinstance(info.annotation, type) and issubclass(info.annotation, _Group)
)


def setting_names() -> frozenset[str]:
    """Every ``DAMFLEET_*`` variable the settings read (the deploy tests check the chart against it)."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        if name in _GROUPS:
            names |= {f"{PREFIX}{name.upper()}_{field.upper()}" for field in info.annotation.model_fields}
        else:
            names.add(f"{PREFIX}{name.upper()}")
    return frozenset(names)


def _variable(loc: tuple[int | str, ...]) -> str:
    return PREFIX + "_".join(str(part).upper() for part in loc)


def _field_info(loc: tuple[int | str, ...]) -> Any:
    model: Any = Settings
    info = None
    for part in loc:
        fields = getattr(model, "model_fields", {})
        if part not in fields:
            return None
        info = fields[part]
        model = info.annotation
    return info


def _explain(exc: ValidationError) -> str:
    """One line per validation error, naming the variable; never echoes a secret's value."""
    problems: list[str] = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if isinstance(part, str))
        info = _field_info(loc)
        if info is None or (len(loc) == 1 and loc[0] in _GROUPS):
            # A whole-group check (pairs of variables): its message names them.
            problems.append(str(error.get("ctx", {}).get("error", error["msg"])))
            continue
        kind, ctx = error["type"], error.get("ctx", {})
        bounds = {type(m).__name__: m for m in info.metadata}
        if kind == "value_error":
            what = str(ctx.get("error", error["msg"]))
        elif kind == "literal_error":
            what = f"must be {str(ctx['expected']).replace(chr(39), '')}"
        elif kind in ("int_parsing", "int_type", "int_from_float"):
            what = "must be a whole number"
        elif kind in ("float_parsing", "float_type", "finite_number"):
            what = "must be a number"
        elif "Ge" in bounds and "Le" in bounds:
            what = f"must be between {bounds['Ge'].ge:g} and {bounds['Le'].le:g}"
        else:
            what = str(error["msg"]).lower()
        shown = "" if info.annotation is SecretStr else f", got {error['input']!r}"
        problems.append(f"{_variable(loc)} {what}{shown}")
    return "; ".join(problems)


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``env`` (default: ``os.environ``).

    Storage credentials fall back to the standard ``AWS_*`` variables so existing
    deployments and IAM tooling keep working. A bad value raises :class:`SettingsError`
    with one line naming the variable and what is wrong with it.
    """
    values = dict(os.environ if env is None else env)
    for ours, aws in Settings.AWS_FALLBACKS:
        if PREFIX + ours not in values and aws in values:
            values[PREFIX + ours] = values[aws]
    try:
        return Settings(**_EnvSource(values)())
    except ValidationError as exc:
        raise SettingsError(_explain(exc)) from None
