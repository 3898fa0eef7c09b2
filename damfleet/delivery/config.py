"""Delivery target definitions, read from settings and validated per target.

Operators declare targets once, with their credentials, in
``DAMFLEET_DISTRIBUTION_TARGETS_FILE`` (a JSON file) and/or
``DAMFLEET_DISTRIBUTION_TARGETS_JSON`` (inline; wins over the file name by name)::

    {
      "cdn":     {"type": "s3", "bucket": "media-origin", "prefix": "assets",
                  "endpoint_url": "https://rgw.internal", "access_key_id": "...",
                  "secret_access_key_env": "CDN_SECRET", "cache_control": "public, max-age=86400",
                  "tags": {"source": "damfleet"}},
      "partner": {"type": "http", "url": "https://drop.partner.example/in/{asset_id}/{filename}",
                  "method": "PUT", "bearer_token_env": "PARTNER_TOKEN"},
      "notify":  {"type": "webhook", "url": "https://hooks.example/damfleet", "secret_env": "HOOK_SECRET"},
      "nas":     {"type": "local", "path": "/mnt/deliveries"}
    }

Profiles and requests name targets; they never carry credentials, so secrets stay out of
Temporal's history. Any secret field may instead be given as ``<field>_env``: the name of
an environment variable holding it (how Kubernetes Secrets are usually mounted).

A target named ``local`` exists without configuration: it copies into
``<state_dir>/delivered/<asset_id>/`` so the embedded default delivers somewhere.

A broken definition fails only deliveries to that target, each with a
:class:`~damfleet.errors.ConfigurationError` naming it; other targets keep working.
"""

from __future__ import annotations

import dataclasses
import json
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from damfleet.errors import ConfigurationError
from damfleet.settings import Settings

__all__ = [
    "BUILTIN_LOCAL_TARGET",
    "TARGET_TYPES",
    "URL_PLACEHOLDERS",
    "HttpTargetConfig",
    "LocalTargetConfig",
    "S3TargetConfig",
    "TargetConfig",
    "TargetRegistry",
    "WebhookTargetConfig",
    "parse_target",
]

BUILTIN_LOCAL_TARGET = "local"

#: Fields an HTTP target's URL template may use; values are percent-encoded.
URL_PLACEHOLDERS = frozenset({"asset_id", "role", "filename", "target"})


@dataclass(frozen=True, kw_only=True)
class TargetConfig:
    """What every target has: its name, type and an optional concurrency override."""

    name: str
    type: str
    concurrency: int = 0          # 0: DAMFLEET_DISTRIBUTION_PER_TARGET_CONCURRENCY

    def describe(self) -> str:
        """A loggable one-liner (no secrets)."""
        return f"{self.type} target {self.name!r}"


@dataclass(frozen=True, kw_only=True)
class LocalTargetConfig(TargetConfig):
    """A folder on this machine or a mounted share; files land in ``<path>/<asset_id>/``."""

    path: str = ""                # "" -> <state_dir>/delivered


@dataclass(frozen=True, kw_only=True)
class S3TargetConfig(TargetConfig):
    """An S3-compatible bucket (AWS S3, Ceph RGW, MinIO); objects at ``<prefix>/<asset_id>/<file>``."""

    bucket: str
    prefix: str = ""
    endpoint_url: str = ""
    region: str = "us-east-1"
    access_key_id: str = field(default="", repr=False)
    secret_access_key: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    addressing_style: str = "path"
    cache_control: str = ""
    content_disposition: str = ""
    storage_class: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    #: "" sends Content-MD5 per part (understood by every S3-compatible store); "SHA256"
    #: also sends and checks x-amz-checksum-sha256 per part (AWS, MinIO, recent Ceph).
    checksum_algorithm: str = ""
    part_size_bytes: int = 8 * 1024 * 1024
    public_url_base: str = ""     # e.g. "https://cdn.example.com": receipts then carry a URL too


@dataclass(frozen=True, kw_only=True)
class HttpTargetConfig(TargetConfig):
    """An HTTP endpoint receiving each rendition by PUT (raw body) or POST (multipart form)."""

    url: str
    method: str = "PUT"
    bearer_token: str = field(default="", repr=False)
    username: str = ""
    password: str = field(default="", repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)   # may hold API keys
    form_field: str = "file"      # multipart field name of the file (POST)
    verify_tls: bool = True
    ca_bundle: str = ""
    timeout_seconds: float = 0.0  # 0: DAMFLEET_DISTRIBUTION_HTTP_TIMEOUT_SECONDS


@dataclass(frozen=True, kw_only=True)
class WebhookTargetConfig(TargetConfig):
    """A URL receiving a signed JSON notification when an asset is finished."""

    url: str
    secret: str = field(default="", repr=False)   # "" -> DAMFLEET_DISTRIBUTION_WEBHOOK_SECRET
    bearer_token: str = field(default="", repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    verify_tls: bool = True
    ca_bundle: str = ""
    timeout_seconds: float = 0.0


TARGET_TYPES: dict[str, type[TargetConfig]] = {
    "local": LocalTargetConfig,
    "s3": S3TargetConfig,
    "http": HttpTargetConfig,
    "webhook": WebhookTargetConfig,
}

_SECRET_FIELDS = frozenset({"access_key_id", "secret_access_key", "session_token", "bearer_token", "password", "secret"})


def _check_url(name: str, url: str, *, allow_placeholders: bool) -> None:
    """Refuse URLs that are not absolute http(s) URLs, or that embed credentials."""
    probe = url
    if allow_placeholders:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(url) if f is not None}
        except ValueError as exc:
            raise ConfigurationError(f"target {name!r}: malformed URL template {url!r}: {exc}") from None
        unknown = fields - URL_PLACEHOLDERS
        if unknown:
            raise ConfigurationError(
                f"target {name!r}: unknown placeholder(s) {sorted(unknown)} in URL; "
                f"allowed: {sorted(URL_PLACEHOLDERS)}"
            )
        probe = url.format(**{f: "x" for f in URL_PLACEHOLDERS})
    try:
        parts = urlsplit(probe)
        _ = parts.port          # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ConfigurationError(f"target {name!r}: malformed URL {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"target {name!r}: URL must be an absolute http:// or https:// URL, got {url!r}")
    if parts.username or parts.password:
        raise ConfigurationError(
            f"target {name!r}: credentials in the URL are not allowed; use bearer_token or username/password"
        )


def _coerce_field(name: str, fld: dataclasses.Field[Any], value: Any) -> Any:
    """Check a JSON value against the dataclass field's type; the message names the target."""
    kind = fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", str(fld.type))
    if kind == "str":
        if not isinstance(value, str):
            raise ConfigurationError(f"target {name!r}: {fld.name} must be a string")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigurationError(f"target {name!r}: {fld.name} must be a non-negative integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ConfigurationError(f"target {name!r}: {fld.name} must be a non-negative number")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigurationError(f"target {name!r}: {fld.name} must be true or false")
        return value
    if kind.startswith("dict"):
        if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigurationError(f"target {name!r}: {fld.name} must be an object of strings")
        return dict(value)
    return value


def parse_target(name: str, raw: Any, env: Mapping[str, str] | None = None) -> TargetConfig:
    """Build and validate one target definition; ConfigurationError names the target."""
    env = os.environ if env is None else env
    if not isinstance(raw, dict):
        raise ConfigurationError(f"target {name!r}: definition must be a JSON object")
    kind = raw.get("type")
    cls = TARGET_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigurationError(
            f"target {name!r}: unknown target type {kind!r}; known types: {', '.join(sorted(TARGET_TYPES))}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {"name": name, "type": kind}
    for key, value in raw.items():
        if key == "type":
            continue
        if key.endswith("_env") and key[: -len("_env")] in _SECRET_FIELDS and key[: -len("_env")] in fields:
            variable = value if isinstance(value, str) else ""
            if not variable or variable not in env:
                raise ConfigurationError(
                    f"target {name!r}: {key} names environment variable {variable!r}, which is not set"
                )
            values[key[: -len("_env")]] = env[variable]
            continue
        if key not in fields or key in ("name",):
            allowed = sorted(k for k in fields if k not in ("name", "type"))
            raise ConfigurationError(f"target {name!r}: unknown setting {key!r} for type {kind!r}; allowed: {allowed}")
        values[key] = _coerce_field(name, fields[key], value)
    missing = [
        f.name for f in fields.values()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in values
    ]
    if missing:
        raise ConfigurationError(f"target {name!r}: missing required setting(s) {missing} for type {kind!r}")
    config = cls(**values)
    _validate(config)
    return config


def _validate(config: TargetConfig) -> None:
    name = config.name
    if isinstance(config, S3TargetConfig):
        if not config.bucket.strip():
            raise ConfigurationError(f"target {name!r}: bucket must not be empty")
        if config.endpoint_url:
            _check_url(name, config.endpoint_url, allow_placeholders=False)
        if config.checksum_algorithm.upper() not in ("", "SHA256"):
            raise ConfigurationError(f"target {name!r}: checksum_algorithm must be \"\" or \"SHA256\"")
        if config.addressing_style not in ("path", "virtual", "auto"):
            raise ConfigurationError(f"target {name!r}: addressing_style must be path, virtual or auto")
        if config.part_size_bytes < 5 * 1024 * 1024:
            raise ConfigurationError(f"target {name!r}: part_size_bytes must be at least 5 MiB (S3's minimum)")
    elif isinstance(config, HttpTargetConfig):
        _check_url(name, config.url, allow_placeholders=True)
        if config.method.upper() not in ("PUT", "POST"):
            raise ConfigurationError(f"target {name!r}: method must be PUT or POST, got {config.method!r}")
        if config.bearer_token and (config.username or config.password):
            raise ConfigurationError(f"target {name!r}: give bearer_token or username/password, not both")
    elif isinstance(config, WebhookTargetConfig):
        _check_url(name, config.url, allow_placeholders=False)


class TargetRegistry:
    """The configured targets of this process; each definition is validated when first used."""

    def __init__(self, raw: Mapping[str, Any], *, default_local_path: Path, env: Mapping[str, str] | None = None,
                 load_error: str = "") -> None:
        self._raw = dict(raw)
        self._default_local_path = default_local_path
        self._env = env
        self._load_error = load_error
        self._parsed: dict[str, TargetConfig] = {}

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> TargetRegistry:
        """Read the targets file and the inline JSON. A syntax error fails every delivery clearly."""
        dist = settings.distribution
        raw: dict[str, Any] = {}
        error = ""
        sources: list[tuple[str, str]] = []
        if dist.targets_file:
            try:
                sources.append((f"DAMFLEET_DISTRIBUTION_TARGETS_FILE {dist.targets_file}",
                                Path(dist.targets_file).expanduser().read_text()))
            except OSError as exc:
                error = f"cannot read DAMFLEET_DISTRIBUTION_TARGETS_FILE {dist.targets_file}: {exc.strerror or exc}"
        if dist.targets_json:
            sources.append(("DAMFLEET_DISTRIBUTION_TARGETS_JSON", dist.targets_json))
        for origin, text in sources:
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                error = f"{origin} is not valid JSON: {exc}"
                continue
            if not isinstance(loaded, dict):
                error = f"{origin} must be a JSON object of target name -> definition"
                continue
            raw.update(loaded)
        return cls(raw, default_local_path=settings.state_path / "delivered", env=env, load_error=error)

    def names(self) -> list[str]:
        return sorted(set(self._raw) | {BUILTIN_LOCAL_TARGET})

    def get(self, name: str) -> TargetConfig:
        """The named target's validated definition; ConfigurationError names what is wrong."""
        cached = self._parsed.get(name)
        if cached is not None:
            return cached
        if self._load_error:
            raise ConfigurationError(f"delivery targets unusable (target {name!r}): {self._load_error}")
        if name in self._raw:
            config = parse_target(name, self._raw[name], self._env)
        elif name == BUILTIN_LOCAL_TARGET:
            config = LocalTargetConfig(name=name, type="local")
        else:
            raise ConfigurationError(
                f"unknown delivery target {name!r}; configured targets: {', '.join(self.names())}"
            )
        if isinstance(config, LocalTargetConfig) and not config.path:
            config = dataclasses.replace(config, path=str(self._default_local_path))
        self._parsed[name] = config
        return config

    def validate_all(self) -> dict[str, str]:
        """Every target's problem (name -> message), for a startup check or a CLI; empty when all are fine."""
        problems: dict[str, str] = {}
        for name in self.names():
            try:
                self.get(name)
            except ConfigurationError as exc:
                problems[name] = str(exc)
        return problems
